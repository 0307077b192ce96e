// The seed's example, clustered: a primary that forks one worker per CPU, and workers that serve HTTP on one port.
using System.Runtime.InteropServices;
using Herd;

int port = Option("--port") ?? 8000;
int workers = Option("--workers") ?? Environment.ProcessorCount;

// --workers 0: no cluster, this one process serves (the single-process baseline).
if (Cluster.IsPrimary && workers > 0)
{
    Console.WriteLine($"Primary {Environment.ProcessId} is running");
    for (int i = 0; i < workers; i++) Cluster.Fork();
    Cluster.Exit += (worker, _) => Console.WriteLine($"worker {worker.Process.Id} died");

    // Ctrl+C or SIGTERM: disconnect the workers gracefully, then leave.
    var stop = new TaskCompletionSource();
    using var onInterrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
    using var onTerminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
    await stop.Task;
    await Cluster.DisconnectAsync();
    return;

    void Stop(PosixSignalContext context)
    {
        context.Cancel = true;
        stop.TrySetResult();
    }
}

var builder = WebApplication.CreateSlimBuilder(args);
builder.WebHost.UseHerd();
builder.Logging.SetMinimumLevel(LogLevel.Warning);
var app = builder.Build();
app.MapGet("/", () => "hello world\n");
app.MapGet("/pid", () => Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture));
Console.WriteLine($"Worker {Environment.ProcessId} started");
await app.RunAsync($"http://0.0.0.0:{port}");

int? Option(string name)
{
    int at = Array.IndexOf(args, name);
    return at >= 0 && at + 1 < args.Length ? int.Parse(args[at + 1], System.Globalization.CultureInfo.InvariantCulture) : null;
}
