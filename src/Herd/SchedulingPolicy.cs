namespace Herd;

/// <summary>How the primary spreads connections over workers (Node's <c>cluster.schedulingPolicy</c>).</summary>
public enum SchedulingPolicy
{
    /// <summary>The primary passes the listening socket to every worker and the kernel picks who accepts (SCHED_NONE).</summary>
    None = 1,

    /// <summary>The primary accepts every connection and hands it to the workers in turn (SCHED_RR, the default).</summary>
    RoundRobin = 2,

    /// <summary>
    /// As <see cref="RoundRobin"/>, with the same guarantees, but each connection goes to the least busy worker: the one
    /// with the fewest busy units (as it last reported them) plus connections on their way to it, the next in turn on
    /// ties. A worker's busy units are its open connections from <see cref="ClusterSocket.ListenAsync"/>, or, with
    /// Herd.AspNetCore, its HTTP requests in progress. A worker whose requests are slow then gets fewer of them.
    /// </summary>
    LeastBusy = 3,
}
