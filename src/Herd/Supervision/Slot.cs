namespace Herd.Supervision;

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
