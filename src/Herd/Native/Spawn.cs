using System.Collections;
using System.Runtime.InteropServices;
using System.Text;

namespace Herd.Native;

/// <summary>
/// posix_spawn: starts a program with exactly the fds it is given at the numbers it is given, signals as a freshly
/// booted process has them (no blocked signal, every disposition default: the .NET runtime ignores SIGPIPE, and an
/// ignored signal survives exec), and nothing else of this process but its environment as given.
/// </summary>
internal static unsafe class Spawn
{
    private const int OpaqueSize = 512; // room for glibc's posix_spawnattr_t (336 bytes) and file actions (80)

    /// <summary>Starts <paramref name="file"/> (looked up in PATH when it has no slash) and returns its pid.</summary>
    /// <param name="file">The program.</param>
    /// <param name="argv">Its arguments, argv[0] first.</param>
    /// <param name="environment">Its environment; a null value leaves the variable out.</param>
    /// <param name="workingDirectory">Where it starts; null for this process's.</param>
    /// <param name="fds">Which of this process's fds each of its fds from 0 up is; null leaves that fd as it is here.</param>
    /// <param name="stdinFromDevNull">Its stdin reads /dev/null, whatever this process's is.</param>
    public static int Start(string file, IReadOnlyList<string> argv, IReadOnlyDictionary<string, string?> environment, string? workingDirectory,
        ReadOnlySpan<SafeHandle?> fds, bool stdinFromDevNull)
    {
        var strings = new List<nint>();
        var held = new List<SafeHandle>();
        var moved = new List<SafeFdHandle>();
        byte* actions = stackalloc byte[OpaqueSize];
        byte* attributes = stackalloc byte[OpaqueSize];
        byte* signals = stackalloc byte[Libc.SigSetSize];
        Check(Libc.FileActionsInit(actions), "posix_spawn_file_actions_init");
        Check(Libc.SpawnAttrInit(attributes), "posix_spawnattr_init");
        try
        {
            var argvNative = NullTerminated(argv, strings);
            var envNative = NullTerminated([.. environment.Where(v => v.Value is not null).Select(v => $"{v.Key}={v.Value}")], strings);
            if (stdinFromDevNull) Check(Libc.FileActionsAddOpen(actions, 0, Utf8("/dev/null", strings), Libc.O_RDONLY, 0), "addopen");
            for (int target = 0; target < fds.Length; target++)
            {
                if (fds[target] is not { } source) continue;
                bool added = false;
                source.DangerousAddRef(ref added);
                held.Add(source);
                int fd = (int)source.DangerousGetHandle();
                if (fd < fds.Length)
                {
                    // An earlier dup2 would overwrite it: the child gets it from a number none of them targets.
                    fd = Libc.Fcntl(fd, Libc.F_DUPFD_CLOEXEC, fds.Length);
                    if (fd < 0) throw Fd.LastError("fcntl(F_DUPFD_CLOEXEC)");
                    moved.Add(new SafeFdHandle(fd));
                }
                Check(Libc.FileActionsAddDup2(actions, fd, target), "adddup2");
            }
            if (workingDirectory is not null) Check(Libc.FileActionsAddChdir(actions, Utf8(workingDirectory, strings)), "addchdir");
            Libc.SigEmptySet(signals);
            Check(Libc.SpawnAttrSetSigMask(attributes, signals), "setsigmask");
            Libc.SigFillSet(signals);
            Check(Libc.SpawnAttrSetSigDefault(attributes, signals), "setsigdefault");
            Check(Libc.SpawnAttrSetFlags(attributes, Libc.POSIX_SPAWN_SETSIGMASK | Libc.POSIX_SPAWN_SETSIGDEF), "setflags");
            int pid;
            int error = Libc.PosixSpawnP(&pid, Utf8(file, strings), actions, attributes, argvNative, envNative);
            if (error != 0) throw new System.ComponentModel.Win32Exception(error, $"Could not start {file}: {Marshal.GetPInvokeErrorMessage(error)}.");
            return pid;
        }
        finally
        {
            Libc.SpawnAttrDestroy(attributes);
            Libc.FileActionsDestroy(actions);
            foreach (var fd in moved) fd.Dispose();
            foreach (var fd in held) fd.DangerousRelease();
            foreach (var s in strings) NativeMemory.Free((void*)s);
        }
    }

    /// <summary>This process's environment, to pass on with changes.</summary>
    public static Dictionary<string, string?> CurrentEnvironment()
    {
        var environment = new Dictionary<string, string?>(StringComparer.Ordinal);
        foreach (DictionaryEntry variable in Environment.GetEnvironmentVariables()) environment[(string)variable.Key] = (string?)variable.Value;
        return environment;
    }

    private static byte** NullTerminated(IReadOnlyList<string> values, List<nint> strings)
    {
        var array = (byte**)NativeMemory.AllocZeroed((nuint)(values.Count + 1), (nuint)sizeof(nint));
        strings.Add((nint)array);
        for (int i = 0; i < values.Count; i++) array[i] = Utf8(values[i], strings);
        return array;
    }

    private static byte* Utf8(string value, List<nint> strings)
    {
        int length = Encoding.UTF8.GetByteCount(value);
        var bytes = (byte*)NativeMemory.Alloc((nuint)length + 1);
        strings.Add((nint)bytes);
        Encoding.UTF8.GetBytes(value, new Span<byte>(bytes, length));
        bytes[length] = 0;
        return bytes;
    }

    private static void Check(int error, string call)
    {
        if (error != 0) throw new System.ComponentModel.Win32Exception(error, $"posix_spawn ({call}) failed: errno {error}");
    }
}
