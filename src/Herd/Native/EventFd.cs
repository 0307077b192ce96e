namespace Herd.Native;

/// <summary>An eventfd: a counter that makes itself readable when signalled, to wake a thread in poll or epoll.</summary>
internal sealed class EventFd : IDisposable
{
    public EventFd()
    {
        Handle = new SafeFdHandle(Libc.EventFd(0, Libc.EFD_CLOEXEC));
        if (Handle.IsInvalid) throw Fd.LastError("eventfd");
    }

    public SafeFdHandle Handle { get; }

    /// <summary>Makes it readable, until <see cref="Reset"/>.</summary>
    public void Signal()
    {
        try
        {
            using var fd = new HeldFd(Handle);
            Libc.EventFdWrite(fd.Fd, 1);
        }
        catch (ObjectDisposedException)
        {
            // closed: whoever it would wake has left
        }
    }

    /// <summary>Makes it unreadable again (the waiter's side, once woken).</summary>
    public unsafe void Reset()
    {
        ulong ignored;
        Libc.EventFdRead(Handle.Fd, &ignored);
    }

    public void Dispose() => Handle.Dispose();
}
