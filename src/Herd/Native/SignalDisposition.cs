using System.Globalization;

namespace Herd.Native;

/// <summary>What this process does with a signal before anyone handles it.</summary>
internal static class SignalDisposition
{
    /// <summary>
    /// Makes an inherited ignored <paramref name="signal"/> default again, so a handler registered next hears it: a
    /// non-interactive shell starts a background job with SIGINT and SIGQUIT ignored, exec keeps that, and the runtime
    /// then never installs its SIGINT handler. True if it was ignored.
    /// </summary>
    public static bool Unignore(UnixSignal signal)
    {
        if (!IsIgnored(signal)) return false;
        Libc.Signal((int)signal, Libc.SIG_DFL);
        return true;
    }

    // The kernel's word (SigIgn, a hex mask of signal n at bit n-1) spares us sigaction's per-architecture layout.
    private static bool IsIgnored(UnixSignal signal)
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
        {
            if (!line.StartsWith("SigIgn:", StringComparison.Ordinal)) continue;
            ulong mask = ulong.Parse(line.AsSpan("SigIgn:".Length).Trim(), NumberStyles.HexNumber, CultureInfo.InvariantCulture);
            return (mask & (1UL << ((int)signal - 1))) != 0;
        }
        return false;
    }

    /// <summary>Has the kernel send this process <paramref name="signal"/> when its parent dies (PR_SET_PDEATHSIG).</summary>
    public static void OnParentDeath(UnixSignal signal)
    {
        if (Libc.Prctl(Libc.PR_SET_PDEATHSIG, (nuint)signal, 0, 0, 0) != 0) throw Fd.LastError("prctl(PR_SET_PDEATHSIG)");
    }
}
