namespace Herd;

/// <summary>
/// A reload or restart gave up because a new worker was not ready: the new worker was stopped, not restarted, and
/// the old workers kept serving.
/// </summary>
public sealed class ReloadFailedException(string message, Worker worker, WorkerExit? exit, bool connected)
    : WorkerNotReadyException(message, worker, exit, connected);
