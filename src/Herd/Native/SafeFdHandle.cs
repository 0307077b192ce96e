using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Herd.Native;

/// <summary>An owned file descriptor: closed exactly once, by the handle, unless handed on to a <see cref="Socket"/>.</summary>
internal sealed class SafeFdHandle : SafeHandle
{
    public SafeFdHandle(int fd, bool ownsHandle = true) : base(-1, ownsHandle) => SetHandle(fd);

    public override bool IsInvalid => (int)handle < 0;

    public int Fd => (int)handle;

    /// <summary>Moves ownership of the fd into a new <see cref="Socket"/>; this handle is left invalid.</summary>
    public Socket ToSocket() => new(ToSocketHandle());

    /// <summary>Moves ownership of the fd into a new <see cref="SafeSocketHandle"/>; this handle is left invalid.</summary>
    public SafeSocketHandle ToSocketHandle()
    {
        ObjectDisposedException.ThrowIf(IsClosed || IsInvalid, this);
        var fd = handle;
        SetHandleAsInvalid();
        return new SafeSocketHandle(fd, ownsHandle: true);
    }

    protected override bool ReleaseHandle() => Libc.Close((int)handle) == 0;
}
