using System.Collections.Concurrent;
using System.IO.Pipelines;
using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Http.Features;

namespace Herd.AspNetCore;

/// <summary>How a leaving worker lets go of its clients without racing them.</summary>
/// <remarks>
/// Kestrel's graceful stop (KestrelServer.StopAsync: the TransportManager unbinds, then ConnectionManager's
/// CloseAllConnectionsAsync) asks every connection to close at once. An HTTP/1.1 connection waiting for its next
/// request closes on the spot, and so does one accepted whose first request Kestrel has not read yet: a request its
/// client sent at that moment gets no response. Those were the keep-alive requests lost on reload, and the rare empty
/// responses at scale-down (a connection the primary handed the worker just before telling it to leave, whose request
/// arrived after Kestrel's stop began). So the worker drains before Kestrel stops: its listeners are closed already, so
/// no connection comes; every response says <c>Connection: close</c>, so each connection ends after the request its
/// client sends next, fresh ones included; WebSockets are told 1001 (going away); and it waits until no connection is
/// left, or the drain's bound. Kestrel then closes only what stayed idle through all of it.
/// </remarks>
internal sealed class WorkerDrain
{
    private readonly TaskCompletionSource _started = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _empty = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly ConcurrentDictionary<GoingAwayUpgrade, byte> _webSockets = new();
    private int _open; // listeners that may still accept, and connections not yet closed

    public bool IsDraining => _started.Task.IsCompleted;

    /// <summary>Completes as the drain starts.</summary>
    public Task Started => _started.Task;

    /// <summary>
    /// A listener counts until its accept loop ends, so that a connection it is taking as the drain starts is waited
    /// for too, rather than met by Kestrel's stop before its request is read.
    /// </summary>
    public void Opened() => Interlocked.Increment(ref _open);

    public void Closed()
    {
        if (Interlocked.Decrement(ref _open) == 0 && IsDraining) _empty.TrySetResult();
    }

    public ConnectionContext Track(ConnectionContext connection)
    {
        Opened();
        return new TrackedConnection(connection, this);
    }

    public void Add(GoingAwayUpgrade webSocket) => _webSockets.TryAdd(webSocket, 0);

    public void Remove(GoingAwayUpgrade webSocket) => _webSockets.TryRemove(webSocket, out _);

    /// <summary>Drains for at most <paramref name="bound"/>; returns how many connections are still open, for Kestrel to close.</summary>
    public async Task<int> DrainAsync(TimeSpan bound, CancellationToken cancellationToken)
    {
        _started.TrySetResult(); // a full barrier: a connection closing now sees it, or the check below sees the count
        if (Volatile.Read(ref _open) == 0) _empty.TrySetResult();
        // Not awaited one by one: a WebSocket whose app is stuck in a write to a slow client must not hold up the rest.
        foreach (var webSocket in _webSockets.Keys) _ = webSocket.GoAwayAsync();
        try
        {
            await _empty.Task.WaitAsync(bound, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            // What stayed idle all along closes now; a WebSocket whose app never answered the 1001 is cut.
            foreach (var webSocket in _webSockets.Keys) webSocket.Abort();
        }
        catch (OperationCanceledException)
        {
            // The host's shutdown timeout: Kestrel closes the rest.
        }
        return Volatile.Read(ref _open);
    }

    /// <summary>Kestrel's view of one connection: counted until Kestrel is done with it and disposes it.</summary>
    private sealed class TrackedConnection(ConnectionContext inner, WorkerDrain drain) : ConnectionContext
    {
        private int _disposed;

        public override string ConnectionId
        {
            get => inner.ConnectionId;
            set => inner.ConnectionId = value;
        }

        public override IFeatureCollection Features => inner.Features;

        public override IDictionary<object, object?> Items
        {
            get => inner.Items;
            set => inner.Items = value;
        }

        public override IDuplexPipe Transport
        {
            get => inner.Transport;
            set => inner.Transport = value;
        }

        public override EndPoint? LocalEndPoint
        {
            get => inner.LocalEndPoint;
            set => inner.LocalEndPoint = value;
        }

        public override EndPoint? RemoteEndPoint
        {
            get => inner.RemoteEndPoint;
            set => inner.RemoteEndPoint = value;
        }

        public override CancellationToken ConnectionClosed
        {
            get => inner.ConnectionClosed;
            set => inner.ConnectionClosed = value;
        }

        public override void Abort() => inner.Abort();

        public override void Abort(ConnectionAbortedException abortReason) => inner.Abort(abortReason);

        public override async ValueTask DisposeAsync()
        {
            try
            {
                await inner.DisposeAsync().ConfigureAwait(false);
            }
            finally
            {
                if (Interlocked.Exchange(ref _disposed, 1) == 0) drain.Closed();
            }
        }
    }
}
