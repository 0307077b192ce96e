using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using Herd.Native;

namespace Herd.Child;

/// <summary>
/// What <see cref="ClusterSocket.ListenAsync"/> returns in a round-robin worker (Node's fake RR handle). The primary
/// owns the listening socket; connections arrive over the channel and are answered <c>accepted</c> only when the
/// app takes them, so a connection still queued here when the listener closes goes back to another worker.
/// </summary>
internal sealed class RoundRobinListener(ChildCluster child, int handleId, EndPoint localEndPoint, Action onClosed)
    : ClusterListener(localEndPoint)
{
    // Continuations on the thread pool, not inline on the channel's thread: measured, completing Kestrel's accept in
    // place serialised its work behind the channel's reads and cost about 7% of Connection: close throughput.
    private readonly Channel<Pending> _queue = Channel.CreateUnbounded<Pending>(new UnboundedChannelOptions { SingleWriter = true });

    public int HandleId => handleId;

    /// <summary>Queues a connection from the primary; false when the listener is closed.</summary>
    internal bool Offer(uint connectionId, SafeFdHandle fd) => _queue.Writer.TryWrite(new Pending(connectionId, fd));

    public override async ValueTask<Socket> AcceptAsync(CancellationToken cancellationToken = default)
    {
        Pending next;
        try
        {
            next = await _queue.Reader.ReadAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (ChannelClosedException ex)
        {
            throw new ObjectDisposedException(nameof(ClusterListener), ex);
        }
        child.SendAccepted(handleId, next.ConnectionId, ok: true);
        return Prepare(child.Load.CountsConnections ? new CountedSocket(next.Fd.ToSocketHandle(), child.Load) : next.Fd.ToSocket());
    }

    public override ValueTask DisposeAsync()
    {
        if (!_queue.Writer.TryComplete()) return ValueTask.CompletedTask;
        onClosed();
        while (_queue.Reader.TryRead(out var refused))
        {
            refused.Fd.Dispose();
            child.SendAccepted(handleId, refused.ConnectionId, ok: false);
        }
        return ValueTask.CompletedTask;
    }

    private readonly record struct Pending(uint ConnectionId, SafeFdHandle Fd);
}
