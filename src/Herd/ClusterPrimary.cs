using System.Diagnostics;
using System.Net.Sockets;
using Herd.Ipc;
using Herd.Primary;

namespace Herd;

/// <summary>
/// The primary (Node's primary.js): forks workers, answers their queryServer by binding each address once, and
/// raises the cluster's events. <see cref="Cluster"/> exposes one for the process; more can be created, each with
/// its own workers, ids and servers.
/// </summary>
public sealed class ClusterPrimary : IAsyncDisposable, IProtocolHost
{
    /// <summary>Overrides the default policy, as NODE_CLUSTER_SCHED_POLICY does in Node: <c>rr</c>, <c>none</c>, <c>leastbusy</c>, <c>sticky</c> or <c>stickyaddress</c>.</summary>
    public const string PolicyVariable = "HERD_SCHED_POLICY";

    // How long after a worker's exit its channel may still be open (a grandchild holds a copy), and its output read.
    private static readonly TimeSpan ChannelGrace = TimeSpan.FromSeconds(1);
    private static readonly TimeSpan OutputGrace = TimeSpan.FromSeconds(5);

    // The lock order, everywhere: this _gate (which PrimaryProtocol takes too), then a server handle's own _gate, then a
    // channel's send lock; a lock is never taken while one later in the order is held. Methods that need a lock held
    // assert it (Debug builds).
    private readonly Lock _gate = new();
    private readonly EventQueue _events = new();
    private readonly Dictionary<int, Worker> _workers = [];
    private readonly List<Worker> _forked = [];               // forked and not yet exited, connected or not
    private readonly Dictionary<int, int> _slots = [];        // slot → workers in it not yet exited, launching ones too (two while one replaces another)
    private readonly ServerHandles _handles;
    private readonly PrimaryProtocol _protocol;
    private readonly Leadership _leadership = new();
    private readonly IDisposable _measured;
    private ClusterSettings _settings;
    private SchedulingPolicy _policy = PolicyFromEnvironment();
    private bool _policyChosen = Environment.GetEnvironmentVariable(PolicyVariable) is not null;
    private bool _policyFrozen;
    private bool _holdServers;
    private int _lastWorkerId;
    private bool _stopping;

    /// <summary>Creates a primary with the given settings (see <see cref="SetupPrimary"/>).</summary>
    public ClusterPrimary(ClusterSettings? settings = null)
    {
        Native.KernelLayout.EnsureKnown();
        _settings = settings ?? new ClusterSettings();
        _handles = new ServerHandles(_gate);
        _protocol = new PrimaryProtocol(_gate, _handles, this);
        _measured = HerdMetrics.Measure(this);
    }

    internal int QueuedConnections => _handles.Queued;

    /// <summary>What the primary does with each frame its workers send.</summary>
    internal PrimaryProtocol Protocol => _protocol;

    internal Metrics.MetricsPoll MetricsPoll => _protocol.MetricsPoll;

    /// <summary>What became of the connections this primary accepted for round robin.</summary>
    public ConnectionStats Connections => _protocol.Connections.Snapshot();

    /// <summary>The settings future forks use.</summary>
    public ClusterSettings Settings => _settings;

    /// <summary>Round robin (the default), None, LeastBusy, Sticky or StickyAddress; settable until the first <see cref="SetupPrimary"/> or <see cref="Fork"/>.</summary>
    public SchedulingPolicy SchedulingPolicy
    {
        get => _policy;
        set
        {
            if (!Enum.IsDefined(value)) throw new ArgumentOutOfRangeException(nameof(value), value, "Bad scheduling policy.");
            lock (_gate)
            {
                if (_policyFrozen) throw new InvalidOperationException("The scheduling policy is fixed once the primary is set up.");
                _policy = value;
                _policyChosen = true;
            }
        }
    }

    /// <summary>The live workers by id. A worker leaves it when it disconnects or dies.</summary>
    public IReadOnlyDictionary<int, Worker> Workers
    {
        get
        {
            lock (_gate) return new Dictionary<int, Worker>(_workers);
        }
    }

    /// <summary>Workers forked and not yet exited, connected or not: what a supervisor checks its own list against.</summary>
    internal Worker[] LiveWorkers()
    {
        lock (_gate) return [.. _forked];
    }

