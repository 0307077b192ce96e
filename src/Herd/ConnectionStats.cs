namespace Herd;

/// <summary>
/// What a primary did with the connections it accepted for round robin, since it was created. Every accepted
/// connection ends up handed to a worker or refused; <see cref="Pending"/> are on their way to one of those.
/// </summary>
/// <param name="Accepted">Connections the primary accepted.</param>
/// <param name="Handed">Connections a worker took (answered <c>accepted</c>).</param>
/// <param name="Retried">Handoffs that went to another worker: the first refused, died or lost its channel before taking it.</param>
/// <param name="Refused">Connections the primary closed unserved because no worker was left to take them.</param>
public readonly record struct ConnectionStats(long Accepted, long Handed, long Retried, long Refused)
{
    /// <summary>Connections accepted and neither handed nor refused yet: queued, or in flight to a worker.</summary>
    public long Pending => Accepted - Handed - Refused;
}
