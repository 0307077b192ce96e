using System.Runtime.InteropServices;

namespace Herd.Native;

/// <summary>What a path is, without following a symbolic link: statx, whose layout is the same on every architecture.</summary>
internal static partial class FileStatus
{
    private const int ENOENT = 2;
    private const int AT_FDCWD = -100;
    private const int AT_SYMLINK_NOFOLLOW = 0x100;
    private const uint STATX_TYPE = 0x1;
    private const uint STATX_UID = 0x8;
    private const int S_IFMT = 0xF000;
    private const int S_IFSOCK = 0xC000;

    /// <summary>
    /// Null when nothing is at <paramref name="path"/>, not even a dangling link; otherwise whether it is itself a Unix
    /// socket (not a link to one) that belongs to <paramref name="uid"/>.
    /// </summary>
    public static bool? IsSocketOf(string path, uint uid)
    {
        Span<byte> statx = stackalloc byte[256];
        if (Statx(AT_FDCWD, path, AT_SYMLINK_NOFOLLOW, STATX_TYPE | STATX_UID, ref MemoryMarshal.GetReference(statx)) != 0)
            return Marshal.GetLastPInvokeError() == ENOENT ? null : false;
        uint owner = BitConverter.ToUInt32(statx[20..]); // stx_uid
        int mode = BitConverter.ToUInt16(statx[28..]);   // stx_mode
        return (mode & S_IFMT) == S_IFSOCK && owner == uid;
    }

    [LibraryImport("libc", EntryPoint = "statx", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int Statx(int dirfd, string path, int flags, uint mask, ref byte statx);
}
