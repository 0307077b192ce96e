using System.Net.Sockets;
using Herd.Native;
using Herd.Net;

namespace Herd.Child;

/// <summary>
/// A listening socket the primary gave this worker: a shared handle's (SCHED_NONE), which every worker accepts on, or
/// a reuse-port slot's, which the slot's worker accepts on (two during a reload). Each worker waits
/// for it in an epoll set of its own with EPOLLEXCLUSIVE, so a connection wakes one worker instead of all of them:
/// .NET's own accept registers the socket with every worker's epoll, and measured with two workers under
/// Connection: close, 44% of each worker's accept4 calls came back EAGAIN, each one a wasted wake-up. A thread of its
/// own waits only while the app waits in <see cref="AcceptAsync"/>, and completes that wait in place (no thread hop),
/// so nothing is accepted that the app has not asked for.
/// </summary>
internal sealed class SharedListener : ClusterListener
{
    private readonly Socket _socket;
    private readonly Action _onClosed;
    private readonly Epoll _epoll;
    private readonly EventFd _wake;
    private readonly object _gate = new();
    private readonly Queue<Socket> _ready = new(); // accepted for a wait that was cancelled: the next wait takes it
    private readonly TaskCompletionSource _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly Thread _thread;
    private TaskCompletionSource<Socket>? _waiter;
    private bool _closed;

    public SharedListener(Socket socket, Action onClosed) : base(socket.LocalEndPoint!)
    {
        _socket = socket;
        _onClosed = onClosed;
        // Readiness is only a hint: another worker may take the connection first, and a blocking accept4 would then
        // wait for the next one, deaf to DisposeAsync. (The flag is the socket's, so every worker sees it: all of them
        // accept this way, as .NET's own accept would have set it too.)
        socket.Blocking = false;
        _epoll = new Epoll();
        try
        {
            _wake = new EventFd();
            // Before Linux 4.5 there is no EPOLLEXCLUSIVE: every worker wakes, as with .NET's accept.
            if (!_epoll.TryWatch(socket.SafeHandle, exclusive: true)) _epoll.TryWatch(socket.SafeHandle, exclusive: false);
            _epoll.TryWatch(_wake.Handle, exclusive: false);
        }
        catch
        {
            _epoll.Dispose();
            _wake?.Dispose();
            socket.Dispose(); // it was ours
            throw;
        }
        _thread = new Thread(AcceptLoop) { IsBackground = true, Name = "herd shared accept" };
        _thread.Start();
    }

    public override async ValueTask<Socket> AcceptAsync(CancellationToken cancellationToken = default)
    {
        TaskCompletionSource<Socket> waiter;
        lock (_gate)
        {
            if (_closed) throw new ObjectDisposedException(nameof(ClusterListener));
            if (_ready.TryDequeue(out var ready)) return ready;
            if (_waiter is not null) throw new InvalidOperationException("Another accept is already waiting on this listener.");
            // Continuations run on the accept thread as it completes the wait: the app's accept loop goes on from there.
            _waiter = waiter = new TaskCompletionSource<Socket>();
            Monitor.Pulse(_gate);
        }
        using var registration = cancellationToken.Register(() =>
        {
            lock (_gate)
            {
                if (_waiter == waiter) _waiter = null;
            }
            waiter.TrySetCanceled(cancellationToken);
        });
        return await waiter.Task.ConfigureAwait(false);
    }

    public override async ValueTask DisposeAsync()
    {
        lock (_gate)
        {
            if (_closed) return;
            _closed = true;
            Monitor.Pulse(_gate);
        }
        _wake.Signal();
        // The accept thread closes the socket as it leaves: until then its epoll set may still report the shared
        // socket under this fd's number. Called from that thread (the app's accept loop runs there), it leaves next.
        if (Thread.CurrentThread != _thread) await _stopped.Task.ConfigureAwait(false);
        // Only now is the app's wait failed. A connection the thread took from the kernel as the listener closed still
        // goes to that wait: failed earlier, the connection was closed unserved, an empty response at scale-down
        // that no other worker could have prevented, the kernel having handed it to this one.
        TaskCompletionSource<Socket>? waiter;
        lock (_gate)
        {
            (waiter, _waiter) = (_waiter, null);
            while (_ready.TryDequeue(out var ready)) ready.Dispose();
        }
        waiter?.TrySetException(new ObjectDisposedException(nameof(ClusterListener)));
        _onClosed();
    }

    // Holds the socket's fd (ListenerFd) and closes the socket as it leaves.
    private void AcceptLoop()
    {
        var listener = ListenerFd.Hold(_socket);
        try
        {
            var backoff = new AcceptBackoff();
            while (WaitForWaiter())
            {
                if (!_epoll.Wait()) return; // which fd woke it does not matter: it checks for its close first, then tries an accept
                if (Volatile.Read(ref _closed)) return;
                if (listener.AcceptSocket(out int errno) is { } accepted)
                {
                    backoff.Succeeded();
                    Deliver(accepted);
                    continue;
                }
                if (AcceptBackoff.IsTransient(errno)) continue; // EAGAIN: another worker took it first
                int delayMs = backoff.Failed(LocalEndPoint.ToString() ?? "", errno); // meanwhile the other workers accept
                lock (_gate)
                {
                    if (!_closed) Monitor.Wait(_gate, delayMs);
                }
            }
        }
        finally
        {
            _epoll.Dispose();
            _wake.Dispose();
            listener.Dispose();
            _stopped.TrySetResult();
        }
    }

    // Accepts only while the app waits: a worker busy elsewhere leaves connections to the others.
    private bool WaitForWaiter()
    {
        lock (_gate)
        {
            while (_waiter is null && !_closed) Monitor.Wait(_gate);
            return !_closed;
        }
    }

    private void Deliver(Socket socket)
    {
        Prepare(socket);
        TaskCompletionSource<Socket>? waiter;
        lock (_gate) (waiter, _waiter) = (_waiter, null);
        if (waiter is not null && waiter.TrySetResult(socket)) return;
        lock (_gate)
        {
            if (!_closed)
            {
                _ready.Enqueue(socket); // its wait was cancelled as it came
                return;
            }
        }
        socket.Dispose();
    }
}
