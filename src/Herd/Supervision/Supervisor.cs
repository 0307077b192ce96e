using System.Diagnostics;

namespace Herd;

/// <summary>
/// Keeps a primary's workers up, as PM2 or Gunicorn would: restarts a worker that dies, with exponential backoff,
/// and stops when they crash in a loop; replaces workers one batch at a time with zero downtime, retiring an old
/// worker only once its replacement is ready, and keeping it when the replacement never is; stops gracefully,
/// killing whatever outlasts <see cref="SupervisorOptions.KillTimeout"/>.
/// </summary>
/// <remarks>
/// Workers keep their slots (<see cref="Worker.Slot"/>): a restarted or reloaded worker's replacement takes its slot,
/// scaling up adds the lowest free slots and scaling down retires the highest. In reuse-port mode a slot is a listening
/// socket that the primary keeps while its worker is replaced, so the connections queued in it wait for the replacement.
/// </remarks>
public sealed class Supervisor : IAsyncDisposable
{
    private readonly ClusterPrimary _primary;
    private readonly SupervisorOptions _options;
    private readonly Lock _gate = new();
    private readonly Dictionary<Worker, long> _managed = []; // worker → when it was forked (Stopwatch timestamp)
    private readonly Dictionary<Worker, long> _requestLimits = [];
    private readonly HashSet<Worker> _recycling = [];
    private readonly HashSet<int> _comingSlots = [];         // slots whose worker is on its way (a fork, a restart's backoff)
    private readonly SemaphoreSlim _changing = new(1, 1);    // one reload, scale or stop at a time
    private TimeSpan _nextDelay;
    private int _unstableRestarts;

    /// <summary>Supervises <paramref name="primary"/>'s workers.</summary>
    public Supervisor(ClusterPrimary primary, SupervisorOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(primary);
        _primary = primary;
        _options = options ?? new SupervisorOptions();
        _options.Validate();
        _nextDelay = _options.RestartDelay;
        _primary.Exit += OnExit;
    }

    /// <summary>Where the supervisor is.</summary>
    public SupervisorState State { get; private set; }

    /// <summary>The workers it keeps.</summary>
    public IReadOnlyCollection<Worker> Workers
    {
        get
        {
            lock (_gate) return [.. _managed.Keys];
        }
    }

    /// <summary>How many workers it has restarted after an unexpected exit.</summary>
    public int Restarts { get; private set; }

    /// <summary>A worker died unexpectedly and will be replaced after the delay given.</summary>
    public event Action<Worker, WorkerExit, TimeSpan>? Restarting;

    /// <summary>Workers crashed <see cref="SupervisorOptions.MaxRestarts"/> times in a row; the supervisor gave up on them.</summary>
    public event Action<string>? Errored;

    /// <summary>A worker stopped answering heartbeats and was killed; it is replaced like any worker that dies.</summary>
    public event Action<Worker, TimeSpan>? Hung;

    /// <summary>A worker reached a recycling limit (the reason says which) and is being replaced gracefully.</summary>
    public event Action<Worker, string>? Recycling;

