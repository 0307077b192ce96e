namespace Herd;

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
