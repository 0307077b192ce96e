using System.Globalization;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using Herd.Native;
using Herd.Primary;

namespace Herd.Cli;

/// <summary>
/// <c>herd upgrade</c> and SIGUSR2, in the running primary: as nginx's USR2, it starts the herd now on disk with its own
/// command line (so herd.json is read again), hands it every listening socket and the control socket as inherited fds
/// (LISTEN_FDS, as systemd's socket activation does), and waits until its workers are ready. Then this primary stops
/// accepting, lets the successor answer the control socket, and drains its workers; the port never closes. A successor
/// that is not ready within the ready timeout is killed and this primary goes on serving.
/// </summary>
/// <remarks>
/// The two talk over a socket pair: the successor says <c>ready</c> (or <c>failed</c> and why), this primary answers
/// <c>go</c> once it no longer answers the control socket, and its end closes only as it exits, which tells the
/// successor that its predecessor is gone. Refused as pid 1's child (<see cref="Init"/>): a container's pid 1 cannot
/// be replaced, and the container would end with it.
/// </remarks>
internal sealed class Upgrader
{
    private const string ChannelVariable = "HERD_UPGRADE_FD";
    private const string ControlVariable = "HERD_CONTROL_FD";
    private const string FromVariable = "HERD_UPGRADE_FROM";

    // The successor's own start (the runtime, herd.json, the primary) on top of its workers' ready timeout.
    private static readonly TimeSpan StartGrace = TimeSpan.FromSeconds(15);

    private readonly ClusterPrimary _primary;
    private readonly SystemdNotifier _systemd;
    private readonly TimeSpan _readyTimeout;
    private readonly CancellationTokenSource _serving = new();
    private readonly bool _underInit = Environment.GetEnvironmentVariable(Init.ChildVariable) == "1";
    private int _running;
    private Socket? _successor; // open until this process exits: its close tells the successor we are gone
    private WorkerProcess? _starting;

    public Upgrader(ClusterPrimary primary, SystemdNotifier systemd, TimeSpan readyTimeout, Predecessor? predecessor)
    {
        _primary = primary;
        _systemd = systemd;
        _readyTimeout = readyTimeout;
        Predecessor = predecessor;
        Environment.SetEnvironmentVariable(Init.ChildVariable, null);
    }

    /// <summary>The primary this one took over from, while it may still be draining; null when started afresh.</summary>
    public Predecessor? Predecessor { get; }

    /// <summary>Cancelled once a successor answers the control socket.</summary>
    public CancellationToken Serving => _serving.Token;

    /// <summary>A successor took over: this primary only drains now, and the control socket's path is the successor's.</summary>
    public bool HandedOver { get; private set; }

    /// <summary>Whether this process may remove the control socket's file as it exits.</summary>
    public bool OwnsControlPath => !HandedOver && (Predecessor is null || Predecessor.TookOver);

    /// <summary>Starts the successor and waits until it is ready: null then, else why not (this primary serves on).</summary>
    public async Task<string?> UpgradeAsync(Socket control)
    {
        if (_underInit)
            return "herd runs as a container's pid 1 here, which an upgrade cannot replace (the container would end with it): restart the container with the new image instead.";
        if (Predecessor is { Gone.IsCompleted: false })
            return $"the previous primary (pid {Predecessor.Pid}) is still draining its workers; upgrade again once it has exited.";
        if (Interlocked.Exchange(ref _running, 1) == 1) return "an upgrade is already under way.";
        try
        {
            var (pid, channel, why) = await StartSuccessorAsync(control).ConfigureAwait(false);
            if (why is not null) return why;
            HandedOver = true;
            _successor = channel;
            await _serving.CancelAsync().ConfigureAwait(false);
            Console.Error.WriteLine($"herd: upgrade: the new primary (pid {pid}) is ready and answers the control socket; this one (pid {Environment.ProcessId}) drains its workers and exits");
            channel!.Send("go"u8);
            return null;
        }
        finally
        {
            if (!HandedOver) Volatile.Write(ref _running, 0);
        }
    }

