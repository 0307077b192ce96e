namespace Herd.Ipc;

/// <summary>The acts of Node's cluster protocol (lib/internal/cluster), spelled as there.</summary>
internal static class Acts
{
    public const string Online = "online";
    public const string QueryServer = "queryServer";
    public const string Listening = "listening";
    public const string Close = "close";
    public const string Disconnect = "disconnect";
    public const string ExitedAfterDisconnect = "exitedAfterDisconnect";

    /// <summary>Herd's own act: the worker is ready for traffic (listening on all it will listen on, app started).</summary>
    public const string Ready = "ready";

    /// <summary>Herd's own act, both ways: the primary asks, the worker answers from its thread pool, so a worker whose pool is stuck does not.</summary>
    public const string Heartbeat = "heartbeat";

    /// <summary>Herd's own act, worker to primary: the worker got SIGTERM or SIGINT (<c>signal</c>) and leaves it to the primary.</summary>
    public const string Signal = "signal";

    /// <summary>Herd's own act, primary to worker: let SIGTERM or SIGINT (<c>signal</c>) end you, as <see cref="Worker.Kill"/> asked.</summary>
    public const string Kill = "kill";

    /// <summary>
    /// Herd's own act, worker to primary, under <see cref="SchedulingPolicy.Sticky"/>: requests that carry this SignalR
    /// connection token (<c>token</c>) are this worker's. Acknowledged, so the worker answers its negotiate only once the primary knows.
    /// </summary>
    public const string Sticky = "sticky";
    /// <summary>Herd's own act, primary to worker: you are (<c>leader</c> true) or are no longer the one worker that runs one-worker jobs.</summary>
    public const string Leader = "leader";

    /// <summary>
    /// Herd's own act, both ways, under <c>herd run --metrics</c>: the primary asks (<c>seq</c>), the worker answers
    /// (<c>ack</c>) with its meters' state (<c>metrics</c>) from its thread pool.
    /// </summary>
    public const string Metrics = "metrics";
}
