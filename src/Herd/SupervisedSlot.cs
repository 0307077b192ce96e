namespace Herd;

/// <summary>Where one of a <see cref="Supervisor"/>'s slots is.</summary>
public enum SlotState
{
    /// <summary>Its worker is forked and not ready yet.</summary>
    Starting,

    /// <summary>Its worker is ready and serves.</summary>
    Running,

    /// <summary>A reload, restart or recycle forked its replacement; the old worker (if it is still alive) serves until the new one is ready.</summary>
    Replacing,

    /// <summary>Its worker died; a new one is forked once the slot's backoff delay is over.</summary>
    Backoff,

    /// <summary>Its workers crashed <see cref="SupervisorOptions.MaxRestarts"/> times in a row: nothing is forked for it until a reload.</summary>
    Errored,

    /// <summary>The supervisor is stopping: nothing is forked for it any more.</summary>
    Stopped,
}

/// <summary>One slot of a <see cref="Supervisor"/>, as it was when <see cref="Supervisor.Slots"/> was read.</summary>
/// <param name="Index">The slot (<see cref="Herd.Worker.Slot"/>).</param>
/// <param name="State">Where the slot is.</param>
/// <param name="Worker">The worker that serves it, or is starting in it; null while it waits for a restart or is errored.</param>
/// <param name="Replacement">The worker that is to replace <paramref name="Worker"/>, while it starts.</param>
/// <param name="Restarts">How many times a worker of this slot was restarted after it died.</param>
/// <param name="LastExit">How the last worker of this slot that died on its own ended, if one did.</param>
public sealed record SupervisedSlot(int Index, SlotState State, Worker? Worker, Worker? Replacement, int Restarts, WorkerExit? LastExit);

/// <summary>A slot as the supervisor's loop keeps it; only that loop reads or writes it.</summary>
internal sealed class Slot(int index, TimeSpan firstDelay)
{
    public int Index { get; } = index;

    public SlotState State { get; set; } = SlotState.Starting;

    /// <summary>The worker serving the slot, or starting in it.</summary>
    public Worker? Current { get; set; }

    /// <summary>Its replacement while a replace operation waits for it to be ready.</summary>
    public Worker? Incoming { get; set; }

    /// <summary>What the slot was before a replacement began: where it returns if the replacement fails.</summary>
    public SlotState Prior { get; set; }

    public int Restarts { get; set; }

    /// <summary>Crashes in a row, each within MinUptime of its fork (PM2's unstable restarts).</summary>
    public int Unstable { get; set; }

    public TimeSpan NextDelay { get; set; } = firstDelay;

    /// <summary>Bumped whenever a pending backoff timer must no longer fork: a timer that fires for an older value is stale.</summary>
    public int Generation { get; set; }

    public WorkerExit? LastExit { get; set; }

    public SupervisedSlot Snapshot() => new(Index, State, Current, Incoming, Restarts, LastExit);
}
