using System.Runtime.InteropServices;

namespace Herd.Native;

/// <summary>Reads a connection's first bytes without taking them from whoever reads it next (MSG_PEEK).</summary>
internal static unsafe class Peek
{
    /// <summary>
    /// Copies what has arrived into <paramref name="buffer"/> without waiting, leaving it queued: the bytes copied (0:
    /// the peer closed), or -errno (-EAGAIN: nothing yet).
    /// </summary>
    public static int Read(SafeHandle connection, Span<byte> buffer)
    {
        using var fd = new HeldFd(connection);
        nint read;
        fixed (byte* pointer = buffer) read = Libc.Recv(fd.Fd, pointer, (nuint)buffer.Length, Libc.MSG_PEEK | Libc.MSG_DONTWAIT);
        return read >= 0 ? (int)read : -Marshal.GetLastPInvokeError();
    }
}
