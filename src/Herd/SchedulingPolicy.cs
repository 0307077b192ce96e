namespace Herd;

/// <summary>How the primary spreads connections over workers (Node's <c>cluster.schedulingPolicy</c>).</summary>
public enum SchedulingPolicy
{
    /// <summary>The primary passes the listening socket to every worker and the kernel picks who accepts (SCHED_NONE).</summary>
    None = 1,

    /// <summary>The primary accepts every connection and hands it to the workers in turn (SCHED_RR, the default).</summary>
    RoundRobin = 2,
}