    /// <summary>This primary stops before a successor it is starting is ready: the successor goes too (the sockets and the control socket's file stay this primary's to close).</summary>
    public void Abandon()
    {
        if (!HandedOver) Volatile.Read(ref _starting)?.Signal(UnixSignal.SIGKILL);
    }

    private async Task<(int Pid, Socket? Channel, string? Why)> StartSuccessorAsync(Socket control)
    {
        var sockets = _primary.ListeningSockets();
        var (mine, theirs) = Fd.SeqPacketPair();
        var channel = mine.ToSocket();
        int pid;
        using (theirs)
        {
            var environment = Spawn.CurrentEnvironment();
            foreach (var (name, value) in _systemd.Inherited) environment[name] = value;
            environment["LISTEN_PID"] = null; // the successor's own pid: it sets it itself (see Predecessor.TryAdopt)
            environment["LISTEN_FDNAMES"] = null;
            environment["LISTEN_FDS"] = Number(sockets.Length);
            environment[ControlVariable] = Number(3 + sockets.Length);
            environment[ChannelVariable] = Number(4 + sockets.Length);
            environment[FromVariable] = Number(Environment.ProcessId);
            SafeHandle?[] fds = [null, null, null, .. sockets.Select(s => s.SafeHandle), control.SafeHandle, theirs];
            var (file, args) = WorkerLauncher.Program(new ClusterSettings()); // this program, with this command line
            try
            {
                pid = Spawn.Start(file, [file, .. args], environment, workingDirectory: null, fds, stdinFromDevNull: false);
            }
            catch (System.ComponentModel.Win32Exception ex)
            {
                channel.Dispose();
                return (0, null, $"could not start the new primary: {ex.Message}");
            }
        }
        Console.Error.WriteLine($"herd: upgrade: started the new primary (pid {pid}) with {sockets.Length} listening socket(s); waiting for its workers");
        // Nobody else reaps it: it is our child until we exit.
        var process = new WorkerProcess(pid, Pidfd.Open(pid), null, null);
        Volatile.Write(ref _starting, process);
        var buffer = new byte[64 * 1024];
        using var timeout = new CancellationTokenSource(_readyTimeout + StartGrace);
        var said = channel.ReceiveAsync(buffer, SocketFlags.None, timeout.Token).AsTask();
        await Task.WhenAny(said, process.Exited).ConfigureAwait(false);
        var message = said.IsCompletedSuccessfully ? Encoding.UTF8.GetString(buffer, 0, said.Result) : "";
        Volatile.Write(ref _starting, null);
        if (message == "ready") return (pid, channel, null);
        channel.Dispose();
        using (process)
        {
            // Having said why, or closed its end, it is on its way out; silent past the timeout, it is killed.
            bool timedOut = !said.IsCompletedSuccessfully && !process.Exited.IsCompleted;
            if (timedOut) process.Signal(UnixSignal.SIGKILL); // its workers die with it (PR_SET_PDEATHSIG)
            var exit = await process.Exited.WaitAsync(TimeSpan.FromSeconds(10)).ConfigureAwait(false);
            return (pid, null, message.StartsWith("failed\n", StringComparison.Ordinal)
                ? $"the new primary (pid {pid}) failed; this one serves on. {message["failed\n".Length..]}"
                : timedOut
                    ? $"the new primary (pid {pid}) was not ready within {(_readyTimeout + StartGrace).TotalSeconds:0} s: killed it; this one serves on."
                    : $"the new primary (pid {pid}) ended ({exit}) before it was ready; this one serves on. Its output, above, says why.");
        }
    }

    private static string Number(int value) => value.ToString(CultureInfo.InvariantCulture);

    /// <summary>The successor's side: what it inherited from the primary that started it.</summary>
    internal static Predecessor? Adopt() => Predecessor.TryAdopt(ChannelVariable, ControlVariable, FromVariable);
}
