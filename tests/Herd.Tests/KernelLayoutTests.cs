using System.Runtime.InteropServices;
using Herd.Native;

namespace Herd.Tests;

// Issue 14 item 1: the structs Herd hands the kernel must have the kernel's layout on each architecture Herd runs on.
public sealed class KernelLayoutTests
{
    [Fact]
    public void Epoll_events_have_each_known_architectures_size_and_no_other_is_guessed()
    {
        Assert.Equal(12, KernelLayout.EpollEventSizeOn(Architecture.X64));
        Assert.Equal(16, KernelLayout.EpollEventSizeOn(Architecture.Arm64));
        Assert.Equal(0, KernelLayout.EpollEventSizeOn(Architecture.Arm));
        Assert.Equal(0, KernelLayout.EpollEventSizeOn(Architecture.RiscV64));
    }

    // The kernel reads data where Herd writes it and hands it back where Herd reads it, and writes nothing past the
    // events Herd asked for: a wrong size or offset shows as other bytes or a scribbled guard.
    [Fact]
    public unsafe void The_kernel_round_trips_an_epoll_event_in_herds_layout()
    {
        const ulong data = 0x1122334455667788;
        using var epoll = new SafeFdHandle(Libc.EpollCreate1(Libc.EPOLL_CLOEXEC));
        using var wake = new SafeFdHandle(Libc.EventFd(0, Libc.EFD_CLOEXEC));
        int size = KernelLayout.EpollEventSize;
        byte* ev = stackalloc byte[size];
        new Span<byte>(ev, size).Clear();
        *(uint*)ev = Libc.EPOLLIN;
        *(ulong*)(ev + KernelLayout.EpollDataOffset) = data;
        Assert.Equal(0, Libc.EpollCtl(epoll.Fd, Libc.EPOLL_CTL_ADD, wake.Fd, ev));
        Assert.Equal(0, Libc.EventFdWrite(wake.Fd, 1));

        byte* events = stackalloc byte[3 * size];
        new Span<byte>(events, 3 * size).Fill(0xAB);
        Assert.Equal(1, Libc.EpollWait(epoll.Fd, events, 2, 1000));
        Assert.Equal(Libc.EPOLLIN, *(uint*)events);
        Assert.Equal(data, *(ulong*)(events + KernelLayout.EpollDataOffset));
        Assert.All(new Span<byte>(events + size, 2 * size).ToArray(), b => Assert.Equal(0xAB, b));
    }
}
