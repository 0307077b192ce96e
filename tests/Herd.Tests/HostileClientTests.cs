using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Xunit.Abstractions;

namespace Herd.Tests;

/// <summary>
/// Slow and hostile clients against samples/HelloCluster's workers, two of them, under either scheduling policy: while
/// some clients hold connections idle, drip their headers or reset in the middle of a request, every ordinary request
/// is served, promptly, and the workers live on. HERD_CHAOS_IDLE, HERD_CHAOS_SLOWLORIS, HERD_CHAOS_RESETS and
/// HERD_CHAOS_REQUESTS raise the numbers for a longer run; each test reports its figure through <see cref="ChaosReport"/>.
/// </summary>
public sealed class HostileClientTests(ITestOutputHelper output)
{
    private static readonly int OrdinaryRequests = ChaosReport.Setting("REQUESTS", 200);

    [Theory]
    [InlineData(SchedulingPolicy.RoundRobin)]
    [InlineData(SchedulingPolicy.None)]
    public async Task Idle_connections_held_open_keep_no_one_waiting(SchedulingPolicy policy)
    {
        int count = ChaosReport.Setting("IDLE", 1000);
        await using var sample = await SampleCluster.StartAsync(policy);
        var idle = new List<Socket>(count);
        try
        {
            await sample.ConnectAsync(idle, count);
            // A worker still taking its share of the idle connections has no room, and round robin rightly passes it
            // over: the ordinary requests start once every idle connection is in a worker's hands.
            if (policy == SchedulingPolicy.RoundRobin) await sample.HandedAsync(count);
            var traffic = await Ordinary.RunAsync(sample, OrdinaryRequests);
            // Only now does each idle connection speak: answered by a worker, it was handed over and kept open.
            var holders = await Task.WhenAll(idle.Select(socket => RawHttp.FinishAsync(socket, RawHttp.GetPid)));

            Report($"idle {count}", policy, traffic.Figure);
            traffic.AssertServedPromptly(sample);
            sample.AssertServedBy(holders, "the idle connections");
            sample.AssertWorkersLive();
        }
        finally
        {
            foreach (var socket in idle) socket.Dispose();
        }
    }

    [Theory]
    [InlineData(SchedulingPolicy.RoundRobin)]
    [InlineData(SchedulingPolicy.None)]
    public async Task Slowloris_headers_keep_no_one_waiting(SchedulingPolicy policy)
    {
        int count = ChaosReport.Setting("SLOWLORIS", 200);
        await using var sample = await SampleCluster.StartAsync(policy);
        var slow = new List<Socket>(count);
        try
        {
            await sample.ConnectAsync(slow, count);
            var slowloris = new Slowloris(slow);
            using var stop = new CancellationTokenSource();
            var drip = slowloris.DripAsync(stop.Token);
            // The workers have read every request line and wait, byte by byte, for the rest of the headers.
            await slowloris.RequestLineSent.WaitAsync(TestCluster.Timeout);
            var traffic = await Ordinary.RunAsync(sample, OrdinaryRequests);
            stop.Cancel();
            await drip.WaitAsync(TestCluster.Timeout);
            // Kestrel drops headers still unfinished after 30 s; these end well before, and must each be answered.
            var holders = await Task.WhenAll(slow.Select(socket => RawHttp.FinishAsync(socket, slowloris.Rest)));

            Report($"slowloris {count}", policy, $"{traffic.Figure}; every slow request answered once finished, after {slowloris.Sent} bytes dripped");
            traffic.AssertServedPromptly(sample);
            sample.AssertServedBy(holders, "the slowloris connections");
            sample.AssertWorkersLive();
        }
        finally
        {
            foreach (var socket in slow) socket.Dispose();
        }
    }

