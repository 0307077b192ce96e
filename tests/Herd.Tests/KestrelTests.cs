using System.Collections.Concurrent;
using System.Diagnostics;

namespace Herd.Tests;

/// <summary>The seed's example, clustered: samples/HelloCluster run as a user runs it.</summary>
public sealed class KestrelTests
{
    private static string SampleDll => TestCluster.SampleDll;

    [Fact]
    public async Task HelloCluster_answers_hello_world_from_every_worker()
    {
        int port = Ports.Free();
        await using var primary = TestProcess.Start(["dotnet", SampleDll, "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--workers", "2"]);
        string Output() => primary.Output.ToString() + primary.Errors;
        await primary.Output.WaitForAsync(l => l.StartsWith("Worker ", StringComparison.Ordinal), count: 2, "two workers started");
        using var http = new HttpClient { Timeout = TestCluster.Timeout };
        http.DefaultRequestHeaders.ConnectionClose = true; // a new connection per request, so round robin shows
        var root = new Uri($"http://127.0.0.1:{port}/");
        Assert.Equal("hello world\n", await GetWhenUpAsync(http, root, Output));
        // A worker gets connections once it is ready, which may be a moment after it says it started.
        var pids = new HashSet<string>();
        await TestCluster.UntilAsync(async () =>
        {
            pids.Add(await http.GetStringAsync(new Uri(root, "pid")));
            return pids.Count == 2;
        }, "both workers serving");
        Assert.Equal(2, pids.Count);
        Assert.Contains($"Primary {primary.Pid} is running", primary.Output.Lines.Concat(primary.Errors.Lines));

        Assert.True(Native.Fd.Kill(primary.Pid, (int)UnixSignal.SIGTERM)); // a graceful stop of the whole cluster
        await primary.Output.WaitForAsync(l => l.StartsWith("worker ", StringComparison.Ordinal) && l.EndsWith(" died", StringComparison.Ordinal), count: 2, "two workers died");
        Assert.Equal(0, await primary.WaitForExitAsync());
        Assert.All(pids, pid => Assert.False(LifecycleTests.IsAlive(int.Parse(pid, System.Globalization.CultureInfo.InvariantCulture))));
    }

