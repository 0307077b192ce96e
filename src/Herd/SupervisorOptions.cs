namespace Herd;

/// <summary>How a <see cref="Supervisor"/> keeps its workers up. Defaults follow PM2's where PM2 has one.</summary>
public sealed record SupervisorOptions
{
    /// <summary>How many workers to keep running.</summary>
    public int Workers { get; init; } = Environment.ProcessorCount;

    /// <summary>The first restart's delay; each restart in the same slot doubles it (PM2's exponential backoff, kept per slot).</summary>
    public TimeSpan RestartDelay { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>The longest delay between restarts.</summary>
    public TimeSpan MaxRestartDelay { get; init; } = TimeSpan.FromSeconds(15);

    /// <summary>A worker that dies sooner than this after starting was unstable (PM2's min_uptime).</summary>
    public TimeSpan MinUptime { get; init; } = TimeSpan.FromSeconds(1);

    /// <summary>
    /// Unstable restarts in a row after which a slot is errored and no longer restarted (PM2's max_restarts); the
    /// supervisor is errored once every slot is.
    /// </summary>
    public int MaxRestarts { get; init; } = 15;

    /// <summary>Once a worker has run this long, its slot's backoff and unstable count start over.</summary>
    public TimeSpan StableAfter { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How long a new worker may take to become ready before a start or reload gives up on it.</summary>
    public TimeSpan ReadyTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How long a worker may take to leave gracefully before it is killed (PM2's kill_timeout).</summary>
    public TimeSpan KillTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// How long a stop keeps serving before the workers' listeners close, for load balancers and Kubernetes to take the
    /// app out of rotation first; meanwhile <see cref="Supervisor.State"/> is <see cref="SupervisorState.Draining"/>.
    /// </summary>
    public TimeSpan DrainDelay { get; init; }

    /// <summary>How often the primary sends each worker a heartbeat.</summary>
    public TimeSpan HeartbeatInterval { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>A worker that has not answered a heartbeat for this long is hung: it is killed and replaced. Zero turns hang detection off.</summary>
    public TimeSpan HeartbeatTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Recycle a worker (a graceful, rolling replacement) once it has served this many requests, or accepted this many connections where it counts no requests. Zero: never.</summary>
    public long MaxRequests { get; init; }

    /// <summary>Up to this many more requests, at random per worker, so that workers do not all recycle at once (Gunicorn's max_requests_jitter).</summary>
    public long MaxRequestsJitter { get; init; }

    /// <summary>Recycle a worker whose resident memory exceeds this many bytes (PM2's max_memory_restart). Zero: never.</summary>
    public long MaxMemory { get; init; }

    /// <summary>Recycle a worker once it has run this long. Zero: never.</summary>
    public TimeSpan MaxAge { get; init; }

    /// <summary>How many workers a rolling reload replaces at a time.</summary>
    public int ReloadBatchSize { get; init; } = 1;

    /// <summary>
    /// The most workers a start or a scale may ask for (herd.json's <c>maxInstances</c>): 64 per CPU by default, a bound
    /// against a typo or an overflowing <c>scale +N</c>, not a capacity plan. A scale beyond it is refused and changes nothing.
    /// </summary>
    public int MaxWorkers { get; init; } = 64 * Environment.ProcessorCount;

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/>, naming the option, for a value out of range.</summary>
    public void Validate()
    {
        if (FirstInvalid() is var (option, value, problem)) throw new ArgumentOutOfRangeException(option, value, problem);
    }

    /// <summary>
    /// The first option out of range, by its property name, with its value and what is wrong with it; null when every
    /// option is in range. For callers that name the option in their own terms (herd.json's key, a configuration path).
    /// </summary>
    internal (string Option, object Value, string Problem)? FirstInvalid()
    {
        if (Workers < 0) return (nameof(Workers), Workers, "Workers cannot be negative.");
        if (MaxWorkers < 1) return (nameof(MaxWorkers), MaxWorkers, "MaxWorkers must be at least 1.");
        if (Workers > MaxWorkers) return (nameof(Workers), Workers, $"Workers cannot exceed MaxWorkers ({MaxWorkers}).");
        if (MaxRequests < 0) return (nameof(MaxRequests), MaxRequests, "MaxRequests cannot be negative.");
        if (MaxRequestsJitter < 0) return (nameof(MaxRequestsJitter), MaxRequestsJitter, "MaxRequestsJitter cannot be negative.");
        if (MaxMemory < 0) return (nameof(MaxMemory), MaxMemory, "MaxMemory cannot be negative.");
        if (MaxRestarts < 0) return (nameof(MaxRestarts), MaxRestarts, "MaxRestarts cannot be negative.");
        if (HeartbeatInterval <= TimeSpan.Zero) return (nameof(HeartbeatInterval), HeartbeatInterval, "HeartbeatInterval must be positive.");
        if (ReloadBatchSize < 1) return (nameof(ReloadBatchSize), ReloadBatchSize, "ReloadBatchSize must be at least 1.");
        foreach (var (name, value) in new[] { (nameof(RestartDelay), RestartDelay), (nameof(MaxRestartDelay), MaxRestartDelay), (nameof(MinUptime), MinUptime),
                     (nameof(StableAfter), StableAfter), (nameof(ReadyTimeout), ReadyTimeout), (nameof(KillTimeout), KillTimeout),
                     (nameof(HeartbeatTimeout), HeartbeatTimeout), (nameof(MaxAge), MaxAge), (nameof(DrainDelay), DrainDelay) })
        {
            if (value < TimeSpan.Zero) return (name, value, $"{name} cannot be negative.");
        }
        return null;
    }
}
