using System.Diagnostics;
using System.Threading.Channels;
using Herd.Supervision;

namespace Herd;

/// <summary>
/// Keeps a primary's workers up, as PM2 or Gunicorn would: restarts a worker that dies, with exponential backoff per
/// slot, and gives up on a slot whose workers crash in a loop; replaces workers one batch at a time with zero downtime,
/// retiring an old worker only once its replacement is ready, and keeping it when the replacement never is; stops
/// gracefully, killing whatever outlasts <see cref="SupervisorOptions.KillTimeout"/>.
/// </summary>
/// <remarks>
/// <para>
/// Workers keep their slots (<see cref="Worker.Slot"/>): a restarted or reloaded worker's replacement takes its slot,
/// scaling up adds the lowest free slots and scaling down removes the highest, whether their worker serves, waits out a
/// restart's backoff or is errored. In reuse-port mode a slot is a listening socket that the primary keeps while its
/// worker is replaced, so the connections queued in it wait for the replacement.
/// </para>
/// <para>
/// One loop owns every slot and the supervisor's <see cref="State"/>: each operation and each event (a worker ready,
/// dead, past its ready or kill timeout, a backoff over, a heartbeat tick) is a command it handles in turn, against the
/// state as it is then. Start, reload, restart (and recycling) and scale are operations that run one at a time, in the
/// order asked; each is checked when its turn comes. What each does in each state:
/// </para>
/// <list type="table">
/// <listheader><term>operation</term><description>behaviour</description></listheader>
/// <item><term>start</term><description>Only from <see cref="SupervisorState.Idle"/>; fails with
/// <see cref="WorkerNotReadyException"/> when a worker dies or is not ready in time (the slot's restarts go on).</description></item>
/// <item><term>reload</term><description>Replaces every slot (a slot waiting for a restart or errored gets a fresh worker).
/// Asked while a reload runs, it is queued once: every caller meanwhile shares that one next reload, which runs when the
/// current one ends, so every worker runs the code as of the last request. A new worker that dies or is not ready in time
/// fails it (<see cref="ReloadFailedException"/>): that worker is stopped and never restarted, the slots keep their old
/// workers, and <see cref="LastReloadFailure"/> says why.</description></item>
/// <item><term>restart</term><description>Replaces one worker the same way. Refused while a reload runs or is queued
/// (that reload replaces it), and when its turn comes if the worker has exited or been replaced meanwhile.</description></item>
/// <item><term>scale</term><description>Counts every slot, serving or not. Beyond <see cref="SupervisorOptions.MaxWorkers"/>
/// it is refused and changes nothing; a relative scale never goes below none. A scale-up whose new worker is not ready
/// is undone.</description></item>
/// <item><term>stop</term><description>Pre-empts everything: the operation under way is given up (its new workers
/// killed), the queued ones refused; then the drain delay, then every worker leaves. It always completes, and a cancelled
/// <see cref="StopAsync"/> stops waiting, never the stop.</description></item>
/// <item><term>crash restart</term><description>A worker that dies on its own is replaced in its slot after the slot's
/// backoff. After <see cref="SupervisorOptions.MaxRestarts"/> unstable crashes in a row the slot is
/// <see cref="SlotState.Errored"/> and the others serve on; when every slot is errored, the supervisor is
/// <see cref="SupervisorState.Errored"/> and raises <see cref="Errored"/>. A worker that dies while its replacement
/// starts is not restarted: the replacement is coming.</description></item>
/// <item><term>heartbeat and recycling</term><description>A hung worker is killed (then restarted as a crash); a worker
/// past a recycling limit is restarted as by a restart, queued behind the operations asked before.</description></item>
/// </list>
/// <para>
/// After every command the loop checks its invariants: every process the primary forked is in a slot or leaving; a slot
/// has one serving worker, and a second only while a replacement for it starts; outside an operation, the slots number
/// the target and no worker is leaving. A breach fails a Debug build's assertion and is logged in Release.
/// The supervisor expects to be the only one forking on its primary.
/// </para>
/// </remarks>
public sealed partial class Supervisor : IAsyncDisposable
{
    private readonly ClusterPrimary _primary;
    private readonly SupervisorOptions _options;
    private readonly EventQueue _events = new();
    // Unbounded: a worker's exit or readiness must never be dropped nor make the primary's event thread wait; callers
    // are few (the control socket's connections, signals, timers), and each waits for its own answer.
    private readonly Channel<Command> _commands = Channel.CreateUnbounded<Command>(new UnboundedChannelOptions { SingleReader = true });
    private readonly CancellationTokenSource _lifetime = new();
    private readonly Task _loop;
    private readonly HashSet<int> _foreign;

