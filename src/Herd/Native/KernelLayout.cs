using System.Runtime.InteropServices;

namespace Herd.Native;

/// <summary>
/// The kernel's structs whose layout differs by architecture, measured once. Herd knows x86-64 and arm64 Linux; on
/// another architecture it refuses to start (<see cref="EnsureKnown"/>) rather than let the kernel write past a buffer.
/// Every other struct Herd hands the kernel (msghdr, cmsghdr, iovec, pollfd, siginfo_t, statx) is the same on both.
/// </summary>
internal static class KernelLayout
{
    /// <summary>struct epoll_event's size here: the 32-bit events, then the 64-bit data at <see cref="EpollDataOffset"/>.</summary>
    public static int EpollEventSize { get; } = EpollEventSizeOn(RuntimeInformation.ProcessArchitecture);

    /// <summary>Where struct epoll_event's data starts: right after events where the struct is packed.</summary>
    public static int EpollDataOffset => EpollEventSize - sizeof(ulong);

    /// <summary>x86-64 declares struct epoll_event packed (12 bytes); arm64 aligns its data (16). 0: not known.</summary>
    public static int EpollEventSizeOn(Architecture architecture) => architecture switch
    {
        Architecture.X64 => 12,
        Architecture.Arm64 => 16,
        _ => 0,
    };

    /// <summary>Throws on an architecture whose layouts Herd does not know.</summary>
    public static void EnsureKnown()
    {
        if (!OperatingSystem.IsLinux() || EpollEventSize == 0)
            throw new PlatformNotSupportedException(
                $"Herd runs on Linux on x86-64 and arm64; this is {RuntimeInformation.OSDescription} on {RuntimeInformation.ProcessArchitecture}.");
    }
}
