namespace Herd;

/// <summary>Linux signal numbers, for <see cref="Worker.Kill"/> and <see cref="WorkerExit.Signal"/>.</summary>
#pragma warning disable CA1707 // signal names are spelled as in signal(7)
public enum UnixSignal
{
    /// <summary>Hang up.</summary>
    SIGHUP = 1,
    /// <summary>Interrupt (Ctrl+C).</summary>
    SIGINT = 2,
    /// <summary>Quit.</summary>
    SIGQUIT = 3,
    /// <summary>Abort.</summary>
    SIGABRT = 6,
    /// <summary>Kill; cannot be caught.</summary>
    SIGKILL = 9,
    /// <summary>User signal 1.</summary>
    SIGUSR1 = 10,
    /// <summary>Segmentation fault.</summary>
    SIGSEGV = 11,
    /// <summary>User signal 2.</summary>
    SIGUSR2 = 12,
    /// <summary>Broken pipe.</summary>
    SIGPIPE = 13,
    /// <summary>Terminate politely.</summary>
    SIGTERM = 15,
    /// <summary>Continue a stopped process.</summary>
    SIGCONT = 18,
    /// <summary>Stop; cannot be caught.</summary>
    SIGSTOP = 19,
    /// <summary>Terminal input for a background process.</summary>
    SIGTTIN = 21,
    /// <summary>Terminal output for a background process.</summary>
    SIGTTOU = 22,
}
#pragma warning restore CA1707
