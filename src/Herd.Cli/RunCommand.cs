using System.Globalization;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Herd.Native;

namespace Herd.Cli;

/// <summary>
/// <c>herd run</c>: the primary, in the foreground. Forks the command's workers under a <see cref="Supervisor"/>,
/// clusters an unmodified ASP.NET Core app through the startup hook, answers the control socket, and takes
/// signals: TERM and INT stop gracefully, HUP reloads, TTIN and TTOU add and remove a worker.
/// </summary>
internal sealed class RunCommand
{
    private const string StartupHooks = "DOTNET_STARTUP_HOOKS";

    private readonly Supervisor _supervisor;
    private readonly SystemdNotifier _systemd = new();
    private readonly WorkerLogs _logs;
    private readonly ClusterPrimary _primary;
    private readonly TaskCompletionSource<int> _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly List<Task> _answering = [];
    private string? _bindFailure;
    private volatile bool _started;
    private Upgrader _upgrader = null!;
    private Socket _control = null!;

    private RunCommand(ClusterPrimary primary, Supervisor supervisor, WorkerLogs logs)
    {
        _primary = primary;
        _supervisor = supervisor;
        _logs = logs;
    }

    public static async Task<int> RunAsync(string name, string[] command, SupervisorOptions options, bool waitReady, string[] sockets, CancellationToken cancellationToken)
    {
        if (Init.IsNeeded) return Init.Run();
        var path = ControlSocket.PathFor(name);
        await using var logs = new WorkerLogs(); // the first in, the last out: it writes what everything else printed
        using var passed = SocketMode.Listen(sockets);
        var hook = Path.Combine(AppContext.BaseDirectory, "Herd.StartupHook.dll");
        var hooks = passed is null ? Environment.GetEnvironmentVariable(StartupHooks) : null;
        var primary = new ClusterPrimary(new ClusterSettings
        {
            Exec = command[0],
            Args = command[1..],
            Silent = true, // their output comes through the primary, prefixed, for herd logs
            Environment = new Dictionary<string, string?>
            {
                [StartupHooks] = passed is not null ? Environment.GetEnvironmentVariable(StartupHooks) : string.IsNullOrEmpty(hooks) ? hook : $"{hooks}{Path.PathSeparator}{hook}",
                // A leaving worker drains until shortly before it would be killed; a waitReady app says when it is ready.
                [Herd.Child.ChildCluster.KillTimeoutVariable] = ((long)options.KillTimeout.TotalMilliseconds).ToString(CultureInfo.InvariantCulture),
                [Herd.Child.ChildCluster.WaitReadyVariable] = waitReady ? "1" : null,
            },
            PassedSockets = passed?.Sockets,
            PassedReadyAfter = options.MinUptime,
        });
        await using var supervisor = new Supervisor(primary, options);
        await using var metrics = MetricsEndpoint.Start(primary);
        var predecessor = Upgrader.Adopt(); // started by herd upgrade: the old primary's sockets are ours
        primary.AdoptSystemdSockets();
        var run = new RunCommand(primary, supervisor, logs);
        run._upgrader = new Upgrader(primary, run._systemd, options.ReadyTimeout, predecessor);
        primary.Forked += logs.Attach;
        primary.BindFailed += (address, error) =>
            Interlocked.CompareExchange(ref run._bindFailure, $"cannot listen on {address}: {new SocketException((int)error).Message}", null);
        // Not `using`: a Socket removes the file it bound as it is disposed, and after an upgrade the path is the new primary's.
        var control = run._control = predecessor?.Control ?? ControlSocket.Listen(path);
        try
        {
            supervisor.Errored += reason =>
            {
                Console.Error.WriteLine($"herd: {reason}");
                run._stopped.TrySetResult(1);
            };
            supervisor.Hung += (worker, silent) =>
                Console.Error.WriteLine($"herd: worker {worker.Id} (pid {worker.Process.Id}) answered no heartbeat for {silent.TotalSeconds:0.#} s; killed");
            supervisor.Recycling += (worker, reason) => Console.Error.WriteLine($"herd: recycling worker {worker.Id} (pid {worker.Process.Id}): {reason}");
            supervisor.Restarting += (worker, exit, delay) =>
            {
                // At start a death ends the run (below), whatever the supervisor would do next.
                if (run._started) Console.Error.WriteLine($"herd: worker {worker.Id} (pid {worker.Process.Id}) died ({exit}); restarting in {delay.TotalMilliseconds:0} ms");
            };
            using var signals = run.HandleSignals();
            if (predecessor is null) _ = run.ServeControlAsync(control); // else once the old primary no longer answers
            var starting = supervisor.StartAsync(cancellationToken);
            if (await Task.WhenAny(starting, run._stopped.Task) == starting)
            {
                try
                {
                    await starting;
                }
                catch (WorkerNotReadyException ex)
                {
                    // A worker that cannot start now will not start on its own later: one clear failure, not a crash loop.
                    var why = await run.ExplainAsync(ex);
                    Console.Error.WriteLine($"herd: {why}");
                    predecessor?.Failed(why);
                    await run.StopAsync(control, supervisor);
                    return run._bindFailure is not null ? 1 : ExitCodeOf(ex.Exit);
                }
                run._started = true;
                var status = $"{name} running, {options.Workers} worker(s), pids {string.Join(' ', supervisor.Workers.Select(w => w.Process.Id))}";
                Console.Error.WriteLine($"herd: {status}");
                if (predecessor is not null) run._systemd.MainPid();
                run._systemd.Ready(status);
                if (predecessor is not null)
                {
                    await predecessor.ReadyAsync();
                    _ = run.ServeControlAsync(control);
                }
            }
            int code = await run._stopped.Task.WaitAsync(cancellationToken);
            run._upgrader.Abandon();
            if (!run._upgrader.HandedOver) run._systemd.Stopping(options.DrainDelay > TimeSpan.Zero ? "draining" : "stopping");
            await run.StopAsync(control, supervisor);
            return code;
        }
        finally
        {
            if (!run._upgrader.HandedOver) control.Dispose();
            if (run._upgrader.OwnsControlPath) File.Delete(path);
            run._systemd.Dispose();
            await primary.DisposeAsync();
        }
    }

