namespace Herd.Cli;

/// <summary>A row of <c>herd ls</c>; <paramref name="Restarts"/> counts its slot's restarts.</summary>
internal sealed record WorkerInfo(int Id, int Slot, int Pid, string State, double UptimeSeconds, int Restarts, long Requests, long Connections, double CpuSeconds, long MemoryBytes);
