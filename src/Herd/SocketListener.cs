using System.Net;
using System.Net.Sockets;

namespace Herd;

/// <summary>A listener over a listening socket of this process's own: standalone, primary, exclusive, or reuse-port.</summary>
internal sealed class SocketListener(Socket socket, Action? onClosed = null) : ClusterListener(socket.LocalEndPoint!)
{
    private int _disposed;

    public override async ValueTask<Socket> AcceptAsync(CancellationToken cancellationToken = default)
    {
        try
        {
            return Prepare(await socket.AcceptAsync(cancellationToken).ConfigureAwait(false));
        }
        catch (SocketException ex) when (Volatile.Read(ref _disposed) != 0 || ex.SocketErrorCode == SocketError.OperationAborted)
        {
            throw new ObjectDisposedException(nameof(ClusterListener), ex);
        }
    }

    public override ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 0)
        {
            socket.Dispose();
            onClosed?.Invoke();
        }
        return ValueTask.CompletedTask;
    }
}
