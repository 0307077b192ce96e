using System.Collections.Concurrent;
using System.Diagnostics;
using Herd.Child;
using Herd.Native;

namespace Herd.Primary;

/// <summary>
/// Starts worker processes with their end of the channel inherited. .NET 10 cannot name the fds a child inherits,
/// so the child's end loses close-on-exec only for the duration of Process.Start, on the one thread that runs every
/// Herd spawn, so no other Herd spawn can inherit it too.
/// </summary>
/// <remarks>
/// That thread lives as long as the process. A worker asks to be SIGKILLed when its parent dies (PR_SET_PDEATHSIG),
/// and Linux sends that signal when the thread that forked it exits, not the process; Process.Start forks from the
/// calling thread, so a spawn from a thread-pool thread that later retired would kill a healthy worker.
/// </remarks>
internal static class WorkerLauncher
{
    private static readonly BlockingCollection<Action> s_spawns = StartSpawner();

    public static Process Start(ClusterSettings settings, IReadOnlyDictionary<string, string?>? env, int id, int slot, SafeFdHandle channelEnd)
    {
        var (file, args) = Program(settings);
        var start = new ProcessStartInfo(file) { UseShellExecute = false };
        foreach (var arg in args) start.ArgumentList.Add(arg);
        if (settings.WorkingDirectory is { } cwd) start.WorkingDirectory = cwd;
        if (settings.Silent == true)
        {
            start.RedirectStandardOutput = true;
            start.RedirectStandardError = true;
        }
        Apply(start.Environment, settings.Environment);
        Apply(start.Environment, env);
        start.Environment[ChildCluster.IdVariable] = id.ToString(System.Globalization.CultureInfo.InvariantCulture);
        start.Environment[ChildCluster.ChannelVariable] = channelEnd.Fd.ToString(System.Globalization.CultureInfo.InvariantCulture);
        start.Environment[ChildCluster.SlotVariable] = slot.ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (settings.Uid is not null || settings.Gid is not null) DropPrivileges(start, settings.Uid, settings.Gid);

        var started = new TaskCompletionSource<Process>();
        s_spawns.Add(() =>
        {
            try
            {
                started.SetResult(StartInheriting(start, channelEnd));
            }
            catch (Exception e)
            {
                started.SetException(e);
            }
        });
        return started.Task.GetAwaiter().GetResult();
    }

    private static Process StartInheriting(ProcessStartInfo start, SafeFdHandle channelEnd)
    {
        Fd.SetCloseOnExec(channelEnd.Fd, false);
        try
        {
            return Process.Start(start) ?? throw new InvalidOperationException($"Could not start {start.FileName}.");
        }
        finally
        {
            Fd.SetCloseOnExec(channelEnd.Fd, true);
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
    private static void DropPrivileges(ProcessStartInfo start, int? uid, int? gid)
    {
        var user = uid ?? (int)Libc.GetUid();
        var group = gid ?? PrimaryGroupOf(user);
        string[] wrapped = [$"--reuid={user}", $"--regid={group}", "--clear-groups", "--", start.FileName, .. start.ArgumentList];
        start.FileName = "setpriv";
        start.ArgumentList.Clear();
        foreach (var arg in wrapped) start.ArgumentList.Add(arg);
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

    private static void Apply(IDictionary<string, string?> target, IReadOnlyDictionary<string, string?>? changes)
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
