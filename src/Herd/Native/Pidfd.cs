using System.Runtime.InteropServices;

namespace Herd.Native;

/// <summary>
/// A child process held by a pidfd. Unlike a pid, a pidfd never comes to name another process: a signal sent
/// through it after the child was reaped fails with ESRCH instead of reaching whoever got the pid next.
/// </summary>
internal sealed unsafe class Pidfd : IDisposable
{
    private readonly SafeFdHandle _fd;

    private Pidfd(SafeFdHandle fd) => _fd = fd;

    /// <summary>
    /// Opens a pidfd on a child of this process that nobody can have reaped yet: only this process waits for its
    /// children (.NET reaps only those it started through System.Diagnostics.Process, unless SIGCHLD was ignored
    /// or this is pid 1; see <see cref="Herd.Primary.WorkerLauncher"/>).
    /// </summary>
    public static Pidfd Open(int pid)
    {
        int fd = Libc.PidfdOpen(pid, 0);
        if (fd < 0) throw Fd.LastError($"pidfd_open({pid})");
        return new Pidfd(new SafeFdHandle(fd));
    }

    /// <summary>Sends a signal; false when the process has exited (reaped or not) or this handle is closed.</summary>
    public bool Signal(int signal)
    {
        try
        {
            if (Libc.PidfdSendSignal(_fd, signal, null, 0) == 0) return true;
        }
        catch (ObjectDisposedException)
        {
            return false;
        }
        int errno = Marshal.GetLastPInvokeError();
        if (errno == Libc.ESRCH) return false;
        throw new System.ComponentModel.Win32Exception(errno, $"pidfd_send_signal({signal}) failed: errno {errno}");
    }

    /// <summary>
    /// Blocks until the process exits, reaps it, and says how it ended: the exit code, or the signal that killed it.
    /// Both are null when another waiter reaped it first.
    /// </summary>
    public (int? ExitCode, int? Signal) WaitForExit()
    {
        using var fd = new HeldFd(_fd);
        Libc.SigInfo info;
        while (Libc.WaitId(Libc.P_PIDFD, fd.Fd, &info, Libc.WEXITED) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            if (errno == Libc.ECHILD) return (null, null);
            if (errno != Libc.EINTR) throw new System.ComponentModel.Win32Exception(errno, $"waitid(P_PIDFD) failed: errno {errno}");
        }
        return Children.StatusOf(info);
    }

    public void Dispose() => _fd.Dispose();
}
