using System.Runtime.InteropServices;

namespace Herd.Native;

/// <summary>An epoll set whose only use is to wait until one of the fds it watches is readable.</summary>
internal sealed class Epoll : IDisposable
{
    private readonly SafeFdHandle _fd;

    public Epoll()
    {
        _fd = new SafeFdHandle(Libc.EpollCreate1(Libc.EPOLL_CLOEXEC));
        if (_fd.IsInvalid) throw Fd.LastError("epoll_create1");
    }

    /// <summary>
    /// Watches <paramref name="fd"/> for input; <paramref name="exclusive"/> wakes one waiter of all the sets watching it
    /// (EPOLLEXCLUSIVE). False when the kernel has no exclusive wake-ups (before Linux 4.5).
    /// </summary>
    public unsafe bool TryWatch(SafeHandle fd, bool exclusive)
    {
        uint events = Libc.EPOLLIN | (exclusive ? Libc.EPOLLEXCLUSIVE : 0);
        byte* ev = stackalloc byte[KernelLayout.EpollEventSize];
        new Span<byte>(ev, KernelLayout.EpollEventSize).Clear();
        *(uint*)ev = events;
        using (var watched = new HeldFd(fd))
        {
            if (Libc.EpollCtl(_fd.Fd, Libc.EPOLL_CTL_ADD, watched.Fd, ev) == 0) return true;
        }
        if (Marshal.GetLastPInvokeError() == Libc.EINVAL && exclusive) return false;
        throw Fd.LastError("epoll_ctl");
    }

    /// <summary>Blocks until a watched fd is readable or a signal interrupts; false if the set itself failed.</summary>
    public unsafe bool Wait()
    {
        // Which fd woke us is not needed: the caller checks what it waits for. Two events' room, as the kernel fills.
        byte* events = stackalloc byte[2 * KernelLayout.EpollEventSize];
        return Libc.EpollWait(_fd.Fd, events, 2, -1) >= 0 || Marshal.GetLastPInvokeError() == Libc.EINTR;
    }

    public void Dispose() => _fd.Dispose();
}
