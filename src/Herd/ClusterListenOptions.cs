namespace Herd;

/// <summary>Options for <see cref="ClusterSocket.ListenAsync"/> and <see cref="ClusterSocket.BindUdpAsync"/>.</summary>
public sealed record ClusterListenOptions
{
    /// <summary>The accept backlog. In round robin the first worker's backlog is the one the primary uses, as in Node.</summary>
    public int Backlog { get; init; } = 511;

    /// <summary>
    /// The worker binds its own socket instead of asking the primary: port 0 then gives each worker its own port. With
    /// <see cref="ReusePort"/>, each worker binds its own SO_REUSEPORT socket, and the connections queued in it are reset
    /// when the worker dies.
    /// </summary>
    public bool Exclusive { get; init; }

    /// <summary>
    /// Reuse-port mode: the primary binds one SO_REUSEPORT socket per worker slot (<see cref="Worker.Slot"/>), all on one
    /// port (port 0 included), and each worker accepts on its slot's; the kernel spreads connections over the slots by
    /// their addresses. The primary keeps its copies, so under a <see cref="Supervisor"/> the connections queued for a
    /// worker that dies, and those that arrive for its slot meanwhile, wait for its replacement instead of being reset.
    /// A slot's socket closes when a supervisor scales the slot away, or when its last worker leaves with no supervisor
    /// to bring another, and that resets the connections queued in it (Linux's <c>net.ipv4.tcp_migrate_req=1</c> moves
    /// them to another slot's socket instead). The same for UDP. Standalone, the process binds an SO_REUSEPORT socket.
    /// </summary>
    public bool ReusePort { get; init; }

    /// <summary>
    /// The app keeps a client's state in one process across its connections (SignalR): unless a policy was chosen, the
    /// primary routes its clients stickily (<see cref="SchedulingPolicy.Sticky"/>) instead of in turn.
    /// </summary>
    internal bool PrefersSticky { get; init; }

    internal static ClusterListenOptions Default { get; } = new();

    internal void Validate()
    {
        if (Backlog < 1) throw new ArgumentOutOfRangeException(nameof(Backlog), Backlog, "The backlog must be at least 1.");
    }
}
