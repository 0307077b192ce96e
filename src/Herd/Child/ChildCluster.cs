using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Herd.Ipc;
using Herd.Native;
using Herd.Net;

namespace Herd.Child;

/// <summary>
/// The worker's end of the cluster (Node's child.js): says online, asks the primary for servers, takes the
/// connections it hands over, and leaves when asked to, or at once when the primary is gone.
/// </summary>
internal sealed class ChildCluster : IChannelHandler
{
    /// <summary>Marks a worker and gives its id; the worker removes it from its environment at once.</summary>
    internal const string IdVariable = "HERD_UNIQUE_ID";

    /// <summary>
    /// The worker's end of the channel is always its fd 3, as systemd passes sockets from fd 3 (sd_listen_fds), so
    /// no variable names it. The worker checks that fd 3 is a connected AF_UNIX SOCK_SEQPACKET socket before use.
    /// </summary>
    internal const int ChannelFd = 3;

    /// <summary>The worker's slot, left in its environment for the app to read, as PM2 leaves NODE_APP_INSTANCE.</summary>
    internal const string SlotVariable = "HERD_APP_INSTANCE";

    /// <summary>Set by the primary (herd.json's <c>waitReady</c>, PM2's wait_ready): the app says itself when it is ready.</summary>
    internal const string WaitReadyVariable = "HERD_WAIT_READY";

    /// <summary>The primary's kill timeout in milliseconds, which bounds a leaving worker's drain.</summary>
    internal const string KillTimeoutVariable = "HERD_KILL_TIMEOUT";

    private readonly WorkerChannel _channel;
    private readonly EventQueue _events = new();
    private readonly Inbox _inbox = new("the worker's");
    private readonly ConcurrentDictionary<int, Request> _requests = new();
    private readonly ConcurrentDictionary<int, RoundRobinListener> _roundRobin = new();
    private readonly Dictionary<string, SortedSet<int>> _indexes = [];
    private readonly HashSet<IAsyncDisposable> _servers = [];
    private readonly Lock _gate = new();
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _seq;
    private int _readyWaits = (int)ReadyWaits.Listening; // what readiness still waits for; Ready goes out as the last clears
    private long _requestsServed;
    private long _connections;
    private int _endBy; // the signal Worker.Kill sent, which this worker then lets end it
    private PosixSignalRegistration[] _signals = []; // held: a registration the GC collects stops handling its signal
    private Metrics.MeterCollector? _meters; // under herd run --metrics only: a worker without it pays nothing

    private ChildCluster(int id, int slot, SafeFdHandle channelFd)
    {
        Worker = new CurrentWorker(this, id, slot);
        _channel = new WorkerChannel(channelFd);
        Load = new LoadReporter(_channel);
    }

    public CurrentWorker Worker { get; }

    internal LoadReporter Load { get; }

    internal WorkerChannel Channel => _channel;

    internal bool ExitedAfterDisconnect { get; private set; }

    /// <summary>Completes once this worker has told the primary it is ready.</summary>
    internal Task WhenReady => _ready.Task;

    /// <summary>How long the primary gives a leaving worker before it kills it (its default when the primary does not say).</summary>
    internal TimeSpan KillTimeout { get; private set; } = new SupervisorOptions().KillTimeout;

    internal void Post(Action raise) => _events.Post(raise);

    /// <summary>
    /// Readiness waits for <paramref name="what"/> too, and no longer for the first server to listen: whoever defers
    /// knows better when the worker is ready. No effect once the worker has said it is ready.
    /// </summary>
    internal void DeferReady(ReadyWaits what)
    {
        int waits;
        do waits = Volatile.Read(ref _readyWaits);
        while (waits != 0 && Interlocked.CompareExchange(ref _readyWaits, (waits | (int)what) & ~(int)ReadyWaits.Listening, waits) != waits);
    }

    internal void CountRequest() => Interlocked.Increment(ref _requestsServed);

    internal void CountConnection() => Interlocked.Increment(ref _connections);

    /// <summary>One thing readiness waited for is done; the last one tells the primary, once.</summary>
    internal void SignalReady(ReadyWaits what)
    {
        int waits;
        do waits = Volatile.Read(ref _readyWaits);
        while (waits != 0 && Interlocked.CompareExchange(ref _readyWaits, waits & ~(int)what, waits) != waits);
        if (waits == 0 || (waits & ~(int)what) != 0) return;
        _channel.SendInternal(new InternalMessage { Act = Acts.Ready });
        _ready.TrySetResult();
    }

