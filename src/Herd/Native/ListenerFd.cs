using System.Net.Sockets;
using System.Runtime.InteropServices;

namespace Herd.Native;

/// <summary>
/// A listening socket as the one thread that accepts on it holds it: a reference on the socket's handle keeps the fd
/// number the socket's from <see cref="Hold"/> until <see cref="Dispose"/>, which closes the socket as the thread
/// leaves. A ref struct lives on that thread's stack and nowhere else (no field, closure or other thread can have it),
/// and whoever else disposes the socket meanwhile cannot close the fd under it, the handle closing only once the loop
/// lets go: no accept4 or poll ever meets a closed or reused number.
/// </summary>
internal readonly unsafe ref struct ListenerFd
{
    /// <summary>Room for any socket address (struct sockaddr_storage), for <see cref="Accept"/>.</summary>
    public const int AddressRoom = 128;

    private const int AF_INET = 2;
    private const int AF_INET6 = 10;

    private readonly Socket _socket;
    private readonly int _fd; // -1 when the socket was closed before the loop began: every call fails with EBADF

    private ListenerFd(Socket socket, int fd) => (_socket, _fd) = (socket, fd);

    /// <summary>Takes the accept loop's reference on <paramref name="socket"/>; once disposed, the socket is closed.</summary>
    public static ListenerFd Hold(Socket socket)
    {
        bool held = false;
        try
        {
            socket.SafeHandle.DangerousAddRef(ref held);
        }
        catch (ObjectDisposedException)
        {
            // closed already: the loop's first accept fails with EBADF, and it leaves
        }
        return new ListenerFd(socket, held ? (int)socket.SafeHandle.DangerousGetHandle() : -1);
    }

    /// <summary>
    /// Takes a waiting connection, close-on-exec and blocking: its handle, or null with <paramref name="errno"/> (EAGAIN:
    /// none waits). Given room (<see cref="AddressRoom"/>), <paramref name="address"/> receives the peer's address and
    /// <paramref name="addressLength"/> its length.
    /// </summary>
    public SafeFdHandle? Accept(Span<byte> address, out int addressLength, out int errno)
    {
        uint length = (uint)address.Length;
        int fd;
        fixed (byte* pointer = address) fd = Libc.Accept4(_fd, pointer, address.IsEmpty ? null : &length, Libc.SOCK_CLOEXEC);
        addressLength = (int)length;
        errno = fd < 0 ? Marshal.GetLastPInvokeError() : 0;
        return fd < 0 ? null : new SafeFdHandle(fd);
    }

    /// <summary>Takes a waiting connection, close-on-exec and non-blocking, as a socket: null with <paramref name="errno"/> (EAGAIN: none waits).</summary>
    public Socket? AcceptSocket(out int errno)
    {
        int fd = Libc.Accept4(_fd, null, null, Libc.SOCK_CLOEXEC | Libc.SOCK_NONBLOCK);
        errno = fd < 0 ? Marshal.GetLastPInvokeError() : 0;
        return fd < 0 ? null : new Socket(new SafeSocketHandle(fd, ownsHandle: true));
    }

    /// <summary>Blocks until a connection waits (for this thread, or for whoever else accepts on the socket) or <paramref name="wake"/> is readable.</summary>
    public void WaitReadable(SafeHandle wake)
    {
        using var woken = new HeldFd(wake);
        var fds = stackalloc Libc.PollFd[2];
        fds[0] = new Libc.PollFd { Fd = _fd, Events = Libc.POLLIN };
        fds[1] = new Libc.PollFd { Fd = woken.Fd, Events = Libc.POLLIN };
        Libc.Poll(fds, 2, -1);
    }

    /// <summary>The IP address in an accepted peer's address (sockaddr_in or sockaddr_in6); empty for any other, a Unix socket's peer.</summary>
    public static ReadOnlySpan<byte> IpAddressOf(ReadOnlySpan<byte> address) =>
        address.Length < sizeof(ushort) ? default : MemoryMarshal.Read<ushort>(address) switch
        {
            AF_INET when address.Length >= 8 => address.Slice(4, 4),
            AF_INET6 when address.Length >= 24 => address.Slice(8, 16),
            _ => default,
        };

    /// <summary>Lets go of the fd and closes the socket: the accept loop's last act.</summary>
    public void Dispose()
    {
        if (_fd >= 0) _socket.SafeHandle.DangerousRelease();
        _socket.Dispose();
    }
}