    // Stops the workers, then takes no more requests and lets the answers under way go out before the process exits.
    private async Task StopAsync(Socket control, Supervisor supervisor)
    {
        await supervisor.StopAsync(CancellationToken.None);
        if (!_upgrader.HandedOver) control.Dispose();
        Task[] answering;
        lock (_answering) answering = [.. _answering];
        await Task.WhenAny(Task.WhenAll(answering), Task.Delay(TimeSpan.FromSeconds(2)));
    }

    private static int ExitCodeOf(WorkerExit? exit) => exit switch
    {
        { ExitCode: int code and not 0 } => code,
        { Signal: { } signal } => 128 + (int)signal,
        _ => 1,
    };

    // The failure in a line (a bind error the primary saw says it all), with advice when Herd never started in the
    // worker, and the worker's last lines.
    private async Task<string> ExplainAsync(WorkerNotReadyException failure)
    {
        if (_bindFailure is { } bind) return bind;
        var lines = new List<string> { failure.Message };
        if (!failure.Connected && _primary.Settings.PassedSockets is null)
            lines.Add("If the app itself did not fail (see its last lines), herd could not cluster it: the startup hook that makes it a herd worker did not load. "
                + "Run a .NET app as `herd run -- dotnet App.dll` (not `dotnet run`, a script or another runtime), publish it with StartupHookSupport=true "
                + "(trimmed and AOT builds turn it off), or call UseHerd() in it. A server in another language gets the port from herd instead: "
                + "`herd run --socket tcp://HOST:PORT -- <command>` hands it the listening socket as fd 3 (LISTEN_FDS).");
        if (await _logs.LastLinesAsync(failure.Worker.Id, 10) is { Count: > 0 } last)
        {
            lines.Add($"Its last lines:");
            lines.AddRange(last.Select(line => "  " + line));
        }
        return string.Join(Environment.NewLine, lines);
    }

