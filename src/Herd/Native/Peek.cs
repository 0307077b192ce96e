using System.Runtime.InteropServices;

namespace Herd.Native;

// What sticky routing needs to read a connection's first bytes without taking them from the worker it goes to.
internal static unsafe partial class Libc
{
    public const int MSG_PEEK = 0x2;
    public const int AF_INET = 2;
    public const int AF_INET6 = 10;

    /// <summary>Room for any socket address (struct sockaddr_storage).</summary>
    public const int SockaddrStorageSize = 128;

    [LibraryImport(Lib, EntryPoint = "recv", SetLastError = true)]
    public static partial nint Recv(int fd, byte* buffer, nuint length, int flags);

    [LibraryImport(Lib, EntryPoint = "eventfd_read", SetLastError = true)]
    public static partial int EventFdRead(int fd, ulong* value);
}