    /// <summary>Raised after every <see cref="SetupPrimary"/>, including the one each <see cref="Fork"/> makes.</summary>
    public event Action<ClusterSettings>? Setup;

    /// <summary>A worker was forked (Node's <c>'fork'</c> event).</summary>
    public event Action<Worker>? Forked;

    /// <summary>A worker is up and its channel works.</summary>
    public event Action<Worker>? Online;

    /// <summary>A worker listens on a server, at this address.</summary>
    public event Action<Worker, ListeningAddress>? Listening;

    /// <summary>A worker's channel closed.</summary>
    public event Action<Worker>? Disconnect;

    /// <summary>A worker process exited.</summary>
    public event Action<Worker, WorkerExit>? Exit;

    /// <summary>A worker sent a message.</summary>
    public event Action<Worker, ClusterMessage>? Message;

    /// <summary>The primary could not bind or listen on an address a worker asked for (the address, as host:port or a path, and the error): the worker's listen fails with it.</summary>
    internal event Action<string, SocketError>? BindFailed;

    /// <summary>
    /// Adopts the listening sockets systemd passed to this process (socket activation: LISTEN_PID and LISTEN_FDS), so
    /// that a worker listening on one of their addresses gets it instead of a new bind. Returns how many there were.
    /// </summary>
    public int AdoptSystemdSockets() => _protocol.Inherited.AdoptSystemd();

    /// <summary>
    /// Every listening socket this primary holds, bound or inherited (reuse-port ones aside: a successor binds its own
    /// beside them): what a primary taking over in an upgrade inherits, so that the port never closes.
    /// </summary>
    internal Socket[] ListeningSockets()
    {
        lock (_gate) return [.. _handles.Open.Select(h => h.Listener).OfType<Socket>().Distinct(), .. _protocol.Inherited.Remaining()];
    }

    /// <summary>
    /// Stops accepting on every socket, which stay open for the primary that took them over; completes once every
    /// connection already accepted has gone to a worker. The workers then drain as usual.
    /// </summary>
    internal Task StopAcceptingAsync()
    {
        lock (_gate) return Task.WhenAll(_handles.Open.Select(h => h.StopAcceptingAsync()).ToArray());
    }

    /// <summary>Merges <paramref name="settings"/> over the current ones (null properties keep theirs) and fixes the scheduling policy.</summary>
    public void SetupPrimary(ClusterSettings? settings = null)
    {
        ClusterSettings merged;
        lock (_gate)
        {
            _policyFrozen = true;
            merged = _settings = settings?.MergedOver(_settings) ?? _settings;
        }
        _events.Post(() => Setup?.Invoke(merged));
    }

    /// <summary>
    /// Starts a worker in the lowest <see cref="Worker.Slot"/> that no running worker holds, with <paramref name="env"/>
    /// added to its environment (null values remove a variable).
    /// </summary>
    public Worker Fork(IReadOnlyDictionary<string, string?>? env = null) => Start(slot: null, env);

    /// <summary>Starts a worker in <paramref name="slot"/>, whether a worker holds it or not: how a supervisor replaces one.</summary>
    internal Worker ForkInSlot(int slot) => Start(slot, env: null);

    private Worker Start(int? slot, IReadOnlyDictionary<string, string?>? env)
    {
        SetupPrimary();
        var (mine, theirs) = Native.Fd.SeqPacketPair();
        int id, held;
        WorkerProcess process;
        lock (_gate)
        {
            id = ++_lastWorkerId;
            held = slot ?? LowestFreeSlot(_slots.Keys);
            _slots[held] = _slots.GetValueOrDefault(held) + 1; // taken now, so that a concurrent fork picks another
        }
        try
        {
            using (theirs) process = WorkerLauncher.Start(_settings, env, id, held, theirs);
        }
        catch
        {
            mine.Dispose();
            lock (_gate) ReleaseSlot(held);
            throw;
        }
        var worker = new Worker(this, id, held, process, new WorkerChannel(mine)) { Channelless = _settings.PassedSockets is not null };
        lock (_gate)
        {
            _workers[id] = worker;
            _forked.Add(worker);
        }
        _events.Post(() => Forked?.Invoke(worker));
        if (worker.Channelless)
        {
            worker.Channel.Dispose(); // its peer was never passed on
            _ = ReadyOnceRunningAsync(worker, _settings.PassedReadyAfter ?? TimeSpan.Zero);
        }
        else
        {
            worker.Channel.Start(worker);
        }
        _ = WatchExitAsync(worker);
        return worker;
    }