    /// <summary>Becomes a worker if this process was forked as one; clears the id so that grandchildren are not.</summary>
    public static ChildCluster? TryStart()
    {
        var idText = Environment.GetEnvironmentVariable(IdVariable);
        if (idText is null) return null;
        KernelLayout.EnsureKnown();
        // The second line behind the channel's end of stream: the kernel kills a worker too wedged to read it (stopped,
        // thread pool starved) when the primary dies. Set here, by the worker, because setpriv's change of credentials
        // clears one set before exec; a primary that died before this line shows as end of stream instead.
        SignalDisposition.OnParentDeath(UnixSignal.SIGKILL);
        var slotText = Environment.GetEnvironmentVariable(SlotVariable);
        var waitReady = Environment.GetEnvironmentVariable(WaitReadyVariable) is "1" or "true";
        var killTimeoutText = Environment.GetEnvironmentVariable(KillTimeoutVariable);
        Environment.SetEnvironmentVariable(IdVariable, null);
        Environment.SetEnvironmentVariable(WaitReadyVariable, null);
        Environment.SetEnvironmentVariable(KillTimeoutVariable, null);
        if (!int.TryParse(idText, out int id)) throw new InvalidOperationException($"{IdVariable}={idText} does not name a Herd worker.");
        if (ChannelProblem() is { } problem)
            throw new InvalidOperationException($"{IdVariable} is set, but fd {ChannelFd} is not a Herd channel: {problem}. Start workers through a Herd primary.");
        // Absent only under a primary older than slots (a rolling reload can run newer workers): slot 0 then.
        int slot = 0;
        if (slotText is not null && (!int.TryParse(slotText, out slot) || slot < 0))
            throw new InvalidOperationException($"{SlotVariable}={slotText} does not name a worker slot.");
        Fd.CloseOnExecFrom3();
        var child = new ChildCluster(id, slot, new SafeFdHandle(ChannelFd));
        if (int.TryParse(killTimeoutText, System.Globalization.CultureInfo.InvariantCulture, out int killMs) && killMs >= 0)
            child.KillTimeout = TimeSpan.FromMilliseconds(killMs);
        if (waitReady) child.DeferReady(ReadyWaits.App);
        if (Metrics.MeterCollector.Enabled) child._meters = new Metrics.MeterCollector(static meter => meter.Name != HerdMetrics.MeterName);
        child._channel.Start(child);
        child._signals = [.. new[] { PosixSignal.SIGTERM, PosixSignal.SIGINT }.Select(signal => PosixSignalRegistration.Create(signal, child.OnTerminationSignal))];
        child._channel.SendInternal(new InternalMessage { Act = Acts.Online });
        return child;
    }

    /// <summary>
    /// SIGTERM and SIGINT reach a worker mostly with its whole process group or control group (a terminal's Ctrl-C,
    /// systemd's stop), and then reach its primary too, which drains every worker as <c>herd stop</c> does: the worker
    /// carries on and tells the primary, which also decides what the signal means when it was this worker's alone.
    /// </summary>
    private void OnTerminationSignal(PosixSignalContext context)
    {
        int signal = (int)(context.Signal == PosixSignal.SIGTERM ? UnixSignal.SIGTERM : UnixSignal.SIGINT);
        if (Volatile.Read(ref _endBy) == signal) return; // Worker.Kill's: the runtime's default, which ends the process
        if (_channel.SendInternal(new InternalMessage { Act = Acts.Signal, Signal = signal })) context.Cancel = true;
    }

    // What the primary hands over is one end of a socketpair(AF_UNIX, SOCK_SEQPACKET): connected, not listening.
    private static string? ChannelProblem()
    {
        using var channel = new SafeFdHandle(ChannelFd, ownsHandle: false);
        return SocketOptions.KindOf(channel) switch
        {
            null => "not an open socket",
            (Libc.AF_UNIX, Libc.SOCK_SEQPACKET, false) => null,
            var (domain, type, listening) => $"a socket of domain {domain} and type {type}{(listening ? ", listening" : "")}",
        };
    }

