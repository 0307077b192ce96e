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

/// <summary>How a worker process ended: an exit code, or the signal that killed it.</summary>
/// <param name="ExitCode">The exit code, or null when a signal ended the process.</param>
/// <param name="Signal">The signal that ended the process, or null when it exited.</param>
public readonly record struct WorkerExit(int? ExitCode, UnixSignal? Signal)
{
    // .NET reports a process killed by signal N as exit code 128 + N, as shells do.
    internal static WorkerExit FromExitCode(int code) =>
        code is > 128 and < 128 + 32 ? new WorkerExit(null, (UnixSignal)(code - 128)) : new WorkerExit(code, null);

    /// <inheritdoc />
    public override string ToString() => Signal is { } signal ? signal.ToString() : $"exit code {ExitCode}";
}
