namespace Herd.Cli;

/// <summary>A slot of <c>herd ls</c> with no worker: waiting out a restart's backoff, or errored.</summary>
internal sealed record SlotInfo(int Slot, string State, int Restarts, string? LastExit);
