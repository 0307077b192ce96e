namespace Herd;

/// <summary>
/// A new worker did not become ready: it died first (<see cref="Exit"/> says how) or was not ready within
/// <see cref="SupervisorOptions.ReadyTimeout"/> (<see cref="Exit"/> is null).
/// </summary>
public class WorkerNotReadyException(string message, Worker worker, WorkerExit? exit, bool connected) : Exception(message)
{
    /// <summary>The worker that was not ready.</summary>
    public Worker Worker { get; } = worker;

    /// <summary>How it died, or null when it was still running at the ready timeout.</summary>
    public WorkerExit? Exit { get; } = exit;

    /// <summary>
    /// Whether its channel to the primary ever came up. False means Herd never started in it: the command is not a
    /// .NET app run by <c>dotnet App.dll</c>, or startup hooks are off and it does not call <c>UseHerd()</c>.
    /// </summary>
    public bool Connected { get; } = connected;
}