    // A worker with no channel cannot say it is ready, and a connect to the socket it shares could reach any worker:
    // it is ready once it has run this long, as a worker that lives through MinUptime counts as started.
    private async Task ReadyOnceRunningAsync(Worker worker, TimeSpan after)
    {
        if (await Task.WhenAny(worker.Process.Exited, Task.Delay(after)).ConfigureAwait(false) == worker.Process.Exited) return;
        worker.LastHeartbeat = System.Diagnostics.Stopwatch.GetTimestamp();
        PostOnline(worker);
        worker.SetReady();
    }

    /// <summary>Disconnects every worker gracefully (Node's <c>cluster.disconnect()</c>); completes when all have exited.</summary>
    public Task DisconnectAsync(CancellationToken cancellationToken = default) =>
        Task.WhenAll(Workers.Values.Select(w => w.DisconnectAsync(cancellationToken)));

    /// <summary>Kills any worker still running, waits for them to exit, and closes every server.</summary>
    public async ValueTask DisposeAsync()
    {
        Worker[] forked;
        lock (_gate) forked = [.. _forked];
        foreach (var worker in forked) worker.Kill(UnixSignal.SIGKILL);
        await Task.WhenAll(forked.Select(w => w.Exited)).WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
        lock (_gate) _handles.CloseAll();
        _measured.Dispose();
    }

    /// <summary>
    /// While held, a server whose workers die stays open and its connections wait for their replacements: the
    /// supervisor holds them while it runs, so a cluster whose every worker dies at once refuses nobody. A server its
    /// workers let go of gracefully (closed, disconnected), or whose replacements became ready elsewhere, closes.
    /// </summary>
    internal void HoldServers(bool hold)
    {
        lock (_gate)
        {
            _holdServers = hold;
            foreach (var handle in _handles.Open) handle.Held = hold;
            if (!hold) _handles.UpdateAll(handle => handle.CloseIfIdle());
        }
    }

    /// <summary>The supervisor scaled a slot away: its reuse-port sockets close once its workers have let go of them.</summary>
    internal void RemoveSlot(int slot)
    {
        lock (_gate) _handles.UpdateAll(handle => handle.RemoveSlot(slot));
    }

    internal void BeginDisconnect(Worker worker)
    {
        lock (_gate)
        {
            if (worker.ExitedAfterDisconnect == true) return;
            worker.ExitedAfterDisconnect = true;
            if (worker.Channelless) worker.Process.Signal(UnixSignal.SIGTERM); // what servers of every language take as "finish and leave"
            else worker.Channel.SendInternal(new InternalMessage { Act = Acts.Disconnect });
            RemoveHandlesFor(worker, gone: false);
            _workers.Remove(worker.Id);
        }
        Reelect();
    }

    // Not under _gate: the election reads the candidates under it, in its own lock.
    private void Reelect() => _leadership.Elect(() =>
    {
        lock (_gate) return [.. _forked.Where(Leadership.CanLead)];
    });

    private async Task WatchExitAsync(Worker worker)
    {
        var exit = await worker.Process.Exited.ConfigureAwait(false);
        // The kernel closed the worker's end as it died; let the channel say so first, so that 'disconnect' comes
        // before 'exit' as in Node. A grandchild holding a stray copy of that end must not delay 'exit' for long.
        try
        {
            if (!worker.Channelless) await worker.Channel.Ended.WaitAsync(ChannelGrace).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            worker.Channel.Dispose();
        }
        worker.MarkDead();
        lock (_gate)
        {
            _forked.Remove(worker);
            ReleaseSlot(worker.Slot); // before 'exit' is raised, so that a handler's Fork() takes this slot again
        }
        Reelect();
        _events.Post(() =>
        {
            worker.ExitedAfterDisconnect ??= false;
            worker.State = WorkerState.Dead;
            if (!worker.IsConnected) Forget(worker);
            worker.RaiseExit(exit);
            Exit?.Invoke(worker, exit);
            worker.SetExited(exit);
        });
        // Its output has had time to be read to its end; what a grandchild still writes there is nobody's.
        await Task.Delay(OutputGrace).ConfigureAwait(false);
        worker.Process.Dispose();
    }