    // The loop's own state: only the loop reads or writes it.
    private readonly SortedDictionary<int, Slot> _slots = [];
    private readonly Dictionary<Worker, long> _alive = [];          // every worker it forked that has not exited → when (Stopwatch timestamp)
    private readonly Dictionary<Worker, long> _leaving = [];        // asked to leave, not yet exited → when
    private readonly HashSet<Worker> _online = [];
    private readonly HashSet<Worker> _killed = [];                  // hung, killed, not yet seen exiting
    private readonly HashSet<Worker> _recycling = [];
    private readonly Dictionary<Worker, long> _requestLimits = [];
    private readonly Queue<Operation> _queue = new();
    private readonly List<TaskCompletionSource> _stopWaiters = [];
    private readonly List<Action> _settle = [];                     // completions, run once the view is published
    private SupervisorState _state;
    private Operation? _active;
    private int _target;
    private int _restarts;
    private string? _lastReloadFailure;
    private int _disposed;

    private volatile View _view = new(SupervisorState.Idle, [], [], 0, null);

    /// <summary>Supervises <paramref name="primary"/>'s workers.</summary>
    public Supervisor(ClusterPrimary primary, SupervisorOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(primary);
        _primary = primary;
        _options = options ?? new SupervisorOptions();
        _options.Validate();
        _foreign = [.. primary.LiveWorkers().Select(w => w.Id)];
        _primary.Exit += OnExit;
        _primary.Online += OnOnline;
        _loop = Task.Run(RunAsync);
        _ = TickAsync();
    }

    /// <summary>Where the supervisor is.</summary>
    public SupervisorState State => _view.State;

    /// <summary>The workers that serve its slots, or start in them, by slot; replacements still starting are not among them.</summary>
    public IReadOnlyCollection<Worker> Workers => _view.Workers;

    /// <summary>Its slots, by index: each one's state, worker, replacement and restart count.</summary>
    public IReadOnlyList<SupervisedSlot> Slots => _view.Slots;

    /// <summary>How many workers it has restarted after an unexpected exit, over every slot.</summary>
    public int Restarts => _view.Restarts;

    /// <summary>Why the last reload failed, or null when it succeeded or none ran yet.</summary>
    public string? LastReloadFailure => _view.LastReloadFailure;

    /// <summary>A worker died unexpectedly and will be replaced after the delay given.</summary>
    public event Action<Worker, WorkerExit, TimeSpan>? Restarting;

    /// <summary>Every slot crashed <see cref="SupervisorOptions.MaxRestarts"/> times in a row; the supervisor gave up on them.</summary>
    public event Action<string>? Errored;

    /// <summary>A worker stopped answering heartbeats and was killed; it is replaced like any worker that dies.</summary>
    public event Action<Worker, TimeSpan>? Hung;

    /// <summary>A worker reached a recycling limit (the reason says which) and is being replaced gracefully.</summary>
    public event Action<Worker, string>? Recycling;

    /// <summary>Forks the workers and waits until every one is ready.</summary>
    /// <exception cref="WorkerNotReadyException">A worker died before it was ready, or was not ready within <see cref="SupervisorOptions.ReadyTimeout"/>.</exception>
    /// <exception cref="InvalidOperationException">The supervisor was started or stopped already.</exception>
    public Task StartAsync(CancellationToken cancellationToken = default) => SubmitAsync(new Start(this), cancellationToken);

    /// <summary>
    /// Replaces every worker, <see cref="SupervisorOptions.ReloadBatchSize"/> at a time: forks the new ones, waits
    /// until they are ready, then disconnects the old ones gracefully. Connections keep flowing throughout.
    /// </summary>
    /// <exception cref="ReloadFailedException">A new worker died or was not ready in time; it was stopped and the old ones kept.</exception>
    /// <exception cref="InvalidOperationException">The supervisor is not running (stopping, errored, not started).</exception>
    public Task ReloadAsync(CancellationToken cancellationToken = default) => SubmitAsync(new Replace(this, target: null, recycle: false), cancellationToken);

