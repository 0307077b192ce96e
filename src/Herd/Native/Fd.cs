using System.Runtime.InteropServices;

namespace Herd.Native;

/// <summary>Small fd operations: close-on-exec, socket pairs, signals.</summary>
internal static unsafe class Fd
{
    public static void SetCloseOnExec(int fd, bool value)
    {
        int flags = Libc.Fcntl(fd, Libc.F_GETFD, 0);
        if (flags < 0) throw LastError("fcntl(F_GETFD)");
        int wanted = value ? flags | Libc.FD_CLOEXEC : flags & ~Libc.FD_CLOEXEC;
        if (wanted != flags && Libc.Fcntl(fd, Libc.F_SETFD, wanted) < 0) throw LastError("fcntl(F_SETFD)");
    }

    /// <summary>
    /// Marks every fd from 3 up close-on-exec, so that nothing this process inherited by accident (its parent's
    /// stray fds, its channel) reaches the processes it starts.
    /// </summary>
    public static void CloseOnExecFrom3()
    {
        if (Libc.CloseRange(3, uint.MaxValue, Libc.CLOSE_RANGE_CLOEXEC) == 0) return;
        foreach (var entry in Directory.GetFiles("/proc/self/fd")) // kernels before 5.11
        {
            if (int.TryParse(Path.GetFileName(entry), out int fd) && fd > 2 && Libc.Fcntl(fd, Libc.F_GETFD, 0) is >= 0 and var flags)
                Libc.Fcntl(fd, Libc.F_SETFD, flags | Libc.FD_CLOEXEC);
        }
    }

    /// <summary>A connected AF_UNIX SOCK_SEQPACKET pair, both ends close-on-exec.</summary>
    public static (SafeFdHandle Mine, SafeFdHandle Theirs) SeqPacketPair()
    {
        int* fds = stackalloc int[2];
        if (Libc.SocketPair(Libc.AF_UNIX, Libc.SOCK_SEQPACKET | Libc.SOCK_CLOEXEC, 0, fds) < 0)
            throw LastError("socketpair");
        return (new SafeFdHandle(fds[0]), new SafeFdHandle(fds[1]));
    }

    /// <summary>A pipe, both ends close-on-exec.</summary>
    public static (SafeFdHandle Read, SafeFdHandle Write) Pipe()
    {
        int* fds = stackalloc int[2];
        if (Libc.Pipe2(fds, Libc.O_CLOEXEC) < 0) throw LastError("pipe2");
        return (new SafeFdHandle(fds[0]), new SafeFdHandle(fds[1]));
    }

    /// <summary>Sends a signal; false when the process is already gone.</summary>
    public static bool Kill(int pid, int signal)
    {
        if (Libc.Kill(pid, signal) == 0) return true;
        int errno = Marshal.GetLastPInvokeError();
        if (errno == Libc.ESRCH) return false;
        throw new System.ComponentModel.Win32Exception(errno, $"kill({pid}, {signal})");
    }

    /// <summary>Shuts a socket down both ways: a thread blocked reading it wakes to end of stream.</summary>
    public static void Shutdown(SafeHandle socket)
    {
        using var fd = new HeldFd(socket);
        Libc.Shutdown(fd.Fd, Libc.SHUT_RDWR);
    }

    /// <summary>Waits until the fd is writable, or the timeout passes.</summary>
    public static void WaitWritable(int fd, int timeoutMs)
    {
        var pfd = new Libc.PollFd { Fd = fd, Events = Libc.POLLOUT };
        Libc.Poll(&pfd, 1, timeoutMs);
    }

    public static System.ComponentModel.Win32Exception LastError(string call)
    {
        int errno = Marshal.GetLastPInvokeError();
        return new System.ComponentModel.Win32Exception(errno, $"{call} failed: errno {errno}");
    }
}
