using System.Runtime.InteropServices;
using Herd.Native;
using Herd.Primary;

namespace Herd.Cli;

/// <summary>
/// <c>herd run</c> as pid 1, a container's entry point. As tini does, it starts herd again as its only child,
/// forwards it the signals a container gets (SIGTERM from <c>docker stop</c> drains as usual), reaps every orphan the
/// kernel hands to pid 1, and exits as the child did. The child is not pid 1, and that matters: at pid 1 the .NET
/// runtime reaps every child it sees exit, so herd would lose its workers' exit statuses to it.
/// </summary>
/// <remarks>
/// The runtime must not reap here too, or the child's exit status may go to it: this process starts no
/// System.Diagnostics.Process, and SIGCHLD goes back to its default disposition, away from the runtime's handler
/// (which Console installs when stdin looks like a terminal).
/// </remarks>
internal static class Init
{
    private static readonly UnixSignal[] Forwarded =
    [
        UnixSignal.SIGTERM, UnixSignal.SIGINT, UnixSignal.SIGHUP, UnixSignal.SIGQUIT,
        UnixSignal.SIGUSR1, UnixSignal.SIGUSR2, UnixSignal.SIGTTIN, UnixSignal.SIGTTOU,
    ];

    /// <summary>Set in the child's environment: herd knows it runs under pid 1 and refuses an upgrade, which pid 1 would not survive.</summary>
    public const string ChildVariable = "HERD_UNDER_INIT";

    public static bool IsNeeded => Libc.GetPid() == 1;

    /// <summary>Runs this program again as a child and reaps until it exits; returns its exit code (128 + N for signal N).</summary>
    public static int Run()
    {
        Libc.Signal((int)UnixSignal.SIGCHLD, Libc.SIG_DFL); // waitid below needs no signal
        var (file, args) = WorkerLauncher.Program(new ClusterSettings()); // this program, with this command line
        var environment = Spawn.CurrentEnvironment();
        environment[ChildVariable] = "1";
        int pid = Spawn.Start(file, [file, .. args], environment, workingDirectory: null, [], stdinFromDevNull: false);
        using var child = Pidfd.Open(pid);
        var registrations = Forwarded.Select(signal => PosixSignalRegistration.Create((PosixSignal)(int)signal, context =>
        {
            context.Cancel = true;
            child.Signal((int)signal);
        })).ToList();
        try
        {
            return ReapUntil(pid);
        }
        finally
        {
            foreach (var registration in registrations) registration.Dispose();
        }
    }

    // Every child that exits is reaped at once: the one we started, and every orphan reparented to us.
    private static int ReapUntil(int main)
    {
        while (Children.ReapAny() is var (pid, code, signal))
        {
            if (pid == main) return code ?? 128 + signal!.Value;
        }
        return 1; // something else reaped it, so how it ended is unknown
    }
}
