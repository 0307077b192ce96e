namespace Herd;

/// <summary>Where a worker is in its life, as the primary sees it (Node's <c>worker.state</c>).</summary>
public enum WorkerState
{
    /// <summary>Forked; not yet online.</summary>
    None,

    /// <summary>The worker's runtime is up and its channel works.</summary>
    Online,

    /// <summary>The worker listens on at least one server.</summary>
    Listening,

    /// <summary>The worker's channel has closed.</summary>
    Disconnected,

    /// <summary>The worker process has exited.</summary>
    Dead,
}

/// <summary>How a worker process ended, as waitid(2) tells it: an exit code, or the signal that killed it.</summary>
/// <param name="ExitCode">The exit code, or null when a signal ended the process.</param>
/// <param name="Signal">The signal that ended the process, or null when it exited.</param>
/// <remarks>Both are null only when something other than Herd reaped the process first, so its status is unknown.</remarks>
public readonly record struct WorkerExit(int? ExitCode, UnixSignal? Signal)
{
    /// <inheritdoc />
    public override string ToString() => (ExitCode, Signal) switch
    {
        (_, { } signal) => Enum.IsDefined(signal) ? signal.ToString() : $"signal {(int)signal}",
        ({ } code, _) => $"exit code {code}",
        _ => "an unknown status",
    };
}