    public async ValueTask<ClusterListener> ListenAsync(EndPoint endPoint, ClusterListenOptions options, CancellationToken cancellationToken)
    {
        var address = AddressKey.Of(endPoint, udp: false);
        var listener = await QueryServerAsync<ClusterListener>(address, options, (reply, index, fd) =>
        {
            ClusterListener? created = null;
            void OnClosed() => CloseServer(address, index, reply.Key!, created!);
            if (reply.Shared)
            {
                var socket = fd!.ToSocket();
                socket.Listen(options.Backlog);
                return created = new SharedListener(socket, OnClosed);
            }
            var local = new AddressKey(reply.Address ?? address.Address, reply.Port, address.AddressType).ToEndPoint();
            var roundRobin = new RoundRobinListener(this, reply.HandleId, local, OnClosed);
            _roundRobin[reply.HandleId] = roundRobin;
            if (reply.LeastBusy) Load.Start();
            if (reply.Sticky) ReportsTokens = true;
            return created = roundRobin;
        }, cancellationToken).ConfigureAwait(false);
        NotifyListening(listener.LocalEndPoint, udp: false);
        return listener;
    }

    public async ValueTask<Socket> BindUdpAsync(IPEndPoint endPoint, ClusterListenOptions options, CancellationToken cancellationToken)
    {
        var address = AddressKey.Of(endPoint, udp: true);
        var server = await QueryServerAsync(address, options, (_, _, fd) => new UdpServer(fd!.ToSocket()), cancellationToken).ConfigureAwait(false);
        NotifyListening(server.Socket.LocalEndPoint!, udp: true);
        return server.Socket;
    }

    /// <summary>
    /// Asks the primary for a server. <paramref name="create"/> runs on the channel's thread as the reply arrives,
    /// so a round-robin listener is registered before the primary's first newconn for it can be read.
    /// </summary>
    private async Task<T> QueryServerAsync<T>(AddressKey address, ClusterListenOptions options, Func<InternalMessage, int, SafeFdHandle?, T> create, CancellationToken cancellationToken)
        where T : class, IAsyncDisposable
    {
        int index = AllocateIndex(address);
        var query = new InternalMessage
        {
            Act = Acts.QueryServer, Address = address.Address, Port = address.Port, AddressType = address.AddressType,
            Index = index, Backlog = options.Backlog, ReusePort = options.ReusePort, PrefersSticky = options.PrefersSticky,
        };
        var result = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        void OnReply(Reply reply)
        {
            if (reply.Message.SocketError != SocketError.Success || (reply.Message.Shared && reply.Fd is null))
            {
                ReleaseIndex(address, index);
                reply.Fd?.Dispose();
                result.TrySetException(new SocketException((int)(reply.Message.SocketError != SocketError.Success ? reply.Message.SocketError : SocketError.SocketError)));
                return;
            }
            T server;
            try
            {
                server = create(reply.Message, index, reply.Fd);
            }
            catch (Exception ex) when (ex is System.ComponentModel.Win32Exception or SocketException)
            {
                // Out of fds, say, for what a listener needs besides the socket: the caller hears it, not the channel.
                ReleaseIndex(address, index);
                result.TrySetException(ex);
                return;
            }
            Track(server);
            if (!result.TrySetResult(server)) _ = server.DisposeAsync(); // the caller stopped waiting
        }
        void OnFailed(Exception error)
        {
            ReleaseIndex(address, index);
            result.TrySetException(error);
        }
        using var registration = cancellationToken.Register(() => result.TrySetCanceled(cancellationToken));
        Send(query, new Request(OnReply, OnFailed));
        return await result.Task.ConfigureAwait(false);
    }

    internal void NotifyListening(EndPoint local, bool udp)
    {
        // Ready first, when listening is all it waited for: whoever sees this worker listening may send it traffic
        // (a round-robin primary hands connections only to ready workers).
        SignalReady(ReadyWaits.Listening);
        var address = ListeningAddress.Of(local, udp);
        _channel.SendInternal(new InternalMessage
        {
            Act = Acts.Listening, Address = address.Address, Port = address.Port, AddressType = AddressKey.Of(local, udp).AddressType,
        });
    }

    private void Track(IAsyncDisposable server)
    {
        lock (_gate) _servers.Add(server);
    }

    private void CloseServer(AddressKey address, int index, string key, ClusterListener listener)
    {
        if (listener is RoundRobinListener roundRobin) _roundRobin.TryRemove(roundRobin.HandleId, out _);
        lock (_gate) _servers.Remove(listener);
        ReleaseIndex(address, index);
        _channel.SendInternal(new InternalMessage { Act = Acts.Close, Key = key });
    }

