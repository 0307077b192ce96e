using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Herd.Tests;

/// <summary>Reuse-port mode: the primary holds one SO_REUSEPORT socket per worker slot and hands each worker its slot's.</summary>
public sealed class ReusePortTests
{
    private static SupervisorOptions Quick => SupervisorTests.Quick;

    [Fact]
    public async Task The_primary_holds_one_socket_per_slot_and_the_kernel_spreads_connections_over_them()
    {
        await using var cluster = new TestCluster(["serve", "--reuseport"]);
        var (workers, address) = await cluster.ForkListeningAsync(2);

        var sockets = ListeningSockets(address.Port);
        Assert.Equal(2, sockets.Count);
        Assert.Subset(SocketsOf(Environment.ProcessId), sockets); // this test is the primary
        var held = workers.Select(w => SocketsOf(w.Process.Id).Intersect(sockets).Single()).ToList(); // one each...
        Assert.NotEqual(held[0], held[1]);                                                          // ...its slot's

        var pids = new HashSet<int>();
        for (int i = 0; i < 200 && pids.Count < 2; i++) pids.Add(await Client.PidOfAsync(address.EndPoint));
        Assert.Equal(workers.Select(w => w.Process.Id).ToHashSet(), pids);
    }

    [Fact]
    public async Task Port_zero_is_one_port_for_every_slot()
    {
        await using var cluster = new TestCluster(["serve", "--reuseport"]);
        var ports = new List<int>();
        for (int i = 0; i < 3; i++) ports.Add((await cluster.ForkListeningAsync()).Address.Port);
        Assert.True(ports[0] > 0);
        Assert.All(ports, port => Assert.Equal(ports[0], port));
        Assert.Equal(3, ListeningSockets(ports[0]).Count);
    }

    [Fact]
    public async Task Connections_queued_for_a_killed_worker_wait_for_its_replacement()
    {
        // A fixed port, so that the same test runs against workers that bind their own sockets (they reset these clients).
        int port = Ports.Free();
        await using var cluster = new TestCluster(["serve", "--reuseport", "--port", port.ToString(CultureInfo.InvariantCulture)]);
        await using var supervisor = new Supervisor(cluster.Primary, Quick);
        await supervisor.StartAsync();
        var (victim, other) = (supervisor.Workers.First(), supervisor.Workers.Last());
        var replaced = new TaskCompletionSource<Worker>(TaskCreationOptions.RunContinuationsAsynchronously);
        cluster.Primary.Forked += w => replaced.TrySetResult(w);

        // Stopped, the victim accepts nothing: the kernel queues in its slot's socket the connections it hashes there.
        Assert.True(Native.Fd.Kill(victim.Process.Id, (int)UnixSignal.SIGSTOP));
        await TestCluster.UntilAsync(() => LifecycleTests.StateOf(victim.Process.Id) == 'T', "the victim to stop");
        const int Clients = 40;
        var clients = new List<Client>();
        try
        {
            for (int i = 0; i < Clients; i++) clients.Add(await Client.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port)));
            victim.Kill(UnixSignal.SIGKILL);
            var replacement = await replaced.Task.WaitAsync(TestCluster.Timeout);

            var servedBy = new Dictionary<int, int>();
            int reset = 0;
            foreach (var client in clients)
            {
                try
                {
                    if (await client.ReadLineAsync() is { } line)
                    {
                        int pid = int.Parse(line, CultureInfo.InvariantCulture);
                        servedBy[pid] = servedBy.GetValueOrDefault(pid) + 1;
                    }
                    else
                    {
                        reset++; // closed unserved
                    }
                }
                catch (IOException)
                {
                    reset++;
                }
            }
            Assert.Equal(0, reset);
            Assert.Equal(victim.Slot, replacement.Slot);
            Assert.Equal(Clients, servedBy.GetValueOrDefault(other.Process.Id) + servedBy.GetValueOrDefault(replacement.Process.Id));
            Assert.True(servedBy.GetValueOrDefault(replacement.Process.Id) > 0, "no connection waited in the victim's slot");
        }
        finally
        {
            foreach (var client in clients) client.Dispose();
        }
    }

    [Fact]
    public async Task A_slot_closes_when_scaled_away_and_every_slot_when_the_supervisor_stops()
    {
        await using var cluster = new TestCluster(["serve", "--reuseport"]);
        await using var supervisor = new Supervisor(cluster.Primary, Quick);
        await supervisor.StartAsync();
        int port = (await cluster.ListeningAsync(supervisor.Workers.First())).Port;
        Assert.Equal(2, ListeningSockets(port).Count);

        await supervisor.ScaleAsync(1).WaitAsync(TestCluster.Timeout);
        Assert.Single(ListeningSockets(port));
        var kept = supervisor.Workers.Single();
        Assert.Equal(kept.Process.Id, await Client.PidOfAsync(new IPEndPoint(IPAddress.Loopback, port)));

        await supervisor.StopAsync().WaitAsync(TestCluster.Timeout);
        Assert.Empty(ListeningSockets(port));
    }

    [Fact]
    public async Task Without_a_supervisor_a_slot_closes_with_its_last_worker()
    {
        await using var cluster = new TestCluster(["serve", "--reuseport"]);
        var (workers, address) = await cluster.ForkListeningAsync(2);
        workers[1].Kill(UnixSignal.SIGKILL);
        await workers[1].Exited.WaitAsync(TestCluster.Timeout);

        Assert.Single(ListeningSockets(address.Port)); // nobody is coming for slot 1: its socket would only hold connections back
        Assert.Equal(workers[0].Process.Id, await Client.PidOfAsync(address.EndPoint));
    }

    [Fact]
    public async Task Udp_in_reuse_port_mode_is_a_socket_per_slot_on_one_port()
    {
        await using var cluster = new TestCluster(["udp", "--reuseport"]);
        var (first, address) = await cluster.ForkListeningAsync();
        var (second, other) = await cluster.ForkListeningAsync();
        Assert.Equal(address.Port, other.Port);

        var pids = new HashSet<int>();
        var buffer = new byte[64];
        for (int i = 0; i < 200 && pids.Count < 2; i++)
        {
            using var client = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp); // a new source port each time
            client.Connect(address.EndPoint);
            await client.SendAsync(Encoding.ASCII.GetBytes("ping"));
            int n = await client.ReceiveAsync(buffer).WaitAsync(TestCluster.Timeout);
            pids.Add(int.Parse(Encoding.ASCII.GetString(buffer, 0, n), CultureInfo.InvariantCulture));
        }
        Assert.Equal(new HashSet<int> { first.Process.Id, second.Process.Id }, pids);
    }

    // The inodes of the TCP sockets listening on this port, on any IPv4 address (/proc/net/tcp: state 0A is LISTEN).
    private static HashSet<string> ListeningSockets(int port) =>
        [.. File.ReadLines("/proc/net/tcp").Skip(1)
            .Select(line => line.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Where(f => f[3] == "0A" && int.Parse(f[1].Split(':')[1], NumberStyles.HexNumber, CultureInfo.InvariantCulture) == port)
            .Select(f => f[9])];

    // The inodes of the sockets a process holds open.
    private static HashSet<string> SocketsOf(int pid)
    {
        var inodes = new HashSet<string>();
        foreach (var fd in Directory.GetFiles($"/proc/{pid}/fd"))
        {
            try
            {
                if (new FileInfo(fd).LinkTarget is { } target && target.StartsWith("socket:[", StringComparison.Ordinal)) inodes.Add(target[8..^1]);
            }
            catch (IOException)
            {
                // closed while we looked
            }
        }
        return inodes;
    }
}
