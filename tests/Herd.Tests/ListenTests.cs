using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Herd.Tests;

/// <summary>Node's listening-port, net-listen-exclusive-random-ports, eaddrinuse, dgram-1 and pipe tests.</summary>
public sealed class ListenTests
{
    [Fact]
    public async Task Port_zero_is_one_port_shared_by_all_workers()
    {
        await using var cluster = new TestCluster(["serve"]);
        var ports = new List<int>();
        for (int i = 0; i < 3; i++) ports.Add((await cluster.ForkListeningAsync()).Address.Port);
        Assert.True(ports[0] > 0);
        Assert.All(ports, port => Assert.Equal(ports[0], port));
    }

    // Under SCHED_NONE each worker accepts on the shared socket itself, on a thread that waits for it only while the app
    // waits in AcceptAsync. A worker that is not accepting must take nothing (else its connections would hang), and
    // one whose server closes must stop taking connections at once, leaving them all to the others.
    [Fact]
    public async Task Shared_handle_connections_go_only_to_workers_that_accept()
    {
        await using var cluster = new TestCluster(["serve"], SchedulingPolicy.None);
        var (lazy, address) = await cluster.ForkListeningAsync(new Dictionary<string, string?> { ["HERD_TEST_LAZY"] = "1" });
        var (busy, _) = await cluster.ForkListeningAsync();
        Assert.Equal(20, (await TestCluster.SharesAsync([lazy, busy], address, 20))[busy.Process.Id]);

        lazy.Send(TestCluster.Json("""{"cmd":"accept"}"""));
        busy.Send(TestCluster.Json("""{"cmd":"close"}"""));
        await busy.Exited.WaitAsync(TestCluster.Timeout); // it leaves once its server is closed
        Assert.Equal(20, (await TestCluster.SharesAsync([lazy, busy], address, 20))[lazy.Process.Id]);
    }

    [Fact]
    public async Task Listening_on_ipv6_any_serves_ipv4_and_ipv6_clients()
    {
        await using var cluster = new TestCluster(["serve", "--host", "::"]);
        var (worker, address) = await cluster.ForkListeningAsync();
        Assert.Equal(AddressType.IPv6, address.AddressType);
        Assert.Equal(worker.Process.Id, await Client.PidOfAsync(new IPEndPoint(IPAddress.Loopback, address.Port)));
        Assert.Equal(worker.Process.Id, await Client.PidOfAsync(new IPEndPoint(IPAddress.IPv6Loopback, address.Port)));
    }

    [Fact]
    public async Task Exclusive_port_zero_gives_each_worker_its_own_port()
    {
        await using var cluster = new TestCluster(["serve", "--exclusive"]);
        var addresses = new List<ListeningAddress>();
        for (int i = 0; i < 3; i++) addresses.Add((await cluster.ForkListeningAsync()).Address);
        Assert.Equal(3, addresses.Select(a => a.Port).Distinct().Count());
        foreach (var address in addresses) await Client.PidOfAsync(address.EndPoint);
    }

    [Theory]
    [InlineData(SchedulingPolicy.RoundRobin, false)]
    [InlineData(SchedulingPolicy.None, false)]
    [InlineData(SchedulingPolicy.RoundRobin, true)]
    public async Task Address_in_use_reaches_the_worker_and_the_primary_carries_on(SchedulingPolicy policy, bool reusePort)
    {
        using var squatter = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        squatter.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        squatter.Listen();
        int taken = ((IPEndPoint)squatter.LocalEndPoint!).Port;
        await using var cluster = new TestCluster(["serve", "--port", taken.ToString(System.Globalization.CultureInfo.InvariantCulture), .. reusePort ? ["--reuseport"] : Array.Empty<string>()], policy);

        var failing = cluster.Primary.Fork();
        var report = await cluster.NextMessageAsync(failing);
        Assert.Equal(nameof(SocketError.AddressAlreadyInUse), report.GetProperty("error").GetString());
        Assert.Equal(3, (await failing.Exited.WaitAsync(TestCluster.Timeout)).ExitCode);

        squatter.Dispose(); // the key was forgotten: the next worker binds it afresh
        var (worker, address) = await cluster.ForkListeningAsync();
        Assert.Equal(taken, address.Port);
        Assert.Equal(worker.Process.Id, await Client.PidOfAsync(address.EndPoint));
    }

    [Theory]
    [InlineData(SchedulingPolicy.RoundRobin)]
    [InlineData(SchedulingPolicy.None)]
    public async Task A_unix_socket_path_is_served_by_every_worker(SchedulingPolicy policy)
    {
        var directory = Directory.CreateTempSubdirectory("herd-test-");
        try
        {
            var path = Path.Combine(directory.FullName, "server.sock");
            await using var cluster = new TestCluster(["serve", "--unix", path], policy);
            var (first, address) = await cluster.ForkListeningAsync();
            var (second, _) = await cluster.ForkListeningAsync();
            Assert.Equal(AddressType.Unix, address.AddressType);
            Assert.Equal(path, address.Address);
            var pids = new HashSet<int>();
            for (int i = 0; i < 40 && pids.Count < 2; i++) pids.Add(await Client.PidOfAsync(new UnixDomainSocketEndPoint(path)));
            Assert.Subset(new HashSet<int> { first.Process.Id, second.Process.Id }, pids);
            if (policy == SchedulingPolicy.RoundRobin) Assert.Equal(2, pids.Count);
        }
        finally
        {
            directory.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task Udp_is_one_socket_shared_by_the_workers()
    {
        await using var cluster = new TestCluster(["udp"]);
        var (first, address) = await cluster.ForkListeningAsync();
        var (second, other) = await cluster.ForkListeningAsync();
        Assert.Equal(AddressType.Udp4, address.AddressType);
        Assert.Equal(address.Port, other.Port);

        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        client.Connect(address.EndPoint);
        var buffer = new byte[64];
        for (int i = 0; i < 20; i++)
        {
            await client.SendAsync(Encoding.ASCII.GetBytes($"ping {i}"));
            int n = await client.ReceiveAsync(buffer).WaitAsync(TestCluster.Timeout);
            int pid = int.Parse(Encoding.ASCII.GetString(buffer, 0, n), System.Globalization.CultureInfo.InvariantCulture);
            Assert.Contains(pid, new[] { first.Process.Id, second.Process.Id });
        }
    }

    [Fact]
    public async Task Outside_a_cluster_listen_binds_directly()
    {
        await using var listener = await ClusterSocket.ListenAsync(new IPEndPoint(IPAddress.Loopback, 0));
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        var connecting = client.ConnectAsync(listener.LocalEndPoint);
        using var accepted = await listener.AcceptAsync().AsTask().WaitAsync(TestCluster.Timeout);
        await connecting;
        Assert.Equal(client.LocalEndPoint, accepted.RemoteEndPoint);
    }

    [Fact]
    public async Task Bad_options_are_refused_with_a_clear_error()
    {
        var error = await Assert.ThrowsAsync<ArgumentOutOfRangeException>(async () =>
            await ClusterSocket.ListenAsync(new IPEndPoint(IPAddress.Loopback, 0), new ClusterListenOptions { Backlog = 0 }));
        Assert.Equal("Backlog", error.ParamName);
        await Assert.ThrowsAsync<NotSupportedException>(async () =>
            await ClusterSocket.ListenAsync(new DnsEndPoint("localhost", 80)));
    }
}