    private int AllocateIndex(AddressKey address)
    {
        lock (_gate)
        {
            var key = address.ToString();
            if (!_indexes.TryGetValue(key, out var set)) _indexes[key] = set = [];
            int index = set.Count == 0 ? 0 : set.Max + 1;
            set.Add(index);
            return index;
        }
    }

    private void ReleaseIndex(AddressKey address, int index)
    {
        lock (_gate)
        {
            var key = address.ToString();
            if (_indexes.TryGetValue(key, out var set) && set.Remove(index) && set.Count == 0) _indexes.Remove(key);
        }
    }

    private void Send(InternalMessage message, Request request)
    {
        message.Seq = Interlocked.Increment(ref _seq);
        _requests[message.Seq] = request;
        if (!_channel.SendInternal(message) && _requests.TryRemove(message.Seq, out _))
            request.OnFailed(new InvalidOperationException("The channel to the primary is closed."));
    }

    /// <summary>Under <see cref="SchedulingPolicy.Sticky"/>: the primary wants to hear of each SignalR connection token this worker issues.</summary>
    internal bool ReportsTokens { get; private set; }

    /// <summary>Tells the primary that requests carrying <paramref name="token"/> are this worker's; completes once it knows.</summary>
    internal Task StickAsync(string token, CancellationToken cancellationToken)
    {
        var known = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Send(new InternalMessage { Act = Acts.Sticky, Token = token }, new Request(_ => known.TrySetResult(), e => known.TrySetException(e)));
        return known.Task.WaitAsync(cancellationToken);
    }

    /// <summary>A backplane payload from another worker, through the primary; raised on the channel's thread, in order.</summary>
    internal event Action<ReadOnlyMemory<byte>>? Relayed;

    /// <summary>Sends a backplane payload to every other worker, through the primary. False when the channel is closed.</summary>
    internal bool Relay(ReadOnlySpan<byte> payload)
    {
        var frame = new byte[payload.Length + 1];
        frame[0] = (byte)FrameKind.Relay;
        payload.CopyTo(frame.AsSpan(1));
        return _channel.Send(frame);
    }

    internal void SendAccepted(int handleId, uint connectionId, bool ok)
    {
        Span<byte> frame = stackalloc byte[Accepted.Size];
        new Accepted(handleId, connectionId, ok).Write(frame);
        _channel.Send(frame);
    }

    Inbox IChannelHandler.Inbox => _inbox;

    void IChannelHandler.OnMessage(ClusterMessage message, int size) => _events.Post(() =>
    {
        if (_inbox.Remove(size)) Worker.RaiseMessage(message);
    });

    // As in the primary: a frame that breaks the protocol closes the channel, and the worker leaves.
    string? IChannelHandler.OnFrame(FrameKind kind, ReadOnlySpan<byte> frame, ReceivedFds fds)
    {
        switch (kind)
        {
            case FrameKind.NewConn:
                if (!NewConn.TryRead(frame, out var newConn) || fds.Count != newConn.Count) return "a newconn frame without its connections";
                _roundRobin.TryGetValue(newConn.HandleId, out var listener);
                for (uint i = 0; i < newConn.Count; i++)
                {
                    var fd = fds.Take()!;
                    uint id = newConn.FirstConnectionId + i;
                    if (listener is not null && listener.Offer(id, fd)) continue;
                    fd.Dispose();
                    SendAccepted(newConn.HandleId, id, false);
                }
                return null;
            case FrameKind.Relay:
                Relayed?.Invoke(frame[1..].ToArray());
                return null;
            default:
                return Frames.Unexpected(kind, frame);
        }
    }