    [Theory]
    [InlineData(SchedulingPolicy.RoundRobin)]
    [InlineData(SchedulingPolicy.None)]
    public async Task Resets_in_the_middle_of_requests_keep_no_one_waiting(SchedulingPolicy policy)
    {
        int count = ChaosReport.Setting("RESETS", 1000);
        await using var sample = await SampleCluster.StartAsync(policy);
        // Two clients reset one request after another, as fast as they can, while the ordinary clients start. A fixed
        // number rather than a flood for as long as the ordinary traffic lasts: round robin queues the connections the
        // workers have not taken yet, and on a busy machine an endless flood would only measure the length of that queue.
        async Task ResetLoopAsync(int first)
        {
            for (int i = first; i < count; i += 2) await RawHttp.ResetAsync(sample.EndPoint, i % 2 == 0 ? RawHttp.HalfHeaders : RawHttp.HalfBody);
        }
        async Task<TimeSpan> ResetAllAsync()
        {
            var started = Stopwatch.StartNew();
            await Task.WhenAll(ResetLoopAsync(0), ResetLoopAsync(1));
            return started.Elapsed;
        }
        var resetting = ResetAllAsync();
        var during = await Ordinary.RunAsync(sample, OrdinaryRequests);
        var resetTime = await resetting.WaitAsync(TestCluster.Timeout);
        // A worker that stopped accepting for good would show now: every worker still takes new connections.
        var after = await Ordinary.RunAsync(sample, OrdinaryRequests);

        Report($"resets {count}", policy, $"all sent in {resetTime.TotalMilliseconds:F0} ms; during: {during.Figure}; after: {after.Figure}");
        during.AssertServedPromptly(sample);
        after.AssertServedPromptly(sample);
        sample.AssertWorkersLive();
    }

    private void Report(string scenario, SchedulingPolicy policy, string figure) =>
        ChaosReport.Append(output, $"{scenario} ({(policy == SchedulingPolicy.RoundRobin ? "rr" : "none")})", figure);

    /// <summary>samples/HelloCluster's two workers under a primary in this process, their output (warnings and worse) kept.</summary>
    private sealed class SampleCluster : IAsyncDisposable
    {
        private readonly TestCluster _cluster;
        private readonly Worker[] _workers;
        private readonly ConcurrentQueue<string> _log;

        private SampleCluster(TestCluster cluster, Worker[] workers, ConcurrentQueue<string> log, int port, SchedulingPolicy policy)
        {
            _cluster = cluster;
            _workers = workers;
            _log = log;
            Policy = policy;
            EndPoint = new IPEndPoint(IPAddress.Loopback, port);
            PidUri = new Uri($"http://127.0.0.1:{port}/pid");
        }

        public SchedulingPolicy Policy { get; }

        public IPEndPoint EndPoint { get; }

        public Uri PidUri { get; }

        public static async Task<SampleCluster> StartAsync(SchedulingPolicy policy)
        {
            int port = Ports.Free();
            var cluster = new TestCluster(["--port", port.ToString(CultureInfo.InvariantCulture)], policy,
                new ClusterSettings { Exec = TestCluster.SampleDll, Silent = true });
            try
            {
                var log = new ConcurrentQueue<string>();
                Worker[] workers = [cluster.Primary.Fork(), cluster.Primary.Fork()];
                foreach (var output in workers.SelectMany(w => new[] { w.Process.StandardOutput!, w.Process.StandardError! }))
                {
                    _ = Task.Run(async () =>
                    {
                        using var reader = new StreamReader(output);
                        while (await reader.ReadLineAsync() is { } line) Keep(line);
                    });
                }
                foreach (var worker in workers) await cluster.ListeningAsync(worker);
                var sample = new SampleCluster(cluster, workers, log, port, policy);
                // First requests compile Kestrel's request path: out of the way before anything is timed.
                await Ordinary.RunAsync(sample, 2 * Ordinary.Clients);
                return sample;

                void Keep(string? line)
                {
                    if (line is not null) log.Enqueue(line);
                }
            }
            catch
            {
                await cluster.DisposeAsync();
                throw;
            }
        }

        /// <summary>Opens <paramref name="count"/> connections into <paramref name="sockets"/>, which the caller disposes, even on failure.</summary>
        public async Task ConnectAsync(List<Socket> sockets, int count)
        {
            using var deadline = new CancellationTokenSource(TestCluster.Timeout);
            for (int i = 0; i < count; i++)
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                sockets.Add(socket);
                await socket.ConnectAsync(EndPoint, deadline.Token);
            }
        }

