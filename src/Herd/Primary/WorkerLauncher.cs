using System.Collections.Concurrent;
using System.Runtime.InteropServices;
using Herd.Child;
using Herd.Native;

namespace Herd.Primary;

/// <summary>
/// Starts worker processes with posix_spawn: the worker's end of the channel becomes its fd 3
/// (<see cref="ChildCluster.ChannelFd"/>), a silent worker's stdout and stderr become pipes and its stdin /dev/null,
/// and it starts with no blocked signal and every signal's default disposition.
/// </summary>
/// <remarks>
/// Every spawn runs on one thread that lives as long as the process. A worker asks to be SIGKILLed when its parent
/// dies (PR_SET_PDEATHSIG), and Linux sends that signal when the thread that forked it exits, not the process; a
/// spawn from a thread-pool thread that later retired would kill a healthy worker.
/// </remarks>
internal static class WorkerLauncher
{
    private static readonly BlockingCollection<Action> s_spawns = StartSpawner();

    public static WorkerProcess Start(ClusterSettings settings, IReadOnlyDictionary<string, string?>? env, int id, int slot, SafeFdHandle channelEnd)
    {
        var (file, args) = Program(settings);
        var environment = Spawn.CurrentEnvironment();
        Apply(environment, settings.Environment);
        Apply(environment, env);
        WorkerRuntime.ApplyDefaults(environment);
        environment[ChildCluster.IdVariable] = id.ToString(System.Globalization.CultureInfo.InvariantCulture);
        environment[ChildCluster.SlotVariable] = slot.ToString(System.Globalization.CultureInfo.InvariantCulture);
        string[] argv = [file, .. args];
        SafeHandle?[] passed = [channelEnd];
        if (settings.PassedSockets is { } sockets)
        {
            // No channel: the worker is not a Herd worker, and its fds from 3 are the sockets.
            environment.Remove(ChildCluster.IdVariable);
            environment["LISTEN_FDS"] = sockets.Count.ToString(System.Globalization.CultureInfo.InvariantCulture);
            environment.Remove("LISTEN_FDNAMES");
            argv = PassedSockets.WithListenPid(argv);
            passed = [.. sockets.Select(s => s.SafeHandle)];
        }
        if (settings.Uid is not null || settings.Gid is not null) argv = DropPrivileges(argv, settings.Uid, settings.Gid);

        bool silent = settings.Silent == true;
        var (outRead, outWrite) = silent ? Fd.Pipe() : (null, null);
        var (errRead, errWrite) = silent ? Fd.Pipe() : (null, null);
        try
        {
            var started = new TaskCompletionSource<int>();
            s_spawns.Add(() =>
            {
                try
                {
                    started.SetResult(Spawn.Start(argv[0], argv, environment, settings.WorkingDirectory,
                        [null, outWrite, errWrite, .. passed], stdinFromDevNull: silent));
                }
                catch (Exception e)
                {
                    started.SetException(e);
                }
            });
            int pid = started.Task.GetAwaiter().GetResult();
            // Safe until we reap it ourselves: nobody else waits for this child (see Pidfd.Open).
            return new WorkerProcess(pid, Pidfd.Open(pid), outRead, errRead);
        }
        catch
        {
            outRead?.Dispose();
            errRead?.Dispose();
            throw;
        }
        finally
        {
            outWrite?.Dispose();
            errWrite?.Dispose();
        }
    }

    private static BlockingCollection<Action> StartSpawner()
    {
        var spawns = new BlockingCollection<Action>();
        new Thread(() =>
        {
            foreach (var spawn in spawns.GetConsumingEnumerable()) spawn();
        }) { IsBackground = true, Name = "Herd spawner" }.Start();
        return spawns;
    }

    /// <summary>
    /// Runs the worker through util-linux's setpriv, which sets uid, gid and groups and then execs it, inherited fds
    /// intact; .NET's own UserName cannot set a group of one's choice.
    /// </summary>
    private static string[] DropPrivileges(string[] argv, int? uid, int? gid)
    {
        var user = uid ?? (int)Libc.GetUid();
        var group = gid ?? PrimaryGroupOf(user);
        return ["setpriv", $"--reuid={user}", $"--regid={group}", "--clear-groups", "--", .. argv];
    }

    private static int PrimaryGroupOf(int uid)
    {
        foreach (var line in File.ReadLines("/etc/passwd"))
        {
            var fields = line.Split(':');
            if (fields.Length > 3 && fields[2] == uid.ToString(System.Globalization.CultureInfo.InvariantCulture))
                return int.Parse(fields[3], System.Globalization.CultureInfo.InvariantCulture);
        }
        throw new ArgumentException($"Uid {uid} has no entry in /etc/passwd; set ClusterSettings.Gid as well.", nameof(uid));
    }

    private static void Apply(Dictionary<string, string?> target, IReadOnlyDictionary<string, string?>? changes)
    {
        if (changes is null) return;
        foreach (var (name, value) in changes)
        {
            if (value is null) target.Remove(name);
            else target[name] = value;
        }
    }

    /// <summary>The program and arguments to run: a .dll goes through the dotnet host; the default is this program again.</summary>
    internal static (string File, IReadOnlyList<string> Args) Program(ClusterSettings settings)
    {
        var commandLine = Environment.GetCommandLineArgs();
        var exec = settings.Exec ?? DefaultExec(commandLine);
        var args = settings.Args ?? commandLine[1..];
        return exec.EndsWith(".dll", StringComparison.OrdinalIgnoreCase)
            ? (DotnetHost(), [exec, .. args])
            : (exec, args);
    }

    // commandLine[0] is the app's .dll whether it started as `dotnet app.dll` or through its apphost.
    private static string DefaultExec(string[] commandLine) =>
        commandLine[0].EndsWith(".dll", StringComparison.OrdinalIgnoreCase) ? commandLine[0] : Environment.ProcessPath!;

    private static string DotnetHost()
    {
        var self = Environment.ProcessPath;
        if (self is not null && Path.GetFileNameWithoutExtension(self) == "dotnet") return self;
        return Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "dotnet";
    }
}
