using System.Runtime.InteropServices;

namespace Herd.Native;

/// <summary>Reaping children with waitid(2), which says how each ended.</summary>
internal static unsafe class Children
{
    /// <summary>Blocks until any child exits and reaps it; null once this process has no child left.</summary>
    public static (int Pid, int? ExitCode, int? Signal)? ReapAny()
    {
        Libc.SigInfo info;
        while (Libc.WaitId(Libc.P_ALL, 0, &info, Libc.WEXITED) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            if (errno == Libc.ECHILD) return null;
            if (errno != Libc.EINTR) throw new System.ComponentModel.Win32Exception(errno, $"waitid(P_ALL) failed: errno {errno}");
        }
        var (code, signal) = StatusOf(info);
        return (info.Pid, code, signal);
    }

    /// <summary>The exit code, or the signal that killed the child (CLD_KILLED, or CLD_DUMPED with a core).</summary>
    public static (int? ExitCode, int? Signal) StatusOf(in Libc.SigInfo info) =>
        info.Code == Libc.CLD_EXITED ? (info.Status, null) : (null, info.Status);
}