    internal void OnChannelClosed(Worker worker, string? error)
    {
        if (error is not null)
        {
            HerdLog.WorkerCutOff(Cluster.Logger, worker.Id, worker.Process.Id, error);
            worker.Inbox.Discard();
            worker.Kill(UnixSignal.SIGKILL);
        }
        lock (_gate) RemoveHandlesFor(worker, gone: true);
        _protocol.Tokens.Forget(worker);
        Reelect();
        _events.Post(() =>
        {
            worker.ExitedAfterDisconnect ??= false;
            if (worker.State != WorkerState.Dead) worker.State = WorkerState.Disconnected;
            if (worker.IsDead) Forget(worker);
            worker.RaiseDisconnect();
            Disconnect?.Invoke(worker);
        });
    }

    /// <summary>The lowest slot not in <paramref name="taken"/>: where a new worker goes.</summary>
    internal static int LowestFreeSlot(IEnumerable<int> taken)
    {
        var set = taken.ToHashSet();
        int slot = 0;
        while (set.Contains(slot)) slot++;
        return slot;
    }

    private void ReleaseSlot(int slot)
    {
        Debug.Assert(_gate.IsHeldByCurrentThread);
        if (--_slots[slot] == 0) _slots.Remove(slot);
    }

    private void Forget(Worker worker)
    {
        lock (_gate) _workers.Remove(worker.Id);
    }

    private void RemoveHandlesFor(Worker worker, bool gone) => _handles.UpdateAll(handle =>
    {
        if (gone) handle.WorkerGone(worker);
        else handle.Remove(worker);
    });

    /// <summary>
    /// Set by whoever stops the whole cluster on a SIGTERM or SIGINT (<c>herd run</c>): the same signal, sent to the
    /// process group or control group, reached the workers too, and they must go on serving through the drain.
    /// </summary>
    internal bool Stopping
    {
        get => Volatile.Read(ref _stopping);
        set => Volatile.Write(ref _stopping, value);
    }

    private void PostOnline(Worker worker) => _events.Post(() =>
    {
        worker.State = WorkerState.Online;
        worker.RaiseOnline();
        Online?.Invoke(worker);
    });

    bool IProtocolHost.PolicyChosen
    {
        get
        {
            Debug.Assert(_gate.IsHeldByCurrentThread);
            return _policyChosen;
        }
    }

    bool IProtocolHost.HoldsServers
    {
        get
        {
            Debug.Assert(_gate.IsHeldByCurrentThread);
            return _holdServers;
        }
    }

    bool IProtocolHost.Stopping => Stopping;

    Worker[] IProtocolHost.ConnectedBut(Worker worker)
    {
        lock (_gate) return [.. _workers.Values.Where(w => w != worker)];
    }

    void IProtocolHost.Reelect() => Reelect();

    void IProtocolHost.BeginDisconnect(Worker worker) => BeginDisconnect(worker);

    void IProtocolHost.PostOnline(Worker worker) => PostOnline(worker);

    void IProtocolHost.PostListening(Worker worker, ListeningAddress address) => _events.Post(() =>
    {
        worker.State = WorkerState.Listening;
        worker.RaiseListening(address);
        Listening?.Invoke(worker, address);
    });

    void IProtocolHost.PostMessage(Worker worker, ClusterMessage message, int size) => _events.Post(() =>
    {
        if (!worker.Inbox.Remove(size)) return;
        worker.RaiseMessage(message);
        Message?.Invoke(worker, message);
    });

    void IProtocolHost.OnBindFailed(string address, SocketError error) => BindFailed?.Invoke(address, error);

    private static SchedulingPolicy PolicyFromEnvironment() =>
        SchedulingPolicyNames.Parse(Environment.GetEnvironmentVariable(PolicyVariable)) ?? SchedulingPolicy.RoundRobin;
}
