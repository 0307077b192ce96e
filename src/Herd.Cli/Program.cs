// herd: run any .NET server clustered, keep it up, reload it with zero downtime.
using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using Herd.Cli;

var name = new Option<string>("--name")
{
    Description = "Which app: several can run, each under its own name ([A-Za-z0-9._-], at most 64). herd run names an app after its dll or program by default; the other commands take the one app running.",
};

var instances = new Option<string>("--instances", "-i") { Description = "Workers to run: a number, or max for one per CPU (the container's quota counts). Default: max." };
var config = new Option<string>("--config") { Description = "A herd.json file; the command line overrides it." };
var command = new Argument<string[]>("command") { Description = "The server to run, after --: dotnet MyApp.dll [args]", Arity = ArgumentArity.ZeroOrMore };
var socket = new Option<string[]>("--socket")
{
    Description = "Bind tcp://HOST:PORT or unix:/PATH in herd and pass it to each worker as fd 3 (the next one as fd 4...) with LISTEN_FDS and LISTEN_PID, "
        + "for any socket-activation-aware server: node (listen({fd: 3})), gunicorn --bind fd://3, uvicorn --fd 3. Such workers are ready once they have run minUptime, and leave on SIGTERM.",
};
var run = new Command("run", "Run a server clustered, in the foreground.") { instances, name, config, socket, command };
var policy = new Option<string>("--policy") { Description = $"How connections are spread over the workers: {Herd.SchedulingPolicyNames.All}. Default: rr, or HERD_SCHED_POLICY." };
run.Options.Add(policy);
var metrics = new Option<string>("--metrics") { Description = "Serve one Prometheus scrape for the whole cluster (GET /metrics) at HOST:PORT: herd's meters and every worker's, labelled worker and slot." };
run.Options.Add(metrics);
run.SetAction(async (result, cancellationToken) =>
{
    var file = result.GetValue(config) is { } path ? HerdConfig.Load(path) : new HerdConfig();
    if ((result.GetValue(policy) ?? file.Policy) is { } chosen) Environment.SetEnvironmentVariable(Herd.ClusterPrimary.PolicyVariable, HerdConfig.CheckPolicy(chosen));
    if ((result.GetValue(metrics) ?? file.Metrics) is { } served)
    {
        _ = MetricsEndpoint.Parse(served); // a bad address fails now, not once workers run
        Environment.SetEnvironmentVariable(Herd.Metrics.MeterCollector.Variable, served);
    }
    string[] program = result.GetValue(command) is { Length: > 0 } given ? given : file.Command ?? [];
    if (program.Length == 0) throw new ConfigException("no command to run: give one after --, or \"command\" in herd.json.");
    int workers = result.GetValue(instances) is { } count ? HerdConfig.ParseInstances(count, "--instances")
        : file.Instances is { } fromFile ? HerdConfig.ParseInstances(fromFile.ToString(), "instances")
        : Environment.ProcessorCount;
    var appName = result.GetValue(name) ?? file.Name ?? ControlSocket.DefaultName(program);
    string[] sockets = result.GetValue(socket) is { Length: > 0 } bound ? bound : file.Sockets ?? [];
    return await RunCommand.RunAsync(appName, program, file.ToOptions(workers), file.WaitReady == true, sockets, cancellationToken);
});

var json = new Option<bool>("--json") { Description = "Print a JSON array." };
var ls = new Command("ls", "List the workers of a running app.") { name, json };
ls.SetAction(async (result, cancellationToken) =>
{
    var response = await Send(result, new LsRequest(), cancellationToken);
    if (response.Workers is not { } workers) return 1;
    if (result.GetValue(json))
    {
        Console.WriteLine(JsonSerializer.Serialize(workers, ControlJson.Default.WorkerInfoArray));
        return 0;
    }
    Console.WriteLine($"{"id",4} {"slot",4} {"pid",8} {"state",-10} {"uptime",9} {"restarts",8} {"requests",9} {"conns",9} {"cpu",8} {"memory",9}");
    var rows = workers.Select(w => (w.Slot, Line: string.Create(CultureInfo.InvariantCulture,
            $"{w.Id,4} {w.Slot,4} {w.Pid,8} {w.State,-10} {w.UptimeSeconds,8:0}s {w.Restarts,8} {w.Requests,9} {w.Connections,9} {w.CpuSeconds,7:0.0}s {w.MemoryBytes / 1048576.0,7:0.0}MB")))
        .Concat((response.Slots ?? []).Select(s => (s.Slot, Line: string.Create(CultureInfo.InvariantCulture,
            $"{"-",4} {s.Slot,4} {"-",8} {s.State,-10} {"-",9} {s.Restarts,8}   last exit: {s.LastExit ?? "none"}"))));
    foreach (var (_, line) in rows.OrderBy(row => row.Slot)) Console.WriteLine(line);
    if (response.LastReloadFailure is { } failure) Console.WriteLine($"last reload failed: {failure}");
    return 0;
});

