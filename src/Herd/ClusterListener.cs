using System.Net;
using System.Net.Sockets;

namespace Herd;

/// <summary>
/// A listening server from <see cref="ClusterSocket.ListenAsync"/>. In a round-robin worker its connections come from
/// the primary; otherwise it accepts on a socket of its own. Either way, <see cref="AcceptAsync"/> yields connected sockets.
/// </summary>
public abstract class ClusterListener : IAsyncDisposable
{
    private protected ClusterListener(EndPoint localEndPoint) => LocalEndPoint = localEndPoint;

    /// <summary>The address the server really listens on (the chosen port when 0 was asked for).</summary>
    public EndPoint LocalEndPoint { get; }

    /// <summary>Waits for the next connection. Throws <see cref="ObjectDisposedException"/> once the listener is closed.</summary>
    public abstract ValueTask<Socket> AcceptAsync(CancellationToken cancellationToken = default);

    /// <summary>Stops listening. Connections not yet accepted go back to the primary for another worker (round robin) or are refused.</summary>
    public abstract ValueTask DisposeAsync();

    // Every connection, however it arrived: Nagle off for TCP, as Kestrel's own listener does, and counted for herd ls.
    private protected static Socket Prepare(Socket connection)
    {
        if (connection.ProtocolType == ProtocolType.Tcp) connection.NoDelay = true;
        Cluster.Child?.CountConnection();
        return connection;
    }
}
