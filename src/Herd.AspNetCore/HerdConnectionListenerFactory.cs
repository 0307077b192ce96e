using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Herd.AspNetCore;

/// <summary>Kestrel's transport in a worker: each endpoint becomes a <see cref="ClusterSocket.ListenAsync"/> listener.</summary>
internal sealed class HerdConnectionListenerFactory : IConnectionListenerFactory, IConnectionListenerFactorySelector, IDisposable
{
    private readonly SocketConnectionContextFactory _connections;
    private readonly ListenOptions _listenOptions;

    public HerdConnectionListenerFactory(IOptions<SocketTransportOptions> transport, ILoggerFactory loggerFactory, ListenOptions? listenOptions)
    {
        var options = transport.Value;
        _connections = new SocketConnectionContextFactory(new SocketConnectionFactoryOptions
        {
            IOQueueCount = options.IOQueueCount,
            WaitForDataBeforeAllocatingBuffer = options.WaitForDataBeforeAllocatingBuffer,
            MaxReadBufferSize = options.MaxReadBufferSize,
            MaxWriteBufferSize = options.MaxWriteBufferSize,
            UnsafePreferInlineScheduling = options.UnsafePreferInlineScheduling,
        }, loggerFactory.CreateLogger("Herd.AspNetCore"));
        _listenOptions = listenOptions ?? new ListenOptions { Backlog = options.Backlog };
    }

    public bool CanBind(EndPoint endpoint) => endpoint is IPEndPoint or UnixDomainSocketEndPoint;

    public async ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
    {
        var listener = await ClusterSocket.ListenAsync(endpoint, _listenOptions, cancellationToken).ConfigureAwait(false);
        return new HerdConnectionListener(listener, _connections);
    }

    public void Dispose() => _connections.Dispose();
}

/// <summary>One Kestrel endpoint over a <see cref="ClusterListener"/>.</summary>
internal sealed class HerdConnectionListener(ClusterListener listener, SocketConnectionContextFactory connections) : IConnectionListener
{
    public EndPoint EndPoint => listener.LocalEndPoint;

    // As Kestrel's own listener, an accept that fails is retried: a connection reset in the backlog is not the end of
    // the endpoint, and neither is a moment out of fds (EMFILE), which is waited out instead of spun on.
    public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
    {
        while (true)
        {
            try
            {
                var socket = await listener.AcceptAsync(cancellationToken).ConfigureAwait(false);
                return connections.Create(socket);
            }
            catch (ObjectDisposedException)
            {
                return null; // unbound: Kestrel's accept loop ends here
            }
            catch (SocketException ex) when (ex.SocketErrorCode == SocketError.OperationAborted)
            {
                return null;
            }
            catch (SocketException ex) when (ex.SocketErrorCode is not (SocketError.ConnectionReset or SocketError.ConnectionAborted))
            {
                await Task.Delay(100, cancellationToken).ConfigureAwait(false);
            }
            catch (SocketException)
            {
                // reset while in the backlog: take the next one
            }
        }
    }

    // Closing the listener is what ends a pending AcceptAsync; Kestrel passes no token to it.
    public ValueTask UnbindAsync(CancellationToken cancellationToken = default) => listener.DisposeAsync();

    public ValueTask DisposeAsync() => listener.DisposeAsync();
}
