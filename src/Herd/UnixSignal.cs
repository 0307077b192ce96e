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
    /// <summary>Illegal instruction.</summary>
    SIGILL = 4,
    /// <summary>Trace or breakpoint trap.</summary>
    SIGTRAP = 5,
    /// <summary>Abort.</summary>
    SIGABRT = 6,
    /// <summary>Bus error: a bad memory access, such as a truncated mapped file.</summary>
    SIGBUS = 7,
    /// <summary>Arithmetic error, such as an integer division by zero.</summary>
    SIGFPE = 8,
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
    /// <summary>Timer from alarm(2).</summary>
    SIGALRM = 14,
    /// <summary>Terminate politely.</summary>
    SIGTERM = 15,
    /// <summary>Stack fault on a coprocessor.</summary>
    SIGSTKFLT = 16,
    /// <summary>A child stopped or terminated.</summary>
    SIGCHLD = 17,
    /// <summary>Continue a stopped process.</summary>
    SIGCONT = 18,
    /// <summary>Stop; cannot be caught.</summary>
    SIGSTOP = 19,
    /// <summary>Stop typed at a terminal (Ctrl+Z).</summary>
    SIGTSTP = 20,
    /// <summary>Terminal input for a background process.</summary>
    SIGTTIN = 21,
    /// <summary>Terminal output for a background process.</summary>
    SIGTTOU = 22,
    /// <summary>CPU time limit exceeded (setrlimit).</summary>
    SIGXCPU = 24,
    /// <summary>File size limit exceeded (setrlimit).</summary>
    SIGXFSZ = 25,
    /// <summary>Virtual alarm clock.</summary>
    SIGVTALRM = 26,
    /// <summary>Profiling timer expired.</summary>
    SIGPROF = 27,
    /// <summary>I/O now possible.</summary>
    SIGIO = 29,
    /// <summary>Power failure.</summary>
    SIGPWR = 30,
    /// <summary>Bad system call (a seccomp filter's refusal).</summary>
    SIGSYS = 31,
}
#pragma warning restore CA1707
