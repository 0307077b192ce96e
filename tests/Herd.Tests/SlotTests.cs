namespace Herd.Tests;

/// <summary>Worker slots (PM2's NODE_APP_INSTANCE): 0 to N-1, kept by replacements, retired from the top.</summary>
public sealed class SlotTests
{
    [Fact]
    public async Task Fork_takes_the_lowest_slot_no_running_worker_holds()
    {
        await using var cluster = new TestCluster(["serve"]);
        var (workers, _) = await cluster.ForkListeningAsync(3);
        Assert.Equal([0, 1, 2], workers.Select(w => w.Slot));

        workers[1].Kill(UnixSignal.SIGKILL);
        await workers[1].Exited.WaitAsync(TestCluster.Timeout);
        var (again, _) = await cluster.ForkListeningAsync();

        Assert.Equal(1, again.Slot);
        again.Send(TestCluster.Json("""{"cmd":"env"}"""));
        var env = await cluster.NextMessageAsync(again);
        Assert.Equal(1, env.GetProperty("slot").GetInt32());         // Cluster.Worker.Slot
        Assert.Equal("1", env.GetProperty("instance").GetString()); // HERD_APP_INSTANCE, for code that knows nothing of Herd
    }

    [Fact]
    public async Task A_supervisor_keeps_slots_through_restarts_and_reloads_and_scales_from_the_top()
    {
        await using var cluster = new TestCluster(["serve"]);
        await using var supervisor = new Supervisor(cluster.Primary, SupervisorTests.Quick with { Workers = 3 });
        await supervisor.StartAsync();
        int[] Slots() => [.. supervisor.Workers.Select(w => w.Slot).Order()];
        Assert.Equal([0, 1, 2], Slots());

        var victim = supervisor.Workers.Single(w => w.Slot == 1);
        var replaced = new TaskCompletionSource<Worker>(TaskCreationOptions.RunContinuationsAsynchronously);
        cluster.Primary.Forked += w => replaced.TrySetResult(w);
        victim.Kill(UnixSignal.SIGKILL);
        var replacement = await replaced.Task.WaitAsync(TestCluster.Timeout);
        await replacement.Ready.WaitAsync(TestCluster.Timeout);
        Assert.Equal(1, replacement.Slot);
        Assert.Equal([0, 1, 2], Slots());

        var before = supervisor.Workers.ToDictionary(w => w.Slot);
        await supervisor.ReloadAsync().WaitAsync(TestCluster.Timeout);
        Assert.Equal([0, 1, 2], Slots());
        Assert.All(supervisor.Workers, w => Assert.NotSame(before[w.Slot], w));

        await supervisor.ScaleAsync(1).WaitAsync(TestCluster.Timeout);
        Assert.Equal([0], Slots());
        await supervisor.ScaleAsync(3).WaitAsync(TestCluster.Timeout);
        Assert.Equal([0, 1, 2], Slots());
    }
}
