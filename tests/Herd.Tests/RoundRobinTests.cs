using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Herd.Ipc;
using Herd.Net;
using Herd.Primary;

namespace Herd.Tests;

/// <summary>The primary's round robin: fair shares, refusals rerouted, nothing lost to a dying worker.</summary>
public sealed class RoundRobinTests
{
    [Fact]
    public async Task Sequential_connections_are_shared_equally()
    {
        await using var cluster = new TestCluster(["serve"]);
        var (workers, address) = await cluster.ForkListeningAsync(3);
        var counts = await TestCluster.SharesAsync(workers, address, 60);
        Assert.True(counts.Values.Max() - counts.Values.Min() <= 1, string.Join(", ", counts));
    }

    [Fact]
    public Task A_refused_connection_is_served_by_another_worker() =>
        ConnectionsQueuedAtAWorkerReachTheOther(lazy => lazy.Send(TestCluster.Json("""{"cmd":"close"}""")));

    [Fact]
    public Task Connections_queued_for_a_killed_worker_are_served_by_the_others() =>
        ConnectionsQueuedAtAWorkerReachTheOther(lazy => lazy.Kill(UnixSignal.SIGKILL));

    // The accept thread hands a connection to the last worker and finds its channel gone (the worker died; the primary
    // has yet to hear), so it closes the listener itself. It used to keep a reference on the listener's handle, which
    // closing waits for: it stopped there for good, holding the handle's lock, and the primary's lock went next.
    [Fact]
    public async Task A_handoff_that_finds_the_last_worker_gone_closes_the_listener()
    {
        var (primaryEnd, workerEnd) = Native.Fd.SeqPacketPair();
        await using var primary = new ClusterPrimary();
        using var channel = new WorkerChannel(primaryEnd);
        using var process = new WorkerProcess(Environment.ProcessId, Native.Pidfd.Open(Environment.ProcessId), null, null); // a stand-in: only the channel matters
        var worker = new Worker(primary, 1, 0, process, channel);
        worker.SetReady(); // as its Ready message would: only a ready worker is handed connections
        var retired = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var handle = new RoundRobinHandle("test", 1, AddressKey.Of(new IPEndPoint(IPAddress.Loopback, 0), udp: false), 16, null, new ConnectionCounters(), SchedulingPolicy.RoundRobin, new StickyRouter(), _ => retired.TrySetResult());
        try
        {
            var reply = new InternalMessage();
            handle.Add(worker, reply);
            workerEnd.Dispose(); // the worker is gone

            using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            await client.ConnectAsync(new IPEndPoint(IPAddress.Loopback, reply.Port)).WaitAsync(TestCluster.Timeout);
            // No worker is left to take it: the connection is closed, not held.
            Assert.Equal(0, await client.ReceiveAsync(new byte[1], SocketFlags.None).WaitAsync(TestCluster.Timeout));
            // The primary hears that the worker is gone, and the handle, closed and holding nothing, retires.
            await Task.Run(() => handle.WorkerGone(worker)).WaitAsync(TestCluster.Timeout);
            Assert.True(handle.IsClosed);
            await retired.Task.WaitAsync(TestCluster.Timeout);
        }
        finally
        {
            workerEnd.Dispose();
            // Bounded, and silent: a stuck handle must neither hang the run nor hide the failure above.
            await Task.WhenAny(Task.Run(handle.Close), Task.Delay(TestCluster.Timeout));
        }
    }

    // The lazy worker listens but accepts nothing, so its share of the connections waits in its queue, unanswered,
    // until `leave` makes it refuse them or die: then every one of them must reach the other worker.
    private static async Task ConnectionsQueuedAtAWorkerReachTheOther(Action<Worker> leave)
    {
        await using var cluster = new TestCluster(["serve"]);
        var (lazy, address) = await cluster.ForkListeningAsync(new Dictionary<string, string?> { ["HERD_TEST_LAZY"] = "1" });
        var (busy, _) = await cluster.ForkListeningAsync();
        var clients = new List<Client>();
        try
        {
            for (int i = 0; i < 6; i++) clients.Add(await Client.ConnectAsync(address.EndPoint));
            var pids = clients.Select(c => c.ReadPidAsync()).ToList();
            while (pids.Count(t => t.IsCompleted) < 3) await Task.WhenAny(pids.Where(t => !t.IsCompleted)).WaitAsync(TestCluster.Timeout);
            Assert.All(pids.Where(t => t.IsCompleted), t => Assert.Equal(busy.Process.Id, t.Result));
            Assert.Equal(3, pids.Count(t => !t.IsCompleted)); // held by the lazy worker

            leave(lazy);

            var served = await Task.WhenAll(pids).WaitAsync(TestCluster.Timeout);
            Assert.All(served, pid => Assert.Equal(busy.Process.Id, pid));
        }
        finally
        {
            foreach (var client in clients) client.Dispose();
        }
    }
}
