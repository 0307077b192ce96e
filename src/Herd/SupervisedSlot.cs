namespace Herd;

/// <summary>One slot of a <see cref="Supervisor"/>, as it was when <see cref="Supervisor.Slots"/> was read.</summary>
/// <param name="Index">The slot (<see cref="Herd.Worker.Slot"/>).</param>
/// <param name="State">Where the slot is.</param>
/// <param name="Worker">The worker that serves it, or is starting in it; null while it waits for a restart or is errored.</param>
/// <param name="Replacement">The worker that is to replace <paramref name="Worker"/>, while it starts.</param>
/// <param name="Restarts">How many times a worker of this slot was restarted after it died.</param>
/// <param name="LastExit">How the last worker of this slot that died on its own ended, if one did.</param>
public sealed record SupervisedSlot(int Index, SlotState State, Worker? Worker, Worker? Replacement, int Restarts, WorkerExit? LastExit);
