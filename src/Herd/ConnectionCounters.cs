namespace Herd;

/// <summary>The counters behind <see cref="ConnectionStats"/>, shared by a primary's round-robin handles.</summary>
internal sealed class ConnectionCounters
{
    private long _accepted;
    private long _handed;
    private long _retried;
    private long _refused;

    public void Accepted(int count = 1) => Interlocked.Add(ref _accepted, count);

    public void Handed() => Interlocked.Increment(ref _handed);

    public void Retried() => Interlocked.Increment(ref _retried);

    public void Refused(int count = 1) => Interlocked.Add(ref _refused, count);

    // Outcomes read before acceptances, so a snapshot taken under traffic never shows more served than accepted.
    public ConnectionStats Snapshot()
    {
        long refused = Interlocked.Read(ref _refused), handed = Interlocked.Read(ref _handed), retried = Interlocked.Read(ref _retried);
        return new(Interlocked.Read(ref _accepted), handed, retried, refused);
    }
}