    /// <summary>Forks the workers and waits until every one is ready.</summary>
    /// <exception cref="TimeoutException">A worker was not ready within <see cref="SupervisorOptions.ReadyTimeout"/>.</exception>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            if (State != SupervisorState.Idle) throw new InvalidOperationException($"The supervisor is {State}.");
            State = SupervisorState.Running;
        }
        _primary.HoldServers(true); // a worker that dies is replaced: its servers wait for the replacement
        _ = WatchAsync();
        await WhenReadyAsync([.. Enumerable.Range(0, _options.Workers).Select(_ => SpawnNew())], cancellationToken).ConfigureAwait(false);
    }

    /// <summary>
    /// Replaces every worker, <see cref="SupervisorOptions.ReloadBatchSize"/> at a time: forks the new ones, waits
    /// until they are ready, then disconnects the old ones gracefully. Connections keep flowing throughout.
    /// </summary>
    /// <exception cref="ReloadFailedException">A new worker was not ready in time; it was killed and the old ones kept.</exception>
    public Task ReloadAsync(CancellationToken cancellationToken = default) => ReplaceAsync(Workers, cancellationToken);

    /// <summary>Replaces one worker the same way: its replacement must be ready before it leaves.</summary>
    /// <exception cref="ArgumentException">The supervisor does not keep that worker.</exception>
    /// <exception cref="ReloadFailedException">The replacement was not ready in time; the worker was kept.</exception>
    public Task RestartAsync(Worker worker, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(worker);
        if (!Workers.Contains(worker)) throw new ArgumentException($"{worker} is not one of this supervisor's workers.", nameof(worker));
        return ReplaceAsync([worker], cancellationToken);
    }

    private async Task ReplaceAsync(IEnumerable<Worker> workers, CancellationToken cancellationToken)
    {
        await _changing.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            foreach (var batch in workers.Chunk(_options.ReloadBatchSize))
            {
                var fresh = batch.Select(old => Spawn(old.Slot)).ToArray(); // both serve the slot until the old one leaves
                try
                {
                    await WhenReadyAsync(fresh, cancellationToken).ConfigureAwait(false);
                }
                catch (TimeoutException)
                {
                    await Task.WhenAll(fresh.Select(w => RetireAsync(w))).ConfigureAwait(false);
                    throw new ReloadFailedException(
                        $"A new worker was not ready within {_options.ReadyTimeout.TotalSeconds:0.#} s; it was stopped and the old workers kept.");
                }
                await Task.WhenAll(batch.Select(w => RetireAsync(w))).ConfigureAwait(false);
            }
        }
        finally
        {
            _changing.Release();
        }
    }

    /// <summary>
    /// Runs <paramref name="workers"/> workers from now on: forks the missing ones into the lowest free slots, or retires
    /// those in the highest slots gracefully. A retired slot's reuse-port sockets close, which resets the connections
    /// queued in them (see <see cref="ListenOptions.ReusePort"/>).
    /// </summary>
    public Task ScaleAsync(int workers, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(workers);
        return ScaleAsync(_ => workers, cancellationToken);
    }

    /// <summary>Runs <paramref name="delta"/> more (or, negative, fewer) workers than it runs when its turn comes; never fewer than none.</summary>
    public Task ScaleByAsync(int delta, CancellationToken cancellationToken = default) =>
        ScaleAsync(current => Math.Max(0, current + delta), cancellationToken);

    private async Task ScaleAsync(Func<int, int> target, CancellationToken cancellationToken)
    {
        await _changing.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            Worker[] current;
            lock (_gate) current = [.. _managed.Keys.OrderBy(w => w.Slot)];
            int workers = target(current.Length);
            if (workers > current.Length)
                await WhenReadyAsync([.. Enumerable.Range(0, workers - current.Length).Select(_ => SpawnNew())], cancellationToken).ConfigureAwait(false);
            else
                await Task.WhenAll(current[workers..].Select(w => RetireAsync(w, retireSlot: true))).ConfigureAwait(false);
        }
        finally
        {
            _changing.Release();
        }
    }

    /// <summary>
    /// Keeps serving for the drain delay, then disconnects every worker gracefully, kills those that outlast the kill
    /// timeout, and restarts none.
    /// </summary>
    public async Task StopAsync(CancellationToken cancellationToken = default)
    {
        lock (_gate)
        {
            if (State is SupervisorState.Stopped or SupervisorState.Draining) return;
            if (_options.DrainDelay > TimeSpan.Zero) State = SupervisorState.Draining;
        }
        if (_options.DrainDelay > TimeSpan.Zero) await Task.Delay(_options.DrainDelay, cancellationToken).ConfigureAwait(false);
        await _changing.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            lock (_gate) State = SupervisorState.Stopped;
            _primary.HoldServers(false);
            await Task.WhenAll(Workers.Select(w => RetireAsync(w))).ConfigureAwait(false);
        }
        finally
        {
            _changing.Release();
        }
    }

    /// <summary>Stops, then lets go of the primary.</summary>
    public async ValueTask DisposeAsync()
    {
        await StopAsync().ConfigureAwait(false);
        _primary.Exit -= OnExit;
    }

    private Worker Spawn(int slot)
    {
        var worker = _primary.ForkInSlot(slot);
        lock (_gate) _managed[worker] = Stopwatch.GetTimestamp();
        return worker;
    }

    // A worker in the lowest slot that neither a worker kept nor one on its way holds.
    private Worker SpawnNew()
    {
        int slot;
        lock (_gate)
        {
            slot = ClusterPrimary.LowestFreeSlot(_managed.Keys.Select(w => w.Slot).Concat(_comingSlots));
            _comingSlots.Add(slot);
        }
        return SpawnReserved(slot);
    }

    // Forks into a slot kept in _comingSlots until its worker is managed.
    private Worker SpawnReserved(int slot)
    {
        try
        {
            return Spawn(slot);
        }
        finally
        {
            lock (_gate) _comingSlots.Remove(slot);
        }
    }

    private async Task WhenReadyAsync(Worker[] workers, CancellationToken cancellationToken)
    {
        // A worker that dies before it is ready fails the wait at once rather than at the timeout.
        var ready = workers.Select(w => Task.WhenAny(w.Ready, w.Exited).Unwrap().ContinueWith(t =>
        {
            if (!w.Ready.IsCompleted) throw new TimeoutException($"{w} exited before it was ready.");
        }, CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default));
        await Task.WhenAll(ready).WaitAsync(_options.ReadyTimeout, cancellationToken).ConfigureAwait(false);
    }

    // Graceful disconnect, then SIGKILL after the kill timeout. The worker is no longer managed: no restart. A retired
    // slot is one no worker comes back to: its held sockets close once the worker has let go of them.
    private async Task RetireAsync(Worker worker, bool retireSlot = false)
    {
        lock (_gate)
        {
            _managed.Remove(worker);
            _requestLimits.Remove(worker);
        }
        var exited = worker.DisconnectAsync();
        if (retireSlot) _primary.RetireSlot(worker.Slot);
        if (await Task.WhenAny(exited, Task.Delay(_options.KillTimeout)).ConfigureAwait(false) != exited) worker.Kill(UnixSignal.SIGKILL);
        await worker.Exited.ConfigureAwait(false);
    }

    // Every heartbeat interval: a hung worker is killed, one past a recycling limit replaced, the rest asked again.
    private async Task WatchAsync()
    {
        using var timer = new PeriodicTimer(_options.HeartbeatInterval);
        while (await timer.WaitForNextTickAsync().ConfigureAwait(false) && State == SupervisorState.Running)
        {
            // A worker starting up is judged by the ready timeout; heartbeats count from when it is ready.
            foreach (var worker in Workers.Where(w => w.Ready.IsCompleted && !w.IsDead))
            {
                var silent = Stopwatch.GetElapsedTime(worker.LastHeartbeat);
                if (_options.HeartbeatTimeout > TimeSpan.Zero && silent > _options.HeartbeatTimeout)
                {
                    HerdLog.WorkerHung(Cluster.Logger, worker.Id, worker.Process.Id, silent.TotalSeconds);
                    Hung?.Invoke(worker, silent);
                    worker.Kill(UnixSignal.SIGKILL);
                    continue;
                }
                if (RecycleReason(worker) is { } reason) _ = RecycleAsync(worker, reason);
                worker.SendHeartbeat();
            }
        }
    }

    private string? RecycleReason(Worker worker)
    {
        long served = Math.Max(worker.Requests, worker.Connections);
        long limit;
        lock (_gate)
        {
            if (_recycling.Contains(worker) || !_managed.TryGetValue(worker, out long forkedAt)) return null;
            if (_options.MaxAge > TimeSpan.Zero && Stopwatch.GetElapsedTime(forkedAt) > _options.MaxAge) return $"it is older than {_options.MaxAge}";
            if (!_requestLimits.TryGetValue(worker, out limit))
                _requestLimits[worker] = limit = _options.MaxRequests + Random.Shared.NextInt64(_options.MaxRequestsJitter + 1);
        }
        if (_options.MaxRequests > 0 && served >= limit) return $"it served {served} requests (limit {limit})";
        if (_options.MaxMemory > 0 && ResidentBytes(worker.Process.Id) is var rss && rss > _options.MaxMemory) return $"it uses {rss / 1048576} MB (limit {_options.MaxMemory / 1048576} MB)";
        return null;
    }

    private async Task RecycleAsync(Worker worker, string reason)
    {
        lock (_gate)
        {
            if (!_recycling.Add(worker)) return;
        }
        Recycling?.Invoke(worker, reason);
        try
        {
            if (Workers.Contains(worker)) await RestartAsync(worker).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is ReloadFailedException or ArgumentException)
        {
            HerdLog.RecycleFailed(Cluster.Logger, worker.Id, ex.Message); // kept; tried again at a later heartbeat
        }
        finally
        {
            lock (_gate) _recycling.Remove(worker);
        }
    }

    private static long ResidentBytes(int pid)
    {
        try
        {
            return long.Parse(File.ReadAllText($"/proc/{pid}/statm").Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture) * Environment.SystemPageSize;
        }
        catch (IOException)
        {
            return 0;
        }
    }

    private void OnExit(Worker worker, WorkerExit exit)
    {
        TimeSpan delay;
        bool errored = false;
        lock (_gate)
        {
            _requestLimits.Remove(worker);
            if (!_managed.Remove(worker, out long forkedAt) || State != SupervisorState.Running) return;
            var uptime = Stopwatch.GetElapsedTime(forkedAt);
            if (uptime >= _options.StableAfter)
            {
                _unstableRestarts = 0;
                _nextDelay = _options.RestartDelay;
            }
            if (uptime < _options.MinUptime && ++_unstableRestarts > _options.MaxRestarts)
            {
                State = SupervisorState.Errored;
                errored = true;
                delay = default;
            }
            else
            {
                delay = _nextDelay;
                _nextDelay = TimeSpan.FromTicks(Math.Min(_nextDelay.Ticks * 2, _options.MaxRestartDelay.Ticks));
                _comingSlots.Add(worker.Slot); // the replacement's, which no scale-up may take meanwhile
            }
        }
        if (errored)
        {
            _primary.HoldServers(false); // nobody is coming: what waits is refused, as with no supervisor
            Errored?.Invoke($"{worker} crashed {_unstableRestarts} times in a row, each within {_options.MinUptime.TotalSeconds:0.#} s of starting ({exit}); not restarting.");
            return;
        }
        Restarting?.Invoke(worker, exit, delay);
        _ = RestartAfterAsync(worker.Slot, delay);
    }

    // The replacement takes the dead worker's slot.
    private async Task RestartAfterAsync(int slot, TimeSpan delay)
    {
        await Task.Delay(delay).ConfigureAwait(false);
        lock (_gate)
        {
            if (State != SupervisorState.Running)
            {
                _comingSlots.Remove(slot);
                return;
            }
            Restarts++;
            HerdMetrics.Restarts.Add(1);
        }
        try
        {
            SpawnReserved(slot);
        }
#pragma warning disable CA1031 // a failed fork is reported, and the supervisor carries on with the workers it has
        catch (Exception ex)
#pragma warning restore CA1031
        {
            HerdLog.RestartFailed(Cluster.Logger, ex);
        }
    }
}
