// The seed's example, clustered: a primary that forks one worker per CPU, and workers that serve HTTP on one port.
using System.Globalization;
using System.Runtime.InteropServices;
using Herd;

int port = Option("--port") ?? 8000;
int workers = Option("--workers") ?? Environment.ProcessorCount;

// --workers 0: no cluster, this one process serves (the single-process baseline).
if (Cluster.IsPrimary && workers > 0) await Primary.RunAsync(workers);
else await Server.RunAsync(args, port);

int? Option(string name)
{
    int at = Array.IndexOf(args, name);
    return at >= 0 && at + 1 < args.Length ? int.Parse(args[at + 1], CultureInfo.InvariantCulture) : null;
}

// The primary only forks and watches; it never loads ASP.NET Core, which keeps it small.
static class Primary
{
    public static async Task RunAsync(int workers)
    {
        Console.WriteLine($"Primary {Environment.ProcessId} is running");
        for (int i = 0; i < workers; i++) Cluster.Fork();
        Cluster.Exit += (worker, _) => Console.WriteLine($"worker {worker.Process.Id} died");

        // Ctrl+C or SIGTERM: disconnect the workers gracefully, then leave.
        var stop = new TaskCompletionSource();
        void Stop(PosixSignalContext context)
        {
            context.Cancel = true;
            stop.TrySetResult();
        }
        using var onInterrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
        using var onTerminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
        await stop.Task;
        await Cluster.DisconnectAsync();
    }
}

static class Server
{
    public static async Task RunAsync(string[] args, int port)
    {
        var builder = WebApplication.CreateSlimBuilder(args);
        builder.WebHost.UseHerd(args.Contains("--reuseport") ? new ListenOptions { ReusePort = true } : null);
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        var app = builder.Build();
        app.MapGet("/", () => "hello world\n");
        app.MapGet("/pid", () => Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
        Console.WriteLine($"Worker {Environment.ProcessId} started");
        await app.RunAsync($"http://0.0.0.0:{port}");
    }
}
