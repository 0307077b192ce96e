namespace Herd;

/// <summary>Where one of a <see cref="Supervisor"/>'s slots is.</summary>
public enum SlotState
{
    /// <summary>Its worker is forked and not ready yet.</summary>
    Starting,

    /// <summary>Its worker is ready and serves.</summary>
    Running,

    /// <summary>A reload, restart or recycle forked its replacement; the old worker (if it is still alive) serves until the new one is ready.</summary>
    Replacing,

    /// <summary>Its worker died; a new one is forked once the slot's backoff delay is over.</summary>
    Backoff,

    /// <summary>Its workers crashed <see cref="SupervisorOptions.MaxRestarts"/> times in a row: nothing is forked for it until a reload.</summary>
    Errored,

    /// <summary>The supervisor is stopping: nothing is forked for it any more.</summary>
    Stopped,
}
