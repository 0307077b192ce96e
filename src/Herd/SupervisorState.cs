namespace Herd;

/// <summary>Where a <see cref="Supervisor"/> is.</summary>
public enum SupervisorState
{
    /// <summary>Not started.</summary>
    Idle,

    /// <summary>Keeping its workers up.</summary>
    Running,

    /// <summary>Every slot is errored (its workers crashed <see cref="SupervisorOptions.MaxRestarts"/> times in a row): nothing serves and nothing is restarted.</summary>
    Errored,

    /// <summary>Stopping after its drain delay: still serving, but on its way out.</summary>
    Draining,

    /// <summary>Stopped, or stopping: workers are leaving and none is restarted.</summary>
    Stopped,
}
