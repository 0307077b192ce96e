// The seed's example, clustered: a primary that forks one worker per CPU, and workers that serve HTTP on one port.
// For bench/run.sh's comparison of scheduling policies it can make one worker slow: --delay MS makes each request wait
// MS ms (as for a backend), --concurrency N lets a worker wait on at most N requests at a time (the rest queue, as for
// a pool of N backend connections), and --slow-worker F makes worker 1's requests wait F times as long, so that it
// also serves F times fewer of them. --ready-after MS makes each worker say itself that it is ready, MS ms after it has
// started (as an app that warms a cache would): until then the primary sends it nothing, and a reload waits for it.
using System.Globalization;
using System.Runtime.InteropServices;
using Herd;

int[] ports = Options("--port") is { Length: > 0 } given ? given : [8000];
int workers = Options("--workers") is [var count, ..] ? count : Environment.ProcessorCount;

// --workers 0: no cluster, this one process serves (the single-process baseline).
if (Cluster.IsPrimary && workers > 0) await Primary.RunAsync(workers);
else await Server.RunAsync(args, ports, RequestWork(), Options("--ready-after") is [var readyAfter, ..] ? TimeSpan.FromMilliseconds(readyAfter) : null);

Work RequestWork()
{
    int delay = Options("--delay") is [var ms, ..] ? ms : 0;
    int slow = Options("--slow-worker") is [var factor, ..] && Cluster.IsWorker && Cluster.Worker.Id == 1 ? factor : 1;
    return new Work(TimeSpan.FromMilliseconds(delay * slow), Options("--concurrency") is [var n, ..] ? n : int.MaxValue);
}

// Every value given for an option: --port may be repeated, for one server on several ports.
int[] Options(string name) =>
    [.. args.Select((arg, at) => (arg, at)).Where(a => a.arg == name && a.at + 1 < args.Length).Select(a => int.Parse(args[a.at + 1], CultureInfo.InvariantCulture))];

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
    public static async Task RunAsync(string[] args, int[] ports, Work work, TimeSpan? readyAfter)
    {
        var builder = WebApplication.CreateSlimBuilder(args);
        builder.WebHost.UseHerd(args.Contains("--reuseport") ? new ClusterListenOptions { ReusePort = true } : null);
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        var app = builder.Build();
        if (readyAfter is { } warmup && Cluster.IsWorker)
        {
            Cluster.Worker.DeferReady(); // before the app runs: the worker is ready when it says so, not once started
            app.Lifetime.ApplicationStarted.Register(() => _ = Task.Delay(warmup).ContinueWith(_ => Cluster.Worker.SignalReady(), TaskScheduler.Default));
        }
        if (work.Delay > TimeSpan.Zero)
        {
            var slots = new SemaphoreSlim(work.Concurrency);
            app.Use(async (context, next) =>
            {
                await slots.WaitAsync();
                try
                {
                    await Task.Delay(work.Delay);
                }
                finally
                {
                    slots.Release();
                }
                await next(context);
            });
        }
        app.MapGet("/", () => "hello world\n");
        app.MapGet("/pid", () => Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
        foreach (var port in ports) app.Urls.Add($"http://0.0.0.0:{port}");
        Console.WriteLine($"Worker {Environment.ProcessId} started");
        await app.RunAsync();
    }
}

/// <summary>What each request costs a worker: a wait, of which it can do <paramref name="Concurrency"/> at a time.</summary>
record Work(TimeSpan Delay, int Concurrency);