var reload = new Command("reload", "Replace every worker, with zero downtime.") { name };
reload.SetAction((result, cancellationToken) => Act(result, new ReloadRequest(), cancellationToken));

var stop = new Command("stop", "Stop the app gracefully.") { name };
stop.SetAction((result, cancellationToken) => Act(result, new StopRequest(), cancellationToken));

var target = new Argument<string>("count") { Description = "N, +N or -N workers." };
var scale = new Command("scale", "Run N workers, or N more or fewer.") { target, name };
scale.SetAction((result, cancellationToken) =>
{
    var text = result.GetValue(target)!;
    bool relative = text.Length > 0 && text[0] is '+' or '-';
    if (!int.TryParse(text, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int count) || (!relative && count < 0))
    {
        Console.Error.WriteLine($"herd: scale takes N, +N or -N, not '{text}'");
        return Task.FromResult(2);
    }
    return Act(result, new ScaleRequest(count, relative), cancellationToken);
});

var id = new Argument<int>("id") { Description = "The worker's id, as herd ls shows it." };
var restart = new Command("restart", "Replace one worker, with zero downtime.") { id, name };
restart.SetAction((result, cancellationToken) => Act(result, new RestartRequest(result.GetValue(id)), cancellationToken));

var follow = new Option<bool>("--follow", "-f") { Description = "Keep printing new lines." };
var logs = new Command("logs", "Print the workers' output, each line prefixed by its worker id.") { name, follow };
logs.SetAction(async (result, cancellationToken) =>
{
    await using var output = Console.OpenStandardOutput();
    try
    {
        await ControlSocket.StreamLogsAsync(AppName(result), result.GetValue(follow), output, cancellationToken);
    }
    catch (IOException)
    {
        // our reader left (herd logs -f | head): done
    }
    return 0;
});

var once = new Option<bool>("--once") { Description = "Draw one frame and exit." };
var monit = new Command("monit", "A live view of the workers: state, requests, CPU and memory, refreshed every second.") { name, once };
monit.SetAction((result, cancellationToken) => MonitCommand.RunAsync(AppName(result), result.GetValue(once), cancellationToken));

var upgrade = new Command("upgrade", "Replace the primary itself with the herd now on disk, the port open throughout; herd.json is read again.") { name };
upgrade.SetAction((result, cancellationToken) => Act(result, new UpgradeRequest(), cancellationToken));

// A clear line, not a stack trace: for input herd cannot use (exit 2), and for an app that is not running, or already is (exit 1).
foreach (var client in new[] { run, ls, logs, monit, reload, restart, stop, scale, upgrade })
{
    var action = client.Action!;
    client.SetAction(async (result, cancellationToken) =>
    {
        try
        {
            return await ((System.CommandLine.Invocation.AsynchronousCommandLineAction)action).InvokeAsync(result, cancellationToken);
        }
        catch (ConfigException ex)
        {
            Console.Error.WriteLine($"herd: {ex.Message}");
            return 2;
        }
        catch (InvalidOperationException ex)
        {
            Console.Error.WriteLine($"herd: {ex.Message}");
            return 1;
        }
    });
}

var root = new RootCommand("herd: run any .NET server clustered, keep it up, reload it with zero downtime.") { run, ls, logs, monit, reload, restart, stop, scale, upgrade };
return await root.Parse(args).InvokeAsync();

async Task<ControlResponse> Send(ParseResult result, ControlRequest request, CancellationToken cancellationToken)
{
    var response = await ControlSocket.SendAsync(AppName(result), request, cancellationToken);
    if (!response.Ok) Console.Error.WriteLine($"herd: {response.Error}");
    return response;
}

async Task<int> Act(ParseResult result, ControlRequest request, CancellationToken cancellationToken) =>
    (await Send(result, request, cancellationToken)).Ok ? 0 : 1;

// --name, or the one app running.
string AppName(ParseResult result) => result.GetValue(name) ?? ControlSocket.TheOneRunning();
