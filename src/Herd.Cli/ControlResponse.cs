namespace Herd.Cli;

/// <summary>A primary's answer to a <see cref="ControlRequest"/>: whether it did it, or why not, and what <c>herd ls</c> shows.</summary>
internal sealed record ControlResponse(bool Ok, string? Error = null, WorkerInfo[]? Workers = null, SlotInfo[]? Slots = null, string? LastReloadFailure = null);
