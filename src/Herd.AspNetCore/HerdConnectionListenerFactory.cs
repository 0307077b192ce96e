using System.Net;
using System.Net.Sockets;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Herd.AspNetCore;

/// <summary>Kestrel's transport in a worker: each endpoint becomes a <see cref="ClusterSocket.ListenAsync"/> listener.</summary>
internal sealed class HerdConnectionListenerFactory : IConnectionListenerFactory, IConnectionListenerFactorySelector, IDisposable
{
    private readonly SocketConnectionContextFactory _connections;
    private readonly ClusterListenOptions _listenOptions;
    private readonly WorkerDrain _drain;
    private readonly bool _noDelay;

    public HerdConnectionListenerFactory(IOptions<SocketTransportOptions> transport, ILoggerFactory loggerFactory, WorkerDrain drain, IServiceProviderIsService services, ClusterListenOptions? listenOptions)
    {
        _drain = drain;
        var options = transport.Value;
        _noDelay = options.NoDelay;
        _connections = new SocketConnectionContextFactory(new SocketConnectionFactoryOptions
        {
            IOQueueCount = options.IOQueueCount,
            WaitForDataBeforeAllocatingBuffer = options.WaitForDataBeforeAllocatingBuffer,
            MaxReadBufferSize = options.MaxReadBufferSize,
            MaxWriteBufferSize = options.MaxWriteBufferSize,
            UnsafePreferInlineScheduling = options.UnsafePreferInlineScheduling,
        }, loggerFactory.CreateLogger("Herd.AspNetCore"));
        // SignalR keeps each connection in the worker that negotiated it: its clients must come back there.
        _listenOptions = (listenOptions ?? new ClusterListenOptions { Backlog = options.Backlog }) with { PrefersSticky = services.IsService(typeof(IHubProtocolResolver)) };
    }

    public bool CanBind(EndPoint endpoint) => endpoint is IPEndPoint or UnixDomainSocketEndPoint;

    public async ValueTask<IConnectionListener> BindAsync(EndPoint endpoint, CancellationToken cancellationToken = default)
    {
        ClusterListener listener;
        try
        {
            listener = await ClusterSocket.ListenAsync(endpoint, _listenOptions, cancellationToken).ConfigureAwait(false);
        }
        catch (SocketException ex) when (ex.SocketErrorCode == SocketError.AddressAlreadyInUse)
        {
            throw new AddressInUseException(ex.Message, ex); // Kestrel's binder says so in its own words
        }
        return new HerdConnectionListener(listener, _connections, _drain, _noDelay);
    }

    public void Dispose() => _connections.Dispose();
}

/// <summary>One Kestrel endpoint over a <see cref="ClusterListener"/>, whose connections a leaving worker drains.</summary>
internal sealed class HerdConnectionListener : IConnectionListener
{
    private readonly ClusterListener _listener;
    private readonly SocketConnectionContextFactory _connections;
    private readonly WorkerDrain _drain;
    private readonly TaskCompletionSource _unbound = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly bool _noDelay;
    private int _ended;

    public HerdConnectionListener(ClusterListener listener, SocketConnectionContextFactory connections, WorkerDrain drain, bool noDelay)
    {
        _listener = listener;
        _noDelay = noDelay;
        _connections = connections;
        _drain = drain;
        drain.Opened();
    }

    public EndPoint EndPoint => _listener.LocalEndPoint;

    // As Kestrel's own listener, an accept that fails is retried: a connection reset in the backlog is not the end of
    // the endpoint, and neither is a moment out of fds (EMFILE), which is waited out instead of spun on.
    public async ValueTask<ConnectionContext?> AcceptAsync(CancellationToken cancellationToken = default)
    {
        // Nothing before the worker is ready: a round-robin primary sends nothing sooner anyway, and a shared or
        // reuse-port socket's connections go meanwhile to the workers that are, rather than to an app not ready for them.
        var ready = Cluster.Worker.WhenReady;
        if (!ready.IsCompleted && await Task.WhenAny(ready, _drain.Started, _unbound.Task).ConfigureAwait(false) != ready) return End();
        while (true)
        {
            try
            {
                var socket = await _listener.AcceptAsync(cancellationToken).ConfigureAwait(false);
                if (!_noDelay && socket.ProtocolType == ProtocolType.Tcp) socket.NoDelay = false; // Herd's default is Kestrel's: on
                return _drain.Track(_connections.Create(socket));
            }
            catch (ObjectDisposedException)
            {
                return End(); // unbound: Kestrel's accept loop ends here
            }
            catch (SocketException ex) when (ex.SocketErrorCode == SocketError.OperationAborted)
            {
                return End();
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
    public ValueTask UnbindAsync(CancellationToken cancellationToken = default)
    {
        _unbound.TrySetResult();
        return _listener.DisposeAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await UnbindAsync().ConfigureAwait(false);
        End(); // a listener Kestrel never accepted on (another endpoint failed to bind) holds up no drain
    }

    // The accept loop is over: the drain no longer waits for a connection from this listener.
    private ConnectionContext? End()
    {
        if (Interlocked.Exchange(ref _ended, 1) == 0) _drain.Closed();
        return null;
    }
}