    void IChannelHandler.OnInternal(InternalMessage message, ReceivedFds fds)
    {
        if (message.Ack is { } ack && _requests.TryRemove(ack, out var request))
        {
            request.OnReply(new Reply(message, fds.Take()));
            return;
        }
        if (message.Act == Acts.Disconnect)
        {
            _ = DisconnectAsync(primaryInitiated: true);
            return;
        }
        if (message.Act == Acts.Kill && message.Signal is (int)UnixSignal.SIGTERM or (int)UnixSignal.SIGINT)
        {
            Volatile.Write(ref _endBy, message.Signal);
            Fd.Kill(Libc.GetPid(), message.Signal);
            return;
        }
        if (message.Act == Acts.Leader)
        {
            bool leader = message.Leader;
            _events.Post(() => Worker.SetLeader(leader));
            return;
        }
        if (message.Act == Acts.Heartbeat)
        {
            // Answered from the thread pool, not this thread: a worker whose pool is starved or deadlocked stays silent.
            ThreadPool.UnsafeQueueUserWorkItem(static child => child._channel.SendInternal(new InternalMessage
            {
                Act = Acts.Heartbeat, Requests = Interlocked.Read(ref child._requestsServed), Connections = Interlocked.Read(ref child._connections),
            }), this, preferLocal: false);
            return;
        }
        if (message.Act == Acts.Metrics)
        {
            ThreadPool.UnsafeQueueUserWorkItem(static state => state.Child._channel.SendInternal(MetricsReply.To(state.Seq, state.Child._meters)),
                (Child: this, message.Seq), preferLocal: false);
            return;
        }
        HerdLog.DroppedMessage(Cluster.Logger, "the primary", $"an unknown act '{message.Act}'");
    }

    void IChannelHandler.OnClosed(string? error)
    {
        foreach (var seq in _requests.Keys)
        {
            if (_requests.TryRemove(seq, out var request)) request.OnFailed(new InvalidOperationException("The channel to the primary closed."));
        }
        if (ExitedAfterDisconnect)
        {
            _events.Post(Worker.RaiseDisconnect);
            return;
        }
        // The primary died (even by SIGKILL) or cut us off: leave now, so that no orphan keeps serving the port.
        HerdLog.PrimaryGone(Cluster.Logger, Worker.Id, error ?? "end of stream");
        var watchdog = new Thread(() =>
        {
            Thread.Sleep(500);
            Libc.Exit(0); // exit hooks that wait on a graceful host stop must not keep an orphan alive
        }) { IsBackground = true };
        watchdog.Start();
        _events.Post(() =>
        {
            Worker.RaiseDisconnect();
            Environment.Exit(0);
        });
    }

    /// <summary>
    /// Node's _disconnect: close every server (round-robin connections not yet accepted go back to the primary).
    /// When the worker leaves of its own accord, the primary hears so before the servers close: an app whose Main
    /// returns once its servers are closed may exit at once, and the primary must still see ExitedAfterDisconnect.
    /// </summary>
    internal async Task DisconnectAsync(bool primaryInitiated, CancellationToken cancellationToken = default)
    {
        IAsyncDisposable[] servers;
        lock (_gate)
        {
            if (ExitedAfterDisconnect) return;
            ExitedAfterDisconnect = true;
            servers = [.. _servers];
            _servers.Clear();
        }
        var acknowledged = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!primaryInitiated)
            Send(new InternalMessage { Act = Acts.ExitedAfterDisconnect }, new Request(_ => acknowledged.TrySetResult(), e => acknowledged.TrySetException(e)));
        foreach (var server in servers) await server.DisposeAsync().ConfigureAwait(false);
        if (primaryInitiated)
        {
            // The process leaves when the app's work is done; the channel closes with it.
            _events.Post(Worker.RaiseDisconnect);
            return;
        }
        try
        {
            await acknowledged.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _channel.Dispose();
        }
    }

    /// <summary>What a worker's readiness waits for; each is cleared once, and the worker is ready when none is left.</summary>
    [Flags]
    internal enum ReadyWaits
    {
        /// <summary>Its first server to listen: a worker that defers nothing is ready then, as before readiness could wait.</summary>
        Listening = 1,

        /// <summary>The app's own <see cref="CurrentWorker.SignalReady"/>, after <see cref="CurrentWorker.DeferReady"/> or herd.json's waitReady.</summary>
        App = 2,

        /// <summary>Herd.AspNetCore: the host has started, every endpoint bound, and its health checks report Healthy.</summary>
        Host = 4,
    }

    private readonly record struct Reply(InternalMessage Message, SafeFdHandle? Fd);

    private sealed record Request(Action<Reply> OnReply, Action<Exception> OnFailed);

    private sealed class UdpServer(Socket socket) : IAsyncDisposable
    {
        public Socket Socket => socket;

        public ValueTask DisposeAsync()
        {
            socket.Dispose();
            return ValueTask.CompletedTask;
        }
    }
}
