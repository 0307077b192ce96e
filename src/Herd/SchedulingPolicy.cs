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

    /// <summary>
    /// As <see cref="RoundRobin"/>, but a client stays on one worker. The primary peeks at a plain HTTP connection's
    /// request line (without taking it) and sends a request that carries a SignalR connection token (<c>?id=</c>) to the
    /// worker that issued it in its negotiate response; other HTTP requests, new clients, go round robin. A connection
    /// that is not plain HTTP (TLS, another protocol) or sends nothing at once goes by its source address, as with
    /// <see cref="StickyAddress"/>. A worker that leaves takes its tokens with it: their clients go to another.
    /// </summary>
    Sticky = 4,

    /// <summary>
    /// As <see cref="RoundRobin"/>, but each connection goes by its source address: one address, one worker, while the
    /// workers stay (rendezvous hashing over the ready workers' slots, so a worker that leaves moves only its own
    /// clients). Works through TLS; every client behind one address (a proxy, a NAT) lands on one worker.
    /// </summary>
    StickyAddress = 5,
}

/// <summary>The policies' names, as <c>HERD_SCHED_POLICY</c>, <c>herd run --policy</c> and herd.json spell them.</summary>
internal static class SchedulingPolicyNames
{
    public const string All = "rr, none, leastbusy, sticky or stickyaddress";

    public static SchedulingPolicy? Parse(string? name) => name switch
    {
        "rr" => SchedulingPolicy.RoundRobin,
        "none" => SchedulingPolicy.None,
        "leastbusy" => SchedulingPolicy.LeastBusy,
        "sticky" => SchedulingPolicy.Sticky,
        "stickyaddress" => SchedulingPolicy.StickyAddress,
        _ => null,
    };
}
