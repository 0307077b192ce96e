namespace Herd;

/// <summary>Options for <see cref="ClusterSocket.ListenAsync"/> and <see cref="ClusterSocket.BindUdpAsync"/>.</summary>
public sealed record ListenOptions
{
    /// <summary>The accept backlog. In round robin the first worker's backlog is the one the primary uses, as in Node.</summary>
    public int Backlog { get; init; } = 511;

    /// <summary>The worker binds its own socket instead of sharing the primary's: port 0 then gives each worker its own port.</summary>
    public bool Exclusive { get; init; }

    /// <summary>The worker binds its own SO_REUSEPORT socket and the kernel spreads connections (implies <see cref="Exclusive"/>).</summary>
    public bool ReusePort { get; init; }

    /// <summary>
    /// A connection handed over by the primary completes the app's accept on the worker's channel thread instead of
    /// hopping to the thread pool. Only for an accept loop that never blocks (Kestrel's): the channel waits for it.
    /// </summary>
    internal bool AcceptInline { get; init; }

    internal static ListenOptions Default { get; } = new();

    internal void Validate()
    {
        if (Backlog < 1) throw new ArgumentOutOfRangeException(nameof(Backlog), Backlog, "The backlog must be at least 1.");
    }
}
