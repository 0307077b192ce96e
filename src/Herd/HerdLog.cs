using Microsoft.Extensions.Logging;

namespace Herd;

/// <summary>Every message Herd logs, in one place.</summary>
internal static partial class HerdLog
{
    [LoggerMessage(1, LogLevel.Error, "An event handler threw.")]
    public static partial void HandlerFailed(ILogger logger, Exception exception);

    [LoggerMessage(2, LogLevel.Warning, "Dropped a message from {Peer}: {Reason}.")]
    public static partial void DroppedMessage(ILogger logger, string peer, string reason);

    [LoggerMessage(3, LogLevel.Warning, "Worker {WorkerId} (pid {Pid}) broke the protocol and was cut off: {Reason}.")]
    public static partial void WorkerCutOff(ILogger logger, int workerId, int pid, string reason);

    [LoggerMessage(4, LogLevel.Warning, "The channel to the primary closed ({Reason}); worker {WorkerId} exits.")]
    public static partial void PrimaryGone(ILogger logger, int workerId, string reason);

    [LoggerMessage(5, LogLevel.Warning, "Accepting on {Key} failed ({Error}); retrying in {DelayMs} ms.")]
    public static partial void AcceptFailed(ILogger logger, string key, string error, int delayMs);

    [LoggerMessage(7, LogLevel.Error, "Restarting a worker failed.")]
    public static partial void RestartFailed(ILogger logger, Exception exception);

    [LoggerMessage(8, LogLevel.Warning, "Worker {WorkerId} (pid {Pid}) answered no heartbeat for {Seconds:0.#} s: hung; killed, to be replaced.")]
    public static partial void WorkerHung(ILogger logger, int workerId, int pid, double seconds);

    [LoggerMessage(9, LogLevel.Warning, "Recycling worker {WorkerId} failed, so it keeps serving: {Reason}")]
    public static partial void RecycleFailed(ILogger logger, int workerId, string reason);

    [LoggerMessage(20, LogLevel.Error, "Supervisor invariant broken: {Breach}.")]
    public static partial void InvariantBroken(ILogger logger, string breach);

    [LoggerMessage(21, LogLevel.Error, "Slot {Slot} is errored, the other slots serve on: {Reason}")]
    public static partial void SlotErrored(ILogger logger, int slot, string reason);

    [LoggerMessage(22, LogLevel.Warning, "Reload failed, the old workers serve on: {Reason}")]
    public static partial void ReloadFailed(ILogger logger, string reason);

    [LoggerMessage(23, LogLevel.Error, "The supervisor failed to handle {Command}; the operation under way was given up.")]
    public static partial void SupervisorFailed(ILogger logger, string command, Exception exception);

    [LoggerMessage(6, LogLevel.Debug, "No worker left on {Key}: closed the listening socket and {Dropped} queued connection(s).")]
    public static partial void HandleClosed(ILogger logger, string key, int dropped);
}
