using System.Net.Sockets;
using Herd.Primary;

namespace Herd.Cli;

/// <summary><c>herd run --socket</c>: the listening sockets herd binds for workers that are not .NET apps; closed when the run ends.</summary>
internal sealed class SocketMode : IDisposable
{
    private SocketMode(IReadOnlyList<Socket> sockets) => Sockets = sockets;

    public IReadOnlyList<Socket> Sockets { get; }

    /// <summary>Binds every address, or none: null when there are none to bind.</summary>
    /// <exception cref="ConfigException">An address herd cannot parse.</exception>
    /// <exception cref="InvalidOperationException">One it cannot listen on.</exception>
    public static SocketMode? Listen(string[] addresses)
    {
        if (addresses.Length == 0) return null;
        var sockets = new List<Socket>();
        try
        {
            foreach (var address in addresses)
            {
                System.Net.EndPoint endPoint;
                try
                {
                    endPoint = PassedSockets.Parse(address);
                }
                catch (FormatException ex)
                {
                    throw new ConfigException($"--socket {ex.Message}");
                }
                try
                {
                    sockets.Add(PassedSockets.Listen(endPoint));
                }
                catch (SocketException ex)
                {
                    throw new InvalidOperationException($"cannot listen on {address}: {ex.Message}", ex);
                }
            }
            return new SocketMode(sockets);
        }
        catch
        {
            foreach (var bound in sockets) bound.Dispose();
            throw;
        }
    }

    public void Dispose()
    {
        foreach (var socket in Sockets)
        {
            var unixPath = (socket.LocalEndPoint as UnixDomainSocketEndPoint)?.ToString();
            socket.Dispose();
            if (unixPath is not null) File.Delete(unixPath); // as Kestrel does: the next run binds it afresh
        }
    }
}
