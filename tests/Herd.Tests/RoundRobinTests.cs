namespace Herd.Tests;

/// <summary>The primary's round robin: fair shares, refusals rerouted, nothing lost to a dying worker.</summary>
public sealed class RoundRobinTests
{
    [Fact]
    public async Task Sequential_connections_are_shared_equally()
    {
        await using var cluster = new TestCluster(["serve"]);
        var workers = new List<Worker>();
        ListeningAddress? address = null;
        for (int i = 0; i < 3; i++)
        {
            var (worker, listening) = await cluster.ForkListeningAsync();
            workers.Add(worker);
            address = listening;
        }
        var counts = workers.ToDictionary(w => w.Process.Id, _ => 0);
        for (int i = 0; i < 60; i++) counts[await Client.PidOfAsync(address!.EndPoint)]++;
        Assert.True(counts.Values.Max() - counts.Values.Min() <= 1, string.Join(", ", counts));
    }

    [Fact]
    public Task A_refused_connection_is_served_by_another_worker() =>
        ConnectionsQueuedAtAWorkerReachTheOther(lazy => lazy.Send(TestCluster.Json("""{"cmd":"close"}""")));

    [Fact]
    public Task Connections_queued_for_a_killed_worker_are_served_by_the_others() =>
        ConnectionsQueuedAtAWorkerReachTheOther(lazy => lazy.Kill(UnixSignal.SIGKILL));

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
