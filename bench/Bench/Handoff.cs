using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Herd.Bench;

/// <summary>
/// How fast the primary accepts and hands connections to workers, and what the handoff adds to a connection's
/// latency. Clients connect and wait for the server to close; the server is either this process accepting directly,
/// or a primary (in this process) handing each connection to one of two workers that accept and close it. The
/// primary's own CPU is read from its threads (named "herd ..."), so the client's work does not count against it.
/// </summary>
internal static class Handoff
{
    private const int Concurrency = 32;

    public static async Task<int> RunAsync(int seconds, int rounds)
    {
        var duration = TimeSpan.FromSeconds(seconds);
        using var direct = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        direct.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        direct.Listen(512);
        using var stop = new CancellationTokenSource();
        var acceptor = AcceptAndCloseAsync(direct, stop.Token);

        await using var primary = new ClusterPrimary(new ClusterSettings { Args = ["handoff-worker"] });
        var listening = new TaskCompletionSource<ListeningAddress>();
        int ready = 0;
        primary.Listening += (_, address) =>
        {
            if (Interlocked.Increment(ref ready) == 2) listening.TrySetResult(address);
        };
        primary.Fork();
        primary.Fork();
        var endPoint = (IPEndPoint)(await listening.Task.WaitAsync(TimeSpan.FromSeconds(30))).EndPoint;

        // Both warmed first (the JIT, the workers' thread pools), then alternating rounds, so that a machine that gets
        // busier or quieter during the run moves both alike.
        await ClientsAsync((IPEndPoint)direct.LocalEndPoint!, duration);
        await ClientsAsync(endPoint, duration);
        var inv = CultureInfo.InvariantCulture;
        for (int round = 1; round <= rounds; round++)
        {
            var baseline = await ClientsAsync((IPEndPoint)direct.LocalEndPoint!, duration);
            var cpuBefore = PrimaryCpuSeconds();
            var handoff = await ClientsAsync(endPoint, duration);
            var primaryCpu = PrimaryCpuSeconds() - cpuBefore;
            Console.WriteLine(string.Create(inv, $"direct {baseline.Rate:F0} {baseline.P50:F3} {baseline.P99:F3}"));
            Console.WriteLine(string.Create(inv, $"handoff {handoff.Rate:F0} {handoff.P50:F3} {handoff.P99:F3}"));
            Console.WriteLine(string.Create(inv, $"primary-cpu {primaryCpu:F3} {handoff.Count}"));
        }
        stop.Cancel();
        await acceptor;
        return 0;
    }

    public static async Task<int> WorkerAsync()
    {
        await using var listener = await ClusterSocket.ListenAsync(new IPEndPoint(IPAddress.Loopback, 0));
        while (true) (await listener.AcceptAsync()).Dispose();
    }

    private static async Task AcceptAndCloseAsync(Socket listener, CancellationToken cancellationToken)
    {
        try
        {
            while (true) (await listener.AcceptAsync(cancellationToken)).Dispose();
        }
        catch (OperationCanceledException)
        {
        }
    }

    private sealed record Result(double Rate, double P50, double P99, int Count);

    private static async Task<Result> ClientsAsync(IPEndPoint endPoint, TimeSpan duration)
    {
        var latencies = new List<double>[Concurrency];
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, Concurrency).Select(i => Task.Run(async () =>
        {
            var mine = latencies[i] = [];
            var buffer = new byte[1];
            while (clock.Elapsed < duration)
            {
                long start = Stopwatch.GetTimestamp();
                using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                await client.ConnectAsync(endPoint);
                await client.ReceiveAsync(buffer); // 0: the server took the connection and closed it
                mine.Add(Stopwatch.GetElapsedTime(start).TotalMilliseconds);
            }
        })));
        var all = latencies.SelectMany(l => l).Order().ToArray();
        return new Result(all.Length / clock.Elapsed.TotalSeconds, all[all.Length / 2], all[(int)(all.Length * 0.99)], all.Length);
    }

    // CPU time of this process's Herd threads: the accept thread and the channel readers.
    private static double PrimaryCpuSeconds()
    {
        double ticks = 0;
        foreach (var task in Directory.GetDirectories("/proc/self/task"))
        {
            try
            {
                if (!File.ReadAllText(Path.Combine(task, "comm")).StartsWith("herd ", StringComparison.Ordinal)) continue;
                var stat = File.ReadAllText(Path.Combine(task, "stat"));
                var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
                ticks += double.Parse(fields[11], CultureInfo.InvariantCulture) + double.Parse(fields[12], CultureInfo.InvariantCulture);
            }
            catch (IOException)
            {
                // the thread ended while we looked
            }
        }
        return ticks / 100;
    }
}
