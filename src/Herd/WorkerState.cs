namespace Herd;

/// <summary>Where a worker is in its life, as the primary sees it (Node's <c>worker.state</c>).</summary>
public enum WorkerState
{
    /// <summary>Forked; not yet online.</summary>
    None,

    /// <summary>The worker's runtime is up and its channel works.</summary>
    Online,

    /// <summary>The worker listens on at least one server.</summary>
    Listening,

    /// <summary>The worker's channel has closed.</summary>
    Disconnected,

    /// <summary>The worker process has exited.</summary>
    Dead,
}