    /// <summary>Replaces one worker the same way: its replacement must be ready before it leaves.</summary>
    /// <exception cref="ArgumentException">The supervisor does not keep that worker.</exception>
    /// <exception cref="ReloadFailedException">The replacement was not ready in time; the worker was kept.</exception>
    /// <exception cref="InvalidOperationException">A reload replaces it already, or it exited or was replaced before the restart's turn.</exception>
    public Task RestartAsync(Worker worker, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(worker);
        if (!Workers.Contains(worker)) throw new ArgumentException($"{worker} is not one of this supervisor's workers.", nameof(worker));
        return SubmitAsync(new Replace(this, worker, recycle: false), cancellationToken);
    }

    /// <summary>
    /// Runs <paramref name="workers"/> workers from now on: forks the missing ones into the lowest free slots, or removes
    /// the highest slots, retiring their workers gracefully. A removed slot's reuse-port sockets close, which resets the connections queued in
    /// them (see <see cref="ClusterListenOptions.ReusePort"/>).
    /// </summary>
    /// <exception cref="ArgumentOutOfRangeException">Negative, or over <see cref="SupervisorOptions.MaxWorkers"/>.</exception>
    public Task ScaleAsync(int workers, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(workers);
        if (workers > _options.MaxWorkers) throw TooMany(workers);
        return SubmitAsync(new Scale(this, _ => workers), cancellationToken);
    }

    /// <summary>Runs <paramref name="delta"/> more (or, negative, fewer) workers than it runs when its turn comes; never fewer than none.</summary>
    /// <exception cref="ArgumentOutOfRangeException">The result would be over <see cref="SupervisorOptions.MaxWorkers"/>.</exception>
    public Task ScaleByAsync(int delta, CancellationToken cancellationToken = default) =>
        SubmitAsync(new Scale(this, current => Math.Max(0, current + (long)delta)), cancellationToken);

