using System.Globalization;
using System.Net.Sockets;

namespace Herd.Tests;

/// <summary>Least-busy dispatch: a worker busy with what it holds is passed over, and equally busy workers share in turn.</summary>
public sealed class LeastBusyTests
{
    private const int Held = 16;

    [Fact]
    public async Task A_worker_holding_its_connections_is_passed_over_for_an_idle_one()
    {
        await using var cluster = new TestCluster(["serve"], SchedulingPolicy.LeastBusy);
        var (holding, address) = await cluster.ForkListeningAsync();
        var held = new List<Client>();
        try
        {
            for (int i = 0; i < Held; i++)
            {
                held.Add(await Client.ConnectAsync(address.EndPoint));
                Assert.Equal(holding.Process.Id, await held[^1].ReadPidAsync());
            }
            await TestCluster.UntilAsync(() => holding.Busy == Held, $"the primary to see the {Held} connections as busy units");
            var (idle, _) = await cluster.ForkListeningAsync();
            await idle.Ready.WaitAsync(TestCluster.Timeout);

            // One at a time, each once the idle worker has closed the last one (a starved worker may lag): each goes to it.
            for (int i = 0; i < 40; i++)
            {
                await TestCluster.UntilAsync(() => idle.Busy == 0, "the idle worker to close its last connection");
                int pid = await Client.PidOfAsync(address.EndPoint);
                Assert.True(pid == idle.Process.Id, $"connection {i} went to the busy worker ({holding.Busy} busy units, the other {idle.Busy})");
            }
        }
        finally
        {
            foreach (var client in held) client.Dispose();
        }
    }

    [Fact]
    public async Task Equally_busy_workers_share_connections_in_turn()
    {
        await using var cluster = new TestCluster(["serve"], SchedulingPolicy.LeastBusy);
        var (workers, address) = await cluster.ForkListeningAsync(3);
        var counts = await TestCluster.SharesAsync(workers, address, 300);
        Assert.True(counts.Values.Max() <= 1.1 * counts.Values.Min(), string.Join(", ", counts));
    }

    [Fact]
    public async Task A_kestrel_worker_is_as_busy_as_its_requests_in_progress()
    {
        // Worker 1 of the sample takes 10,000 times 1 ms over each request; worker 2 takes 1 ms.
        int port = Ports.Free();
        await using var cluster = SampleCluster(port, "--delay", "1", "--slow-worker", "10000");
        var (slow, _) = await cluster.ForkListeningAsync();
        await slow.Ready.WaitAsync(TestCluster.Timeout);
        using var http = new HttpClient { Timeout = TestCluster.Timeout };
        http.DefaultRequestHeaders.ConnectionClose = true;
        var uri = new Uri($"http://127.0.0.1:{port}/pid");
        using var abandon = new CancellationTokenSource();
        List<Task> inProgress = [.. Enumerable.Range(0, 2).Select(_ => http.GetStringAsync(uri, abandon.Token))];
        try
        {
            await TestCluster.UntilAsync(() => slow.Busy == 2, "the primary to see the 2 requests in progress as busy units");
            var (fast, _) = await cluster.ForkListeningAsync();
            await fast.Ready.WaitAsync(TestCluster.Timeout);
            for (int i = 0; i < 10; i++) Assert.Equal(fast.Process.Id.ToString(CultureInfo.InvariantCulture), await http.GetStringAsync(uri));
        }
        finally
        {
            await abandon.CancelAsync(); // the worker would take 10 s over them
            await Task.WhenAll(inProgress).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing | ConfigureAwaitOptions.ContinueOnCapturedContext);
        }
    }

    [Fact]
    public async Task An_idle_connection_keeps_no_kestrel_worker_busy()
    {
        int port = Ports.Free();
        await using var cluster = SampleCluster(port);
        var (holding, address) = await cluster.ForkListeningAsync();
        await holding.Ready.WaitAsync(TestCluster.Timeout);
        var idle = new List<Socket>();
        try
        {
            for (int i = 0; i < Held; i++)
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                idle.Add(socket);
                await socket.ConnectAsync(address.EndPoint).WaitAsync(TestCluster.Timeout);
            }
            await TestCluster.UntilAsync(() => cluster.Primary.Connections.Handed == Held, $"worker 1 to take the {Held} connections");
            var (other, _) = await cluster.ForkListeningAsync();
            await other.Ready.WaitAsync(TestCluster.Timeout);

            // Were connections Kestrel's busy units, worker 1 would be passed over; requests are, and it has none.
            using var http = new HttpClient { Timeout = TestCluster.Timeout };
            http.DefaultRequestHeaders.ConnectionClose = true;
            var served = new Dictionary<string, int>();
            for (int i = 0; i < 20; i++)
            {
                var pid = await http.GetStringAsync(new Uri($"http://127.0.0.1:{port}/pid"));
                served[pid] = served.GetValueOrDefault(pid) + 1;
            }
            Assert.Equal(2, served.Count);
            Assert.All(served.Values, count => Assert.True(count >= 5, string.Join(", ", served)));
        }
        finally
        {
            foreach (var socket in idle) socket.Dispose();
        }
    }

    private static TestCluster SampleCluster(int port, params string[] args) =>
        new(["--port", port.ToString(CultureInfo.InvariantCulture), .. args], SchedulingPolicy.LeastBusy, new ClusterSettings { Exec = TestCluster.SampleDll });
}
