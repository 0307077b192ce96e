using System.Net;
using System.Net.Sockets;
using Herd.Net;

namespace Herd.Primary;

/// <summary>
/// Any language's server as a worker (einhorn's model, systemd's protocol, sd_listen_fds(3)): the primary binds, and
/// each worker gets the listening sockets as fds 3, 4, … with LISTEN_FDS and LISTEN_PID. Node takes one with
/// <c>listen({fd: 3})</c>, gunicorn with <c>--bind fd://3</c>, uvicorn with <c>--fd 3</c>.
/// </summary>
internal static class PassedSockets
{
    private const int Backlog = 511;

    /// <summary>
    /// LISTEN_PID must be the worker's own pid, which posix_spawn cannot put in an environment before the process
    /// exists: a shell sets it to its own pid and execs the command, which keeps that pid and the fds.
    /// </summary>
    public static string[] WithListenPid(string[] argv) =>
        ["/bin/sh", "-c", "LISTEN_PID=$$; export LISTEN_PID; exec \"$0\" \"$@\"", .. argv];

    /// <summary>
    /// Parses <c>tcp://host:port</c> (an IP address, <c>[v6]</c> or <c>localhost</c>) or <c>unix:/path</c>.
    /// </summary>
    /// <exception cref="FormatException">Neither.</exception>
    public static EndPoint Parse(string address)
    {
        if (address.StartsWith("unix:", StringComparison.Ordinal))
        {
            var path = address["unix:".Length..];
            if (!Path.IsPathFullyQualified(path)) throw new FormatException($"'{address}': a Unix socket needs an absolute path, as unix:/run/app.sock.");
            return new UnixDomainSocketEndPoint(path);
        }
        if (address.StartsWith("tcp://", StringComparison.Ordinal) && Uri.TryCreate(address, UriKind.Absolute, out var uri) && uri.Port is > 0 and <= 65535
            && uri.AbsolutePath == "/" && (uri.Host == "localhost" || IPAddress.TryParse(uri.Host.Trim('[', ']'), out _)))
        {
            var ip = uri.Host == "localhost" ? IPAddress.Loopback : IPAddress.Parse(uri.Host.Trim('[', ']'));
            return new IPEndPoint(ip, uri.Port);
        }
        throw new FormatException($"'{address}' is not a socket address: tcp://0.0.0.0:8000, tcp://[::]:8000 or unix:/path/app.sock.");
    }

    /// <summary>Binds and listens on <paramref name="endPoint"/>; a Unix socket of this user's, left by an earlier run, is replaced.</summary>
    public static Socket Listen(EndPoint endPoint)
    {
        if (endPoint is UnixDomainSocketEndPoint && endPoint.ToString() is { } path && Native.FileStatus.IsSocketOf(path, Native.Libc.GetUid()) == true) File.Delete(path);
        return Binder.BindAndListen(endPoint, Backlog, reusePort: false);
    }
}