        /// <summary>Waits until the primary's workers have taken <paramref name="count"/> connections.</summary>
        public Task HandedAsync(int count) =>
            TestCluster.UntilAsync(() => _cluster.Primary.Connections.Handed >= count, $"{count} connections handed to the workers");

        /// <summary>Every pid is one of the workers'; with round robin, which deals connections in turn, both appear.</summary>
        public void AssertServedBy(IEnumerable<int> pids, string what)
        {
            var served = pids.ToHashSet();
            Assert.Subset(_workers.Select(w => w.Process.Id).ToHashSet(), served);
            if (Policy == SchedulingPolicy.RoundRobin) Assert.True(served.Count == 2, $"{what} were served by {served.Count} worker(s)");
        }

        /// <summary>Both workers are the ones started, still running, and logged no error.</summary>
        public void AssertWorkersLive()
        {
            Assert.All(_workers, worker => Assert.False(worker.IsDead, $"{worker} died"));
            Assert.Equal(_workers.Select(w => w.Id).Order(), _cluster.Primary.Workers.Keys.Order());
            bool logged = _log.Any(line => line.StartsWith("fail:", StringComparison.Ordinal) || line.StartsWith("crit:", StringComparison.Ordinal));
            Assert.False(logged, $"the workers logged errors:\n{string.Join('\n', _log)}");
        }