    private CompositeDisposable HandleSignals()
    {
        // The workers leave a group's SIGINT to us (they reset what they inherit), so we must hear it even when the
        // shell that started us ignored it, as Node and gunicorn do.
        SignalDisposition.Unignore(UnixSignal.SIGINT);
        return new(
            PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop),
            PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop),
            PosixSignalRegistration.Create(PosixSignal.SIGHUP, context => Handle(context, ReloadAsync)),
            PosixSignalRegistration.Create(PosixSignal.SIGTTIN, context => Handle(context, () => _supervisor.ScaleByAsync(+1))),
            PosixSignalRegistration.Create(PosixSignal.SIGTTOU, context => Handle(context, () => _supervisor.ScaleByAsync(-1))),
            PosixSignalRegistration.Create((PosixSignal)(int)UnixSignal.SIGUSR2, context => Handle(context, UpgradeBySignalAsync)));
    }

    private void Stop(PosixSignalContext context)
    {
        context.Cancel = true;
        _primary.Stopping = true; // the workers got it too, if it came to the process group: they leave through the drain
        if (_stopped.TrySetResult(0)) Console.Error.WriteLine($"herd: {context.Signal}: stopping gracefully");
    }

    private void Handle(PosixSignalContext context, Func<Task> action)
    {
        context.Cancel = true;
        _ = Task.Run(async () =>
        {
            try
            {
                await action();
            }
            catch (Exception ex) when (ex is WorkerNotReadyException or InvalidOperationException or ArgumentException)
            {
                Console.Error.WriteLine($"herd: {await RefusalAsync(ex)}");
            }
        });
    }

    private async Task ServeControlAsync(Socket control)
    {
        while (true)
        {
            Socket connection;
            try
            {
                connection = await control.AcceptAsync(_upgrader.Serving);
            }
            catch (Exception ex) when (ex is ObjectDisposedException or SocketException or OperationCanceledException)
            {
                return;
            }
            _ = AnswerAsync(connection);
        }
    }

    private async Task AnswerAsync(Socket connection)
    {
        using var _ = connection;
        ControlResponse response;
        ControlRequest? request = null;
        try
        {
            if (connection.PeerUid() != Libc.GetUid())
            {
                response = new ControlResponse(false, "refused: the control socket answers only the user who runs the app");
            }
            else
            {
                request = await ControlSocket.ReadRequestAsync(connection, CancellationToken.None);
                if (request is LogsRequest logs)
                {
                    await StreamLogsAsync(connection, logs.Follow);
                    return;
                }
                response = request is null ? new ControlResponse(false, "empty request") : await ExecuteAsync(request);
            }
        }
        catch (Exception ex) when (ex is System.Text.Json.JsonException or NotSupportedException or IOException or SocketException)
        {
            response = new ControlResponse(false, $"bad request: {ex.Message} Requests are one JSON line: {{\"command\":\"ls\"}}, reload, stop, " +
                "{\"command\":\"restart\",\"id\":ID}, {\"command\":\"scale\",\"count\":N} (relative: true for +N or -N), {\"command\":\"logs\",\"follow\":false}.");
        }
        var answer = AnswerAndThenAsync(connection, response, request);
        lock (_answering) _answering.Add(answer);
        await answer;
        lock (_answering) _answering.Remove(answer);
    }

    // A stop is answered before the app stops, so that the client hears it worked.
    private async Task AnswerAndThenAsync(Socket connection, ControlResponse response, ControlRequest? request)
    {
        try
        {
            await ControlSocket.WriteAsync(connection, response, ControlJson.Default.ControlResponse);
        }
        catch (SocketException)
        {
            // the client went away
        }
        if (request is StopRequest) _stopped.TrySetResult(0);
    }

    // Plain lines rather than one JSON answer; following ends when the client goes away.
    private async Task StreamLogsAsync(Socket connection, bool follow)
    {
        using var gone = new CancellationTokenSource();
        var watch = follow ? WatchForHangUpAsync(connection, gone) : Task.CompletedTask;
        try
        {
            await foreach (var lines in _logs.ReadAsync(follow, gone.Token))
                await connection.SendAsync(System.Text.Encoding.UTF8.GetBytes(lines), gone.Token);
        }
        catch (Exception ex) when (ex is SocketException or OperationCanceledException)
        {
            // the follower left
        }
        await gone.CancelAsync();
        await watch;
    }

    private static async Task WatchForHangUpAsync(Socket connection, CancellationTokenSource gone)
    {
        try
        {
            await connection.ReceiveAsync(new byte[1], gone.Token); // 0 bytes: the client closed
        }
        catch (Exception ex) when (ex is SocketException or OperationCanceledException)
        {
        }
        await gone.CancelAsync();
    }

    private async Task<ControlResponse> ExecuteAsync(ControlRequest request)
    {
        try
        {
            switch (request)
            {
                case LsRequest:
                    return Ls();
                case ReloadRequest:
                    await ReloadAsync();
                    return new ControlResponse(true);
                case ScaleRequest { Relative: false, Count: < 0 } scale:
                    return new ControlResponse(false, $"scale: {scale.Count} is not a number of workers; for fewer workers, send \"relative\": true (herd scale -N).");
                case ScaleRequest scale:
                    await (scale.Relative ? _supervisor.ScaleByAsync(scale.Count) : _supervisor.ScaleAsync(scale.Count));
                    return new ControlResponse(true);
                case RestartRequest restart:
                    var worker = _supervisor.Workers.FirstOrDefault(w => w.Id == restart.Id);
                    if (worker is null)
                    {
                        return new ControlResponse(false, _supervisor.Slots.Any(s => s.Replacement?.Id == restart.Id)
                            ? $"worker {restart.Id} is a replacement still starting; restart it once it serves"
                            : $"no worker {restart.Id}");
                    }
                    await _supervisor.RestartAsync(worker);
                    return new ControlResponse(true);
                case StopRequest:
                    return new ControlResponse(true); // the stop itself follows the answer
                case UpgradeRequest:
                    return await UpgradeAsync();
                default:
                    return new ControlResponse(false, $"unknown request {request.GetType().Name}");
            }
        }
        catch (Exception ex) when (ex is WorkerNotReadyException or InvalidOperationException or ArgumentException)
        {
            return new ControlResponse(false, await RefusalAsync(ex));
        }
    }

    // What a client is told when an operation fails or is refused: the reason, and a failed new worker's last lines.
    private async Task<string> RefusalAsync(Exception failure)
    {
        if (failure is not WorkerNotReadyException notReady) return failure.Message.Split(" (Parameter", 2)[0];
        var last = await _logs.LastLinesAsync(notReady.Worker.Id, 10);
        return last.Count == 0 ? failure.Message : $"{failure.Message}{Environment.NewLine}Its last lines:{Environment.NewLine}{string.Join(Environment.NewLine, last.Select(line => "  " + line))}";
    }

    // Once the new primary is ready, this one stops accepting (the sockets stay open: they are the new one's too),
    // gives what it accepted to its workers, and then stops as on SIGTERM: its workers drain.
    private async Task<ControlResponse> UpgradeAsync()
    {
        if (await _upgrader.UpgradeAsync(_control) is { } why) return new ControlResponse(false, $"upgrade: {why}");
        _ = Task.Run(async () =>
        {
            await _primary.StopAcceptingAsync();
            _stopped.TrySetResult(0);
        });
        return new ControlResponse(true);
    }

    private async Task UpgradeBySignalAsync()
    {
        var response = await UpgradeAsync();
        if (!response.Ok) Console.Error.WriteLine($"herd: {response.Error}");
    }

    private ControlResponse Ls()
    {
        var slots = _supervisor.Slots;
        WorkerInfo[] workers = [.. slots.SelectMany(s => new[] { s.Worker, s.Replacement }.OfType<Worker>().Select(w => Describe(w, s.Restarts))).OrderBy(w => w.Id)];
        SlotInfo[] empty = [.. slots.Where(s => s.Worker is null && s.Replacement is null)
            .Select(s => new SlotInfo(s.Index, s.State.ToString().ToLowerInvariant(), s.Restarts, s.LastExit?.ToString()))];
        return new ControlResponse(true, Workers: workers, Slots: empty.Length > 0 ? empty : null, LastReloadFailure: _supervisor.LastReloadFailure);
    }

    private async Task ReloadAsync()
    {
        _systemd.Reloading();
        try
        {
            await _supervisor.ReloadAsync();
        }
        finally
        {
            _systemd.Ready("reloaded");
        }
    }

    private WorkerInfo Describe(Worker worker, int restarts)
    {
        double uptime = worker.IsDead ? 0 : (DateTime.Now - worker.Process.StartTime).TotalSeconds;
        return new WorkerInfo(worker.Id, worker.Slot, worker.Process.Id, worker.State.ToString().ToLowerInvariant(), Math.Round(uptime, 1), restarts,
            worker.Requests, worker.Connections, ProcessStats.CpuSeconds(worker.Process.Id), ProcessStats.ResidentBytes(worker.Process.Id));
    }

    private sealed class CompositeDisposable(params IDisposable[] items) : IDisposable
    {
        public void Dispose()
        {
            foreach (var item in items) item.Dispose();
        }
    }
}