    /// <summary>
    /// Gives up the operation under way, keeps serving for the drain delay, then disconnects every worker gracefully,
    /// kills those that outlast the kill timeout, and restarts none. Completes once every worker has exited; cancelling
    /// <paramref name="cancellationToken"/> stops the wait, not the stop.
    /// </summary>
    public Task StopAsync(CancellationToken cancellationToken = default)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        if (!_commands.Writer.TryWrite(new StopCommand(done))) return Task.CompletedTask; // disposed: stopped already
        return done.Task.WaitAsync(cancellationToken);
    }

    /// <summary>Stops, then lets go of the primary.</summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1) return;
        await StopAsync().ConfigureAwait(false);
        _commands.Writer.TryComplete();
        await _loop.ConfigureAwait(false);
        await _lifetime.CancelAsync().ConfigureAwait(false);
        _primary.Exit -= OnExit;
        _primary.Online -= OnOnline;
        _lifetime.Dispose();
    }

    private ArgumentOutOfRangeException TooMany(long workers) => new("workers",
        $"{workers} workers is over the maximum of {_options.MaxWorkers} (SupervisorOptions.MaxWorkers; maxInstances in herd.json).");

    private async Task SubmitAsync(Operation operation, CancellationToken cancellationToken)
    {
        if (!_commands.Writer.TryWrite(new Enqueue(operation))) throw new ObjectDisposedException(nameof(Supervisor));
        await operation.Done.Task.WaitAsync(cancellationToken).ConfigureAwait(false);
    }

    private void Post(Command command) => _commands.Writer.TryWrite(command);

    private void PostAfter(TimeSpan delay, Command command) => _ = PostAfterAsync(delay, command);

    private async Task PostAfterAsync(TimeSpan delay, Command command)
    {
        try
        {
            await Task.Delay(delay, _lifetime.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
            return;
        }
        Post(command);
    }

    // Handlers run in order, off the loop, once the view they may read is published.
    private void Raise(Action raise) => _settle.Add(() => _events.Post(raise));

    private void OnExit(Worker worker, WorkerExit exit) => Post(new Exited(worker, exit));

    private void OnOnline(Worker worker) => Post(new WentOnline(worker));

    private async Task TickAsync()
    {
        using var timer = new PeriodicTimer(_options.HeartbeatInterval);
        try
        {
            while (await timer.WaitForNextTickAsync(_lifetime.Token).ConfigureAwait(false)) Post(new Tick());
        }
        catch (OperationCanceledException)
        {
            // disposed
        }
    }

    private async Task RunAsync()
    {
        await foreach (var command in _commands.Reader.ReadAllAsync().ConfigureAwait(false))
        {
            try
            {
                Handle(command);
                Pump();
            }
#pragma warning disable CA1031 // a failed fork or a bug in one command must not end supervision: the operation under way fails
            catch (Exception ex)
#pragma warning restore CA1031
            {
                HerdLog.SupervisorFailed(Cluster.Logger, command.GetType().Name, ex);
                if (_active is { } operation)
                {
                    operation.Cancel();
                    operation.Fail(ex);
                }
                _target = _slots.Count; // the transition stops where it got to
            }
            CheckInvariants();
            Publish();
        }
    }

    private void Handle(Command command)
    {
        switch (command)
        {
            case Enqueue(var operation):
                Accept(operation);
                break;
            case StopCommand(var done):
                Stop(done);
                break;
            case WentOnline(var worker):
                if (_alive.ContainsKey(worker)) _online.Add(worker);
                break;
            case Ready(var worker):
                OnReady(worker);
                break;
            case Exited(var worker, var exit):
                OnExited(worker, exit);
                break;
            case ReadyTimedOut(var worker):
                if (_alive.ContainsKey(worker) && !worker.Ready.IsCompleted) _active?.OnNotReady(worker, null, _online.Contains(worker));
                break;
            case KillTimedOut(var worker):
                if (_leaving.ContainsKey(worker)) worker.Kill(UnixSignal.SIGKILL);
                break;
            case BackoffOver(var index, var generation):
                RestartSlot(index, generation);
                break;
            case DrainOver:
                if (_state == SupervisorState.Draining) EnterStopped();
                break;
            case Tick:
                Watch();
                break;
        }
    }

    // An operation arrives: queued, joined to the queued reload, or refused at once when its answer is already known.
    private void Accept(Operation operation)
    {
        if (operation is Replace { Target: { } target })
        {
            bool reloading = _active is Replace { Target: null } || _queue.Any(o => o is Replace { Target: null });
            if (reloading)
            {
                operation.Fail(new InvalidOperationException(_slots.TryGetValue(target.Slot, out var slot) && slot.Current == target
                    ? $"{Name(target)} is being replaced by the reload in progress."
                    : $"{Name(target)} is no longer running: a reload replaced it."));
                return;
            }
        }
        if (operation is Replace { Target: null } && _queue.OfType<Replace>().FirstOrDefault(o => o.Target is null) is { } queued)
        {
            _ = MirrorAsync(queued.Done.Task, operation.Done);
            return;
        }
        _queue.Enqueue(operation);
    }

    private static async Task MirrorAsync(Task source, TaskCompletionSource target)
    {
        try
        {
            await source.ConfigureAwait(false);
            target.TrySetResult();
        }
#pragma warning disable CA1031 // handed on to the joined caller
        catch (Exception ex)
#pragma warning restore CA1031
        {
            target.TrySetException(ex);
        }
    }

    // The next queued operation begins once none is under way.
    private void Pump()
    {
        while (_active is null && _queue.TryDequeue(out var operation))
        {
            _active = operation;
            operation.Begin();
        }
    }

    /// <summary>Why an operation that needs a running supervisor cannot run now, or null when it can.</summary>
    private string? NotRunning() => _state switch
    {
        SupervisorState.Running => null,
        SupervisorState.Idle => "The supervisor has not started.",
        SupervisorState.Errored => "The app is errored: every slot's workers crashed in a loop.",
        _ => "The supervisor is stopping.",
    };

    private void Stop(TaskCompletionSource done)
    {
        _stopWaiters.Add(done);
        switch (_state)
        {
            case SupervisorState.Idle:
                _state = SupervisorState.Stopped;
                RefuseAll();
                break;
            case SupervisorState.Running or SupervisorState.Errored:
                if (_active is { } operation)
                {
                    operation.Cancel();
                    operation.Fail(new InvalidOperationException("The supervisor is stopping."));
                }
                RefuseAll();
                if (_state == SupervisorState.Running && _options.DrainDelay > TimeSpan.Zero)
                {
                    _state = SupervisorState.Draining;
                    PostAfter(_options.DrainDelay, new DrainOver());
                }
                else
                {
                    EnterStopped();
                }
                break;
        }
        SettleStop();
    }

    private void RefuseAll()
    {
        while (_queue.TryDequeue(out var queued)) queued.Fail(new InvalidOperationException(NotRunning() ?? "The supervisor is stopping."));
    }

    private void EnterStopped()
    {
        _state = SupervisorState.Stopped;
        _primary.HoldServers(false);
        foreach (var slot in _slots.Values)
        {
            slot.Generation++;
            slot.State = SlotState.Stopped;
            foreach (var worker in new[] { slot.Current, slot.Incoming }.OfType<Worker>()) Retire(worker);
            slot.Current = slot.Incoming = null;
        }
        _slots.Clear();
    }

    private void SettleStop()
    {
        if (_state != SupervisorState.Stopped || _leaving.Count > 0) return;
        foreach (var waiter in _stopWaiters) _settle.Add(() => waiter.TrySetResult());
        _stopWaiters.Clear();
    }

    private Worker Fork(int slot)
    {
        var worker = _primary.ForkInSlot(slot);
        _alive[worker] = Stopwatch.GetTimestamp();
        _ = worker.Ready.ContinueWith(_ => Post(new Ready(worker)), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
        PostAfter(_options.ReadyTimeout, new ReadyTimedOut(worker));
        return worker;
    }

    // Graceful disconnect, then SIGKILL after the kill timeout. Nothing restarts a leaving worker.
    private void Retire(Worker worker)
    {
        if (!_alive.ContainsKey(worker) || !_leaving.TryAdd(worker, Stopwatch.GetTimestamp())) return;
        _ = worker.DisconnectAsync();
        PostAfter(_options.KillTimeout, new KillTimedOut(worker));
    }

    // A slot scaled away: its workers leave, nothing comes back to it, and its reuse-port sockets close once they let go.
    private void RemoveSlot(Slot slot, HashSet<Worker> retiring)
    {
        _slots.Remove(slot.Index);
        slot.Generation++;
        slot.State = SlotState.Stopped;
        foreach (var worker in new[] { slot.Current, slot.Incoming }.OfType<Worker>().Where(_alive.ContainsKey))
        {
            Retire(worker);
            retiring.Add(worker);
        }
        slot.Current = slot.Incoming = null;
        _primary.RemoveSlot(slot.Index);
    }

    private void OnReady(Worker worker)
    {
        if (!_alive.ContainsKey(worker)) return;
        if (_slots.TryGetValue(worker.Slot, out var slot) && slot.Current == worker && slot.State == SlotState.Starting) slot.State = SlotState.Running;
        _active?.OnReady(worker);
    }

    private void OnExited(Worker worker, WorkerExit exit)
    {
        // Readiness and death race to the loop; a worker that was ready counts as ready first.
        if (worker.Ready.IsCompleted) OnReady(worker);
        if (!_alive.Remove(worker, out long forkedAt)) return;
        bool connected = _online.Remove(worker);
        _killed.Remove(worker);
        _requestLimits.Remove(worker);
        if (_leaving.Remove(worker))
        {
            _active?.OnLeft(worker);
            SettleStop();
            return;
        }
        if (!_slots.TryGetValue(worker.Slot, out var slot)) return;
        if (slot.Incoming == worker)
        {
            _active?.OnNotReady(worker, exit, connected);
            return;
        }
        if (slot.Current != worker) return;
        slot.Current = null;
        slot.LastExit = exit;
        if (slot.State == SlotState.Replacing) return; // its replacement is on its way
        if (!worker.Ready.IsCompleted && _active is not null && _active.OnNotReady(worker, exit, connected)) return;
        Crashed(slot, worker, exit, Stopwatch.GetElapsedTime(forkedAt));
    }

    private void Crashed(Slot slot, Worker worker, WorkerExit exit, TimeSpan uptime)
    {
        if (_state != SupervisorState.Running)
        {
            slot.State = SlotState.Stopped;
            return;
        }
        if (uptime >= _options.StableAfter)
        {
            slot.Unstable = 0;
            slot.NextDelay = _options.RestartDelay;
        }
        if (uptime < _options.MinUptime && ++slot.Unstable > _options.MaxRestarts)
        {
            slot.State = SlotState.Errored;
            var reason = $"{worker} crashed {slot.Unstable} times in a row, each within {_options.MinUptime.TotalSeconds:0.#} s of starting ({exit}); not restarting.";
            if (_slots.Values.All(s => s.State == SlotState.Errored))
            {
                _state = SupervisorState.Errored;
                _primary.HoldServers(false); // nobody is coming: what waits is refused, as with no supervisor
                if (_active is { } operation)
                {
                    operation.Cancel();
                    operation.Fail(new InvalidOperationException(NotRunning()));
                }
                RefuseAll();
                Raise(() => Errored?.Invoke(reason));
            }
            else
            {
                HerdLog.SlotErrored(Cluster.Logger, slot.Index, reason);
            }
            return;
        }
        var delay = ScheduleRestart(slot);
        Raise(() => Restarting?.Invoke(worker, exit, delay));
    }

    private TimeSpan ScheduleRestart(Slot slot)
    {
        var delay = slot.NextDelay;
        slot.NextDelay = TimeSpan.FromTicks(Math.Min(delay.Ticks * 2, _options.MaxRestartDelay.Ticks));
        slot.State = SlotState.Backoff;
        PostAfter(delay, new BackoffOver(slot.Index, ++slot.Generation));
        return delay;
    }

    // The backoff is over: a new worker takes the dead one's slot, unless the slot changed meanwhile.
    private void RestartSlot(int index, int generation)
    {
        if (_state != SupervisorState.Running || !_slots.TryGetValue(index, out var slot) || slot.State != SlotState.Backoff || slot.Generation != generation) return;
        slot.Restarts++;
        _restarts++;
        HerdMetrics.Restarts.Add(1);
        try
        {
            slot.Current = Fork(index);
            slot.State = SlotState.Starting;
        }
#pragma warning disable CA1031 // a failed fork is reported, and tried again after the next delay
        catch (Exception ex)
#pragma warning restore CA1031
        {
            HerdLog.RestartFailed(Cluster.Logger, ex);
            ScheduleRestart(slot);
        }
    }

    // Where a slot goes when the replacement it waited for is not coming.
    private void Restore(Slot slot)
    {
        if (slot.Current is { } current) slot.State = current.Ready.IsCompleted ? SlotState.Running : SlotState.Starting;
        else if (slot.Prior == SlotState.Errored) slot.State = SlotState.Errored;
        else if (_state == SupervisorState.Running) ScheduleRestart(slot);
        else slot.State = SlotState.Stopped;
    }

    // Every heartbeat interval: a hung worker is killed, one past a recycling limit replaced, the rest asked again.
    private void Watch()
    {
        if (_state != SupervisorState.Running) return;
        foreach (var slot in _slots.Values)
        {
            if (slot.Current is not { } worker || !worker.Ready.IsCompleted || _killed.Contains(worker) || !_alive.ContainsKey(worker)) continue;
            var silent = Stopwatch.GetElapsedTime(worker.LastHeartbeat);
            if (!worker.Channelless && _options.HeartbeatTimeout > TimeSpan.Zero && silent > _options.HeartbeatTimeout)
            {
                HerdLog.WorkerHung(Cluster.Logger, worker.Id, worker.Process.Id, silent.TotalSeconds);
                _killed.Add(worker);
                worker.Kill(UnixSignal.SIGKILL);
                Raise(() => Hung?.Invoke(worker, silent));
                continue;
            }
            if (slot.State == SlotState.Running && RecycleReason(worker) is { } reason && _recycling.Add(worker))
            {
                Raise(() => Recycling?.Invoke(worker, reason));
                Accept(new Replace(this, worker, recycle: true));
            }
            worker.SendHeartbeat();
        }
    }

    private string? RecycleReason(Worker worker)
    {
        if (_recycling.Contains(worker)) return null;
        if (_options.MaxAge > TimeSpan.Zero && Stopwatch.GetElapsedTime(_alive[worker]) > _options.MaxAge) return $"it is older than {_options.MaxAge}";
        long served = Math.Max(worker.Requests, worker.Connections);
        if (!_requestLimits.TryGetValue(worker, out long limit))
            _requestLimits[worker] = limit = _options.MaxRequests + Random.Shared.NextInt64(_options.MaxRequestsJitter + 1);
        if (_options.MaxRequests > 0 && served >= limit) return $"it served {served} requests (limit {limit})";
        if (_options.MaxMemory > 0 && Native.ProcessStats.ResidentBytes(worker.Process.Id) is var rss && rss > _options.MaxMemory) return $"it uses {rss / 1048576} MB (limit {_options.MaxMemory / 1048576} MB)";
        return null;
    }

    private static string Name(Worker worker) => $"worker {worker.Id} (pid {worker.Process.Id})";

    private string NotReadyMessage(Worker worker, WorkerExit? exit, bool connected) => exit is { } died
        ? $"new {Name(worker)} died ({died}) before it was ready{(connected ? "" : ", without ever connecting to the primary")}"
        : $"new {Name(worker)} was not ready within {_options.ReadyTimeout.TotalSeconds:0.#} s{(connected ? "" : "; it never connected to the primary")}";

    private void CheckInvariants()
    {
        if (Breach() is not { } breach) return;
        HerdLog.InvariantBroken(Cluster.Logger, breach);
        Debug.Fail(breach);
    }

    private string? Breach()
    {
        var known = new HashSet<Worker>(_leaving.Keys);
        foreach (var slot in _slots.Values)
        {
            foreach (var worker in new[] { slot.Current, slot.Incoming }.OfType<Worker>())
            {
                if (!known.Add(worker)) return $"{Name(worker)} is listed twice";
                if (worker.Slot != slot.Index) return $"{Name(worker)} of slot {worker.Slot} is listed in slot {slot.Index}";
            }
            bool replacing = slot.State == SlotState.Replacing;
            if (replacing != (slot.Incoming is not null)) return $"slot {slot.Index} is {slot.State} with replacement {slot.Incoming?.Id.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "none"}";
            if (replacing && _active is not Replace) return $"slot {slot.Index} is being replaced outside a replacement";
            if (slot.State is SlotState.Starting or SlotState.Running && slot.Current is null) return $"slot {slot.Index} is {slot.State} without a worker";
            if (slot.State is SlotState.Backoff or SlotState.Errored or SlotState.Stopped && slot.Current is not null) return $"slot {slot.Index} is {slot.State} with {Name(slot.Current)}";
        }
        if (_active is null && _state == SupervisorState.Running)
        {
            if (_slots.Count != _target) return $"{_slots.Count} slots for a target of {_target}";
            if (_leaving.Count > 0) return $"{_leaving.Count} worker(s) leaving outside an operation";
        }
        var outside = _primary.LiveWorkers().FirstOrDefault(w => !known.Contains(w) && !_foreign.Contains(w.Id));
        if (outside is not null) return $"{Name(outside)} runs outside the supervisor's list";
        var unlisted = _alive.Keys.FirstOrDefault(w => !known.Contains(w));
        return unlisted is null ? null : $"{Name(unlisted)} is alive but in no slot and not leaving";
    }

    private void Publish()
    {
        var slots = _slots.Values.Select(s => s.Snapshot()).ToArray();
        _view = new View(_state, slots, [.. slots.Select(s => s.Worker).OfType<Worker>()], _restarts, _lastReloadFailure);
        foreach (var settle in _settle) settle();
        _settle.Clear();
    }

    private sealed record View(SupervisorState State, SupervisedSlot[] Slots, Worker[] Workers, int Restarts, string? LastReloadFailure);

    private abstract record Command;

    private sealed record Enqueue(Operation Operation) : Command;

    private sealed record StopCommand(TaskCompletionSource Done) : Command;

    private sealed record WentOnline(Worker Worker) : Command;

    private sealed record Ready(Worker Worker) : Command;

    private sealed record Exited(Worker Worker, WorkerExit Exit) : Command;

    private sealed record ReadyTimedOut(Worker Worker) : Command;

    private sealed record KillTimedOut(Worker Worker) : Command;

    private sealed record BackoffOver(int Slot, int Generation) : Command;

    private sealed record DrainOver : Command;

    private sealed record Tick : Command;
}