        public async ValueTask DisposeAsync() => await _cluster.DisposeAsync();
    }

    /// <summary>Ordinary clients asking GET /pid: half keep their connection alive, half open a new one per request.</summary>
    private sealed class Ordinary
    {
        public const int Clients = 4;

        // An ordinary request takes milliseconds, even on a busy machine; one queued behind a hostile connection would
        // wait for a Kestrel timeout (30 s for headers, 130 s for an idle connection) or for ever.
        private static readonly TimeSpan Prompt = TimeSpan.FromSeconds(5);

        private readonly ConcurrentQueue<double> _milliseconds = new();
        private readonly ConcurrentQueue<int> _pids = new();
        private readonly ConcurrentQueue<string> _failures = new();
        private int _requests;

        public static async Task<Ordinary> RunAsync(SampleCluster sample, int requests)
        {
            var traffic = new Ordinary { _requests = requests };
            using var keepAlive = new HttpClient { Timeout = TestCluster.Timeout };
            using var fresh = new HttpClient { Timeout = TestCluster.Timeout };
            fresh.DefaultRequestHeaders.ConnectionClose = true;
            using var deadline = new CancellationTokenSource(TestCluster.Timeout);
            await Task.WhenAll(Enumerable.Range(0, Clients).Select(client =>
                traffic.ClientAsync(client % 2 == 0 ? keepAlive : fresh, sample.PidUri, requests / Clients + (client < requests % Clients ? 1 : 0), deadline.Token)));
            return traffic;
        }

        public string Figure
        {
            get
            {
                var sorted = _milliseconds.Order().ToArray();
                string At(double quantile) => sorted.Length == 0 ? "-" : $"{sorted[(int)Math.Ceiling(quantile * sorted.Length) - 1]:F0} ms";
                return $"{sorted.Length}/{_requests} ordinary requests ok, p50 {At(0.5)}, p99 {At(0.99)}, max {At(1)}";
            }
        }

        public void AssertServedPromptly(SampleCluster sample)
        {
            Assert.True(_failures.IsEmpty, $"{_failures.Count} of {_requests} ordinary requests failed, the first: {_failures.FirstOrDefault()}");
            double slowest = _milliseconds.Max();
            Assert.True(slowest < Prompt.TotalMilliseconds, $"an ordinary request took {slowest:F0} ms");
            sample.AssertServedBy(_pids, "the ordinary requests");
        }

        private async Task ClientAsync(HttpClient http, Uri uri, int requests, CancellationToken deadline)
        {
            for (int i = 0; i < requests; i++)
            {
                var started = Stopwatch.StartNew();
                try
                {
                    var pid = int.Parse(await http.GetStringAsync(uri, deadline), CultureInfo.InvariantCulture);
                    _milliseconds.Enqueue(started.Elapsed.TotalMilliseconds);
                    _pids.Enqueue(pid);
                }
                catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
                {
                    _failures.Enqueue($"after {started.ElapsedMilliseconds} ms: {ex.Message}");
                }
            }
        }
    }

    /// <summary>Slowloris: every connection sends its request one byte at a time and never finishes its headers, until told.</summary>
    private sealed class Slowloris(List<Socket> sockets)
    {
        // Between bytes: the load's shape, not a wait for anything.
        private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(100);
        private static readonly byte[] Start = Encoding.ASCII.GetBytes("GET /pid HTTP/1.0\r\nX-Drip: ");
        private static readonly int RequestLine = Array.IndexOf(Start, (byte)'\n') + 1;

        private readonly TaskCompletionSource _requestLineSent = new(TaskCreationOptions.RunContinuationsAsynchronously);

        /// <summary>Completes once every connection has sent its whole request line.</summary>
        public Task RequestLineSent => _requestLineSent.Task;

        /// <summary>The bytes each connection has sent.</summary>
        public int Sent { get; private set; }

        /// <summary>What finishes each request once the drip has stopped.</summary>
        public byte[] Rest => [.. Start.Skip(Sent), .. "\r\n\r\n"u8];

        /// <summary>Sends the next byte on every connection (the first before returning), then again each interval, until stopped.</summary>
        public async Task DripAsync(CancellationToken stop)
        {
            using var timer = new PeriodicTimer(Interval);
            try
            {
                do
                {
                    byte next = Sent < Start.Length ? Start[Sent] : (byte)'a';
                    foreach (var socket in sockets) socket.Send([next]);
                    if (++Sent == RequestLine) _requestLineSent.TrySetResult();
                }
                while (await timer.WaitForNextTickAsync(stop));
            }
            catch (OperationCanceledException) when (stop.IsCancellationRequested)
            {
            }
            catch (SocketException ex)
            {
                _requestLineSent.TrySetException(ex); // a server that cut a connection fails the test now, not at the timeout
                throw;
            }
        }
    }

    /// <summary>HTTP/1.0 by hand, for clients no HttpClient would be: the server closes after its answer, and sends no chunks.</summary>
    private static class RawHttp
    {
        public static readonly byte[] GetPid = Encoding.ASCII.GetBytes("GET /pid HTTP/1.0\r\n\r\n");

        // The request line and part of a header.
        public static readonly byte[] HalfHeaders = Encoding.ASCII.GetBytes("POST /pid HTTP/1.0\r\nContent-Type: applic");

        // Whole headers and half the body they announce.
        public static readonly byte[] HalfBody = [.. Encoding.ASCII.GetBytes("POST /pid HTTP/1.0\r\nContent-Length: 65536\r\n\r\n"), .. new byte[32768]];

        /// <summary>Sends the rest of a GET /pid and reads the answer to its end: the pid of the worker that holds the connection.</summary>
        public static async Task<int> FinishAsync(Socket socket, byte[] rest)
        {
            using var deadline = new CancellationTokenSource(TestCluster.Timeout);
            await socket.SendAsync(rest, deadline.Token);
            using var response = new MemoryStream();
            var buffer = new byte[1024];
            int read;
            while ((read = await socket.ReceiveAsync(buffer, deadline.Token)) > 0) response.Write(buffer, 0, read);
            var text = Encoding.ASCII.GetString(response.ToArray());
            Assert.StartsWith("HTTP/1.1 200 ", text);
            return int.Parse(text[(text.IndexOf("\r\n\r\n", StringComparison.Ordinal) + 4)..], CultureInfo.InvariantCulture);
        }

        /// <summary>Connects, sends part of a request, and resets the connection (a zero linger makes close send RST).</summary>
        public static async Task ResetAsync(EndPoint endPoint, byte[] part)
        {
            using var deadline = new CancellationTokenSource(TestCluster.Timeout);
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync(endPoint, deadline.Token);
            await socket.SendAsync(part, deadline.Token);
            socket.LingerState = new LingerOption(true, 0);
        }
    }
}