    // Under SCHED_NONE the leaving worker's own accept thread (SharedListener) must let go of the shared socket too.
    [Theory]
    [InlineData(SchedulingPolicy.RoundRobin)]
    [InlineData(SchedulingPolicy.None)]
    public async Task Disconnecting_a_kestrel_worker_under_load_loses_no_request(SchedulingPolicy policy)
    {
        int port = Ports.Free();
        await using var cluster = new TestCluster(["--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture)],
            policy, new ClusterSettings { Exec = SampleDll });
        var (leaving, _) = await cluster.ForkListeningAsync();
        var (staying, _) = await cluster.ForkListeningAsync();
        using var http = new HttpClient { Timeout = TestCluster.Timeout };
        http.DefaultRequestHeaders.ConnectionClose = true;
        var uri = new Uri($"http://127.0.0.1:{port}/pid");
        const int Clients = 4, RequestsEach = 150;
        var served = new ConcurrentDictionary<string, int>();
        var failures = new ConcurrentQueue<Exception>();
        int done = 0;
        async Task ClientAsync()
        {
            for (int i = 0; i < RequestsEach; i++)
            {
                try
                {
                    served.AddOrUpdate(await http.GetStringAsync(uri), 1, (_, n) => n + 1);
                }
                catch (HttpRequestException ex)
                {
                    failures.Enqueue(ex);
                }
                Interlocked.Increment(ref done);
            }
        }
        var clients = Enumerable.Range(0, Clients).Select(_ => Task.Run(ClientAsync)).ToArray();
        await TestCluster.UntilAsync(() => Volatile.Read(ref done) >= Clients * RequestsEach / 4, "a quarter of the requests done");

        var exit = await leaving.DisconnectAsync().WaitAsync(TestCluster.Timeout);
        await Task.WhenAll(clients).WaitAsync(TestCluster.Timeout);

        Assert.Empty(failures);
        Assert.Equal(Clients * RequestsEach, served.Values.Sum());
        Assert.Equal(0, exit.ExitCode);
        Assert.True(leaving.ExitedAfterDisconnect);
        Assert.True(served.ContainsKey(leaving.Process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)));
        Assert.True(served.ContainsKey(staying.Process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)));
    }

    [Fact]
    public async Task Each_kestrel_endpoint_is_served_through_its_own_listener()
    {
        int first = Ports.Free(), second = Ports.Free();
        var inv = System.Globalization.CultureInfo.InvariantCulture;
        await using var cluster = new TestCluster(["--port", first.ToString(inv), "--port", second.ToString(inv)], settings: new ClusterSettings { Exec = SampleDll });
        var listening = new ConcurrentQueue<int>();
        var allListening = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        cluster.Primary.Listening += (_, address) =>
        {
            listening.Enqueue(address.Port);
            if (listening.Count == 4) allListening.TrySetResult();
        };
        var workers = new[] { cluster.Primary.Fork(), cluster.Primary.Fork() };
        await allListening.Task.WaitAsync(TestCluster.Timeout);
        using var http = new HttpClient { Timeout = TestCluster.Timeout };
        http.DefaultRequestHeaders.ConnectionClose = true;
        foreach (var port in new[] { first, second })
        {
            var uri = new Uri($"http://127.0.0.1:{port}/pid");
            var pids = new HashSet<string>();
            for (int i = 0; i < 10; i++) pids.Add(await http.GetStringAsync(uri));
            Assert.Equal(workers.Select(w => w.Process.Id.ToString(inv)).Order(), pids.Order());
        }
        Assert.Equal(new[] { first, first, second, second }.Order(), listening.Order());
    }

    // Issue 14 item 7: a port in use reaches Kestrel as its own AddressInUseException, which its binder words itself.
    [Fact]
    public async Task A_port_in_use_fails_kestrels_bind_in_kestrels_words()
    {
        using var squatter = new System.Net.Sockets.Socket(System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        squatter.Bind(new System.Net.IPEndPoint(System.Net.IPAddress.Any, 0));
        squatter.Listen();
        int port = ((System.Net.IPEndPoint)squatter.LocalEndPoint!).Port;
        string[] output;
        await using (var primary = TestProcess.Start(["dotnet", SampleDll, "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--workers", "1"]))
        {
            await primary.Output.WaitForAsync(l => l.StartsWith("worker ", StringComparison.Ordinal) && l.EndsWith(" died", StringComparison.Ordinal));
            output = [.. primary.Output.Lines, .. primary.Errors.Lines];
        }
        Assert.Contains(output, line => line.Contains($"Failed to bind to address http://0.0.0.0:{port}: address already in use.", StringComparison.Ordinal));
    }

    // Issue 14 item 7: Kestrel's SocketTransportOptions.NoDelay holds for connections that come through Herd.
    [Theory]
    [InlineData(false, "True")]
    [InlineData(true, "False")]
    public async Task Kestrels_no_delay_option_holds(bool nagle, string noDelay)
    {
        await using var herd = await CliTests.HerdRun.StartAsync(1, null,
            port => ["dotnet", TestCluster.TestWebAppDll, "--urls", $"http://127.0.0.1:{port}", .. nagle ? new[] { "--nagle" } : []]);
        using var http = new HttpClient { Timeout = TestCluster.Timeout };
        Assert.Equal(noDelay, await http.GetStringAsync(new Uri($"http://127.0.0.1:{herd.Port}/nodelay")));
    }

    // Workers log "started" just before Kestrel binds; the first request may beat the bind.
    internal static async Task<string> GetWhenUpAsync(HttpClient http, Uri uri, Func<string> output)
    {
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            try
            {
                return await http.GetStringAsync(uri);
            }
            catch (HttpRequestException ex)
            {
                if (deadline.Elapsed > TestCluster.Timeout) throw new TimeoutException($"{uri} never answered. The cluster wrote:\n{output()}", ex);
                await Task.Delay(50);
            }
        }
    }
}
