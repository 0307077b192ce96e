using System.Globalization;
using System.Net.Sockets;
using System.Runtime.InteropServices;

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
    private readonly WorkerLogs _logs = new();
    private readonly ClusterPrimary _primary;
    private readonly TaskCompletionSource<int> _stopped = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private RunCommand(ClusterPrimary primary, Supervisor supervisor)
    {
        _primary = primary;
        _supervisor = supervisor;
    }

    public static async Task<int> RunAsync(string name, string[] command, SupervisorOptions options, bool waitReady, CancellationToken cancellationToken)
    {
        var hook = Path.Combine(AppContext.BaseDirectory, "Herd.StartupHook.dll");
        var hooks = Environment.GetEnvironmentVariable(StartupHooks);
        var primary = new ClusterPrimary(new ClusterSettings
        {
            Exec = command[0],
            Args = command[1..],
            Silent = true, // their output comes through the primary, prefixed, for herd logs
            Environment = new Dictionary<string, string?>
            {
                [StartupHooks] = string.IsNullOrEmpty(hooks) ? hook : $"{hooks}{Path.PathSeparator}{hook}",
                // A leaving worker drains until shortly before it would be killed; a waitReady app says when it is ready.
                [Herd.Child.ChildCluster.KillTimeoutVariable] = ((long)options.KillTimeout.TotalMilliseconds).ToString(CultureInfo.InvariantCulture),
                [Herd.Child.ChildCluster.WaitReadyVariable] = waitReady ? "1" : null,
            },
        });
        await using var supervisor = new Supervisor(primary, options);
        primary.AdoptSystemdSockets();
        var run = new RunCommand(primary, supervisor);
        primary.Forked += run._logs.Attach;
        var path = ControlSocket.PathFor(name);
        using var control = ControlSocket.Listen(path);
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
                Console.Error.WriteLine($"herd: worker {worker.Id} (pid {worker.Process.Id}) died ({exit}); restarting in {delay.TotalMilliseconds:0} ms");
            using var signals = run.HandleSignals();
            _ = run.ServeControlAsync(control);
            try
            {
                await supervisor.StartAsync(cancellationToken);
            }
            catch (TimeoutException ex)
            {
                // Not fatal by itself: the supervisor restarts what died, and says when it gives up.
                Console.Error.WriteLine($"herd: the workers are not ready yet: {ex.Message}");
            }
            var status = $"{name} running, {options.Workers} worker(s), pids {string.Join(' ', supervisor.Workers.Select(w => w.Process.Id))}";
            Console.Error.WriteLine($"herd: {status}");
            run._systemd.Ready(status);
            int code = await run._stopped.Task.WaitAsync(cancellationToken);
            run._systemd.Stopping(options.DrainDelay > TimeSpan.Zero ? "draining" : "stopping");
            await supervisor.StopAsync(CancellationToken.None);
            return code;
        }
        finally
        {
            File.Delete(path);
            run._systemd.Dispose();
            await primary.DisposeAsync();
        }
    }

    private CompositeDisposable HandleSignals() => new(
        PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop),
        PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop),
        PosixSignalRegistration.Create(PosixSignal.SIGHUP, context => Handle(context, ReloadAsync)),
        PosixSignalRegistration.Create(PosixSignal.SIGTTIN, context => Handle(context, () => _supervisor.ScaleByAsync(+1))),
        PosixSignalRegistration.Create(PosixSignal.SIGTTOU, context => Handle(context, () => _supervisor.ScaleByAsync(-1))));

    private void Stop(PosixSignalContext context)
    {
        context.Cancel = true;
        _stopped.TrySetResult(0);
    }

    private static void Handle(PosixSignalContext context, Func<Task> action)
    {
        context.Cancel = true;
        _ = Task.Run(async () =>
        {
            try
            {
                await action();
            }
            catch (Exception ex) when (ex is ReloadFailedException or InvalidOperationException)
            {
                Console.Error.WriteLine($"herd: {ex.Message}");
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
                connection = await control.AcceptAsync();
            }
            catch (Exception ex) when (ex is ObjectDisposedException or SocketException)
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
        try
        {
            if (ControlSocket.PeerUid(connection) != Native.Libc.GetUid())
            {
                response = new ControlResponse(false, "refused: the control socket answers only the user who runs the app");
            }
            else
            {
                var request = await ControlSocket.ReadRequestAsync(connection, CancellationToken.None);
                if (request?.Command == "logs")
                {
                    await StreamLogsAsync(connection, follow: request.Count == 1);
                    return;
                }
                response = request is null ? new ControlResponse(false, "empty request") : await ExecuteAsync(request);
            }
        }
        catch (Exception ex) when (ex is System.Text.Json.JsonException or IOException or SocketException)
        {
            response = new ControlResponse(false, $"bad request: {ex.Message}");
        }
        try
        {
            await ControlSocket.WriteAsync(connection, response, ControlJson.Default.ControlResponse);
        }
        catch (SocketException)
        {
            // the client went away
        }
    }

    // Plain lines rather than one JSON answer; following ends when the client goes away.
    private async Task StreamLogsAsync(Socket connection, bool follow)
    {
        using var gone = new CancellationTokenSource();
        var watch = follow ? WatchForHangUpAsync(connection, gone) : Task.CompletedTask;
        try
        {
            await foreach (var line in _logs.ReadAsync(follow, gone.Token))
                await connection.SendAsync(System.Text.Encoding.UTF8.GetBytes(line + "\n"), gone.Token);
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
            switch (request.Command)
            {
                case "ls":
                    return new ControlResponse(true, Workers: [.. _supervisor.Workers.OrderBy(w => w.Id).Select(Describe)]);
                case "reload":
                    await ReloadAsync();
                    return new ControlResponse(true);
                case "scale" when request.Count is int count:
                    await (request.Sign switch
                    {
                        "+" => _supervisor.ScaleByAsync(count),
                        "-" => _supervisor.ScaleByAsync(-count),
                        _ => _supervisor.ScaleAsync(count),
                    });
                    return new ControlResponse(true);
                case "restart" when request.Count is int id:
                    var worker = _supervisor.Workers.FirstOrDefault(w => w.Id == id);
                    if (worker is null) return new ControlResponse(false, $"no worker {id}");
                    await _supervisor.RestartAsync(worker);
                    return new ControlResponse(true);
                case "stop":
                    _stopped.TrySetResult(0);
                    return new ControlResponse(true);
                default:
                    return new ControlResponse(false, $"unknown command '{request.Command}'");
            }
        }
        catch (ReloadFailedException ex)
        {
            return new ControlResponse(false, ex.Message);
        }
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

    private WorkerInfo Describe(Worker worker)
    {
        var (cpu, memory) = Usage(worker.Process.Id);
        double uptime = worker.IsDead ? 0 : (DateTime.Now - worker.Process.StartTime).TotalSeconds;
        return new WorkerInfo(worker.Id, worker.Slot, worker.Process.Id, worker.State.ToString().ToLowerInvariant(), Math.Round(uptime, 1), _supervisor.Restarts,
            worker.Requests, worker.Connections, cpu, memory);
    }

    // CPU seconds and resident bytes, from /proc.
    private static (double Cpu, long Memory) Usage(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
            double cpu = (double.Parse(fields[11], CultureInfo.InvariantCulture) + double.Parse(fields[12], CultureInfo.InvariantCulture)) / 100;
            long pages = long.Parse(File.ReadAllText($"/proc/{pid}/statm").Split(' ')[1], CultureInfo.InvariantCulture);
            return (cpu, pages * Environment.SystemPageSize);
        }
        catch (IOException)
        {
            return (0, 0);
        }
    }

    private sealed class CompositeDisposable(params IDisposable[] items) : IDisposable
    {
        public void Dispose()
        {
            foreach (var item in items) item.Dispose();
        }
    }
}
