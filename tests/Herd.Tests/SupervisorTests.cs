using System.Collections.Concurrent;
using System.Diagnostics;

namespace Herd.Tests;

/// <summary>Restarts with backoff, crash loops, zero-downtime reloads, scaling and graceful stops.</summary>
public sealed class SupervisorTests
{
    internal static readonly SupervisorOptions Quick = new()
    {
        Workers = 2, RestartDelay = TimeSpan.FromMilliseconds(50), MaxRestartDelay = TimeSpan.FromMilliseconds(400),
        ReadyTimeout = TimeSpan.FromSeconds(20), KillTimeout = TimeSpan.FromSeconds(5),
    };

    [Fact]
    public async Task A_killed_worker_is_replaced_after_its_backoff()
    {
        await using var cluster = new TestCluster(["serve"]);
        await using var supervisor = new Supervisor(cluster.Primary, Quick);
        await supervisor.StartAsync();
        var victim = supervisor.Workers.First();
        var restarting = new TaskCompletionSource<TimeSpan>(TaskCreationOptions.RunContinuationsAsynchronously);
        supervisor.Restarting += (worker, exit, delay) =>
        {
            if (worker == victim && exit.Signal == UnixSignal.SIGKILL) restarting.TrySetResult(delay);
        };
        var forked = new TaskCompletionSource<Worker>(TaskCreationOptions.RunContinuationsAsynchronously);
        cluster.Primary.Forked += w => forked.TrySetResult(w);

        victim.Kill(UnixSignal.SIGKILL);

        Assert.Equal(Quick.RestartDelay, await restarting.Task.WaitAsync(TestCluster.Timeout));
        var replacement = await forked.Task.WaitAsync(TestCluster.Timeout);
        await replacement.Ready.WaitAsync(TestCluster.Timeout);
        Assert.Equal(2, supervisor.Workers.Count);
        Assert.DoesNotContain(victim, supervisor.Workers);
        Assert.Equal(1, supervisor.Restarts);
    }

    [Fact]
    public async Task While_its_only_worker_is_replaced_the_port_stays_open_and_connections_wait()
    {
        await using var cluster = new TestCluster(["serve"]);
        await using var supervisor = new Supervisor(cluster.Primary, Quick with { Workers = 1, RestartDelay = TimeSpan.FromMilliseconds(500) });
        await supervisor.StartAsync();
        var victim = supervisor.Workers.Single();
        var address = await cluster.ListeningAsync(victim);

        victim.Kill(UnixSignal.SIGKILL);
        await victim.Exited.WaitAsync(TestCluster.Timeout);
        using var waiting = await Client.ConnectAsync(address.EndPoint); // no worker at all now: Node would refuse this

        int pid = await waiting.ReadPidAsync();
        Assert.NotEqual(victim.Process.Id, pid);
        Assert.Equal(supervisor.Workers.Single().Process.Id, pid);
        Assert.Equal(0, cluster.Primary.Connections.Refused);
    }

    [Fact]
    public async Task A_hung_worker_is_killed_and_replaced()
    {
        await using var cluster = new TestCluster(["serve"]);
        var options = Quick with { HeartbeatInterval = TimeSpan.FromMilliseconds(200), HeartbeatTimeout = TimeSpan.FromSeconds(2) };
        await using var supervisor = new Supervisor(cluster.Primary, options);
        await supervisor.StartAsync();
        var (hanging, healthy) = (supervisor.Workers.First(), supervisor.Workers.Last());
        var hung = new TaskCompletionSource<Worker>(TaskCreationOptions.RunContinuationsAsynchronously);
        supervisor.Hung += (worker, _) => hung.TrySetResult(worker);
        var replaced = new TaskCompletionSource<Worker>(TaskCreationOptions.RunContinuationsAsynchronously);
        cluster.Primary.Forked += w => replaced.TrySetResult(w);

        hanging.Send(TestCluster.Json("""{"cmd":"hang"}"""));

        Assert.Same(hanging, await hung.Task.WaitAsync(TestCluster.Timeout));
        Assert.Equal(UnixSignal.SIGKILL, (await hanging.Exited.WaitAsync(TestCluster.Timeout)).Signal);
        await (await replaced.Task.WaitAsync(TestCluster.Timeout)).Ready.WaitAsync(TestCluster.Timeout);
        Assert.False(healthy.IsDead); // the one that kept answering was left alone
        Assert.Equal(2, supervisor.Workers.Count);
    }

    [Fact]
    public async Task A_crash_loop_ends_errored_without_a_fork_bomb()
    {
        await using var cluster = new TestCluster(["exit", "1"]);
        int forks = 0;
        cluster.Primary.Forked += _ => Interlocked.Increment(ref forks);
        var errored = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        var options = Quick with { Workers = 1, MaxRestarts = 3, MinUptime = TimeSpan.FromSeconds(10) };
        await using var supervisor = new Supervisor(cluster.Primary, options);
        supervisor.Errored += reason => errored.TrySetResult(reason);

        var failed = await Assert.ThrowsAsync<WorkerNotReadyException>(() => supervisor.StartAsync());
        Assert.Equal(1, failed.Exit?.ExitCode);
        var reason = await errored.Task.WaitAsync(TestCluster.Timeout);

        Assert.Equal(SupervisorState.Errored, supervisor.State);
        Assert.Contains("exit code 1", reason, StringComparison.Ordinal);
        Assert.Equal(1 + options.MaxRestarts, Volatile.Read(ref forks));
        Assert.Empty(supervisor.Workers);
    }

    // Kestrel (samples/HelloCluster), through the primary's handle, or in reuse-port mode each new worker sharing its
    // slot's socket with the old one until that leaves.
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Reload_under_load_replaces_every_worker_and_fails_no_request(bool reusePort)
    {
        int port = Ports.Free();
        await using var cluster = new TestCluster(["--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture), .. reusePort ? ["--reuseport"] : Array.Empty<string>()],
            settings: new ClusterSettings { Exec = TestCluster.SampleDll });
        await using var supervisor = new Supervisor(cluster.Primary, Quick);
        await supervisor.StartAsync();
        var before = supervisor.Workers.Select(w => w.Process.Id).ToHashSet();

        using var http = new HttpClient { Timeout = TestCluster.Timeout };
        http.DefaultRequestHeaders.ConnectionClose = true;
        var uri = new Uri($"http://127.0.0.1:{port}/pid");
        var failures = new ConcurrentQueue<Exception>();
        var served = new ConcurrentDictionary<int, int>();
        using var stop = new CancellationTokenSource();
        async Task ClientAsync()
        {
            while (!stop.IsCancellationRequested)
            {
                try
                {
                    served.AddOrUpdate(int.Parse(await http.GetStringAsync(uri), System.Globalization.CultureInfo.InvariantCulture), 1, (_, n) => n + 1);
                }
                catch (HttpRequestException ex)
                {
                    failures.Enqueue(ex);
                }
            }
        }
        var clients = Enumerable.Range(0, 4).Select(_ => Task.Run(ClientAsync)).ToArray();
        await supervisor.ReloadAsync().WaitAsync(TestCluster.Timeout);
        var after = supervisor.Workers.Select(w => w.Process.Id).ToHashSet();
        await TestCluster.UntilAsync(() => after.All(served.ContainsKey), "the new workers to serve");
        stop.Cancel();
        await Task.WhenAll(clients).WaitAsync(TestCluster.Timeout);

        Assert.Empty(failures);
        Assert.Equal(2, after.Count);
        Assert.Empty(before.Intersect(after));
        Assert.True(served.Values.Sum() > 0);
    }

    [Fact]
    public async Task Max_requests_recycles_workers_without_failing_a_request()
    {
        int port = Ports.Free();
        await using var cluster = new TestCluster(["--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture)],
            settings: new ClusterSettings { Exec = TestCluster.SampleDll });
        var options = Quick with { MaxRequests = 100, MaxRequestsJitter = 20, HeartbeatInterval = TimeSpan.FromMilliseconds(100) };
        await using var supervisor = new Supervisor(cluster.Primary, options);
        var recycled = new ConcurrentQueue<string>();
        supervisor.Recycling += (_, reason) => recycled.Enqueue(reason);
        await supervisor.StartAsync();
        var first = supervisor.Workers.Select(w => w.Process.Id).ToHashSet();

        using var http = new HttpClient { Timeout = TestCluster.Timeout };
        http.DefaultRequestHeaders.ConnectionClose = true;
        var uri = new Uri($"http://127.0.0.1:{port}/pid");
        var failures = new ConcurrentQueue<Exception>();
        int sent = 0;
        var clock = Stopwatch.StartNew();
        await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
        {
            while (recycled.Count < 3 && clock.Elapsed < TestCluster.Timeout)
            {
                try
                {
                    await http.GetStringAsync(uri);
                }
                catch (HttpRequestException ex)
                {
                    failures.Enqueue(ex);
                }
                Interlocked.Increment(ref sent);
            }
        })));

        Assert.Empty(failures);
        Assert.True(recycled.Count >= 3, $"{recycled.Count} recycles after {sent} requests");
        Assert.All(recycled, reason => Assert.Contains("requests (limit 1", reason, StringComparison.Ordinal));
        Assert.NotEqual(first, supervisor.Workers.Select(w => w.Process.Id).ToHashSet());
    }

    [Fact]
    public async Task A_reload_whose_new_worker_never_gets_ready_keeps_the_old_one()
    {
        await using var cluster = new TestCluster(["serve"]);
        await using var supervisor = new Supervisor(cluster.Primary, Quick with { Workers = 1, ReadyTimeout = TimeSpan.FromSeconds(2) });
        await supervisor.StartAsync();
        var old = supervisor.Workers.Single();
        var address = await cluster.ListeningAsync(old);
        cluster.Primary.SetupPrimary(new ClusterSettings { Environment = new Dictionary<string, string?> { ["HERD_TEST_NEVER_READY"] = "1" } });

        await Assert.ThrowsAsync<ReloadFailedException>(() => supervisor.ReloadAsync());

        Assert.Equal([old], supervisor.Workers);
        Assert.False(old.IsDead);
        Assert.Equal(old.Process.Id, await Client.PidOfAsync(address.EndPoint));
    }

    [Fact]
    public async Task Scale_up_then_down()
    {
        await using var cluster = new TestCluster(["serve"]);
        await using var supervisor = new Supervisor(cluster.Primary, Quick with { Workers = 1 });
        await supervisor.StartAsync();
        var first = supervisor.Workers.Single();

        await supervisor.ScaleAsync(3).WaitAsync(TestCluster.Timeout);
        Assert.Equal(3, supervisor.Workers.Count);
        Assert.All(supervisor.Workers, w => Assert.True(w.Ready.IsCompletedSuccessfully));

        await supervisor.ScaleAsync(1).WaitAsync(TestCluster.Timeout);
        Assert.Equal([first], supervisor.Workers); // the newest go first
        Assert.Equal(0, supervisor.Restarts);
    }

    [Fact]
    public async Task A_drain_delay_keeps_serving_after_stop_begins()
    {
        await using var cluster = new TestCluster(["serve"]);
        var drain = TimeSpan.FromSeconds(1);
        await using var supervisor = new Supervisor(cluster.Primary, Quick with { Workers = 1, DrainDelay = drain });
        await supervisor.StartAsync();
        var worker = supervisor.Workers.Single();
        var address = await cluster.ListeningAsync(worker);

        var clock = Stopwatch.StartNew();
        var stopping = supervisor.StopAsync();
        await TestCluster.UntilAsync(() => supervisor.State == SupervisorState.Draining, "the drain");
        Assert.Equal(worker.Process.Id, await Client.PidOfAsync(address.EndPoint)); // still served while draining
        await stopping.WaitAsync(TestCluster.Timeout);

        Assert.True(clock.Elapsed >= drain, $"stopped after {clock.ElapsedMilliseconds} ms");
        Assert.Equal(SupervisorState.Stopped, supervisor.State);
        Assert.True(worker.IsDead);
    }

    [Fact]
    public async Task Stop_kills_a_worker_that_outlasts_the_kill_timeout()
    {
        await using var cluster = new TestCluster(["serve"]);
        var killTimeout = TimeSpan.FromMilliseconds(500);
        await using var supervisor = new Supervisor(cluster.Primary, Quick with { Workers = 1, KillTimeout = killTimeout });
        await supervisor.StartAsync();
        var worker = supervisor.Workers.Single();
        using var client = await Client.ConnectAsync((await cluster.ListeningAsync(worker)).EndPoint);
        await client.ReadPidAsync(); // an open connection: the graceful disconnect cannot finish

        var clock = Stopwatch.StartNew();
        await supervisor.StopAsync().WaitAsync(TestCluster.Timeout);

        Assert.Equal(UnixSignal.SIGKILL, (await worker.Exited).Signal);
        Assert.True(clock.Elapsed >= killTimeout, $"killed after {clock.ElapsedMilliseconds} ms");
        Assert.Equal(SupervisorState.Stopped, supervisor.State);
    }

    // Issue 10 items 1 and 2: a reload whose new worker crashes leaves the cluster as it was, and says how it died.
    [Fact]
    public async Task A_reload_whose_new_worker_crashes_keeps_the_old_one_and_does_not_restart_the_new_one()
    {
        await using var cluster = new TestCluster(["serve"]);
        await using var supervisor = new Supervisor(cluster.Primary, Quick with { Workers = 1 });
        await supervisor.StartAsync();
        var old = supervisor.Workers.Single();
        var address = await cluster.ListeningAsync(old);
        int forks = 0;
        cluster.Primary.Forked += _ => Interlocked.Increment(ref forks);
        int restarts = 0;
        supervisor.Restarting += (_, _, _) => Interlocked.Increment(ref restarts);
        cluster.Primary.SetupPrimary(new ClusterSettings { Args = ["exit", "3"] });

        var clock = Stopwatch.StartNew();
        var failure = await Assert.ThrowsAsync<ReloadFailedException>(() => supervisor.ReloadAsync()).WaitAsync(TestCluster.Timeout);

        Assert.True(clock.Elapsed < Quick.ReadyTimeout, $"failed after {clock.Elapsed}, not when the new worker died");
        Assert.Contains("exit code 3", failure.Message, StringComparison.Ordinal);
        // A restart would come within the restart delay; ten of them pass with nothing forked.
        await Task.Delay(Quick.RestartDelay * 10);
        Assert.Equal(1, Volatile.Read(ref forks));
        Assert.Equal(0, Volatile.Read(ref restarts));
        Assert.Equal([old], supervisor.Workers);
        Assert.Equal(SupervisorState.Running, supervisor.State);
        Assert.Equal(old.Process.Id, await Client.PidOfAsync(address.EndPoint));
    }

    // Issue 10 item 3: overlapping reloads, restarts, kills and scales never leave two workers in a slot.
    [Fact]
    public async Task Two_reloads_at_once_leave_one_worker_per_slot()
    {
        await using var cluster = new TestCluster(["serve"]);
        await using var supervisor = new Supervisor(cluster.Primary, Quick);
        await supervisor.StartAsync();

        await Task.WhenAll(supervisor.ReloadAsync(), supervisor.ReloadAsync()).WaitAsync(TestCluster.Timeout);

        Assert.Equal([0, 1], supervisor.Workers.Select(w => w.Slot).Order());
        await TestCluster.UntilAsync(() => cluster.Primary.Workers.Count == 2, "the old workers to leave");
    }

    [Fact]
    public async Task A_restart_or_a_kill_during_a_reload_leaves_one_worker_per_slot()
    {
        await using var cluster = new TestCluster(["serve"]);
        await using var supervisor = new Supervisor(cluster.Primary, Quick);
        await supervisor.StartAsync();
        var (first, second) = (supervisor.Workers.First(), supervisor.Workers.Last());

        var reload = supervisor.ReloadAsync();
        var restart = supervisor.RestartAsync(second);
        second.Kill(UnixSignal.SIGKILL);
        await reload.WaitAsync(TestCluster.Timeout);
        try
        {
            await restart.WaitAsync(TestCluster.Timeout);
        }
        catch (InvalidOperationException)
        {
            // refused: its worker was being replaced, or gone, when its turn came
        }
        await TestCluster.UntilAsync(() => supervisor.Workers.Count == 2 && supervisor.Workers.All(w => w.Ready.IsCompleted), "two ready workers");

        Assert.Equal([0, 1], supervisor.Workers.Select(w => w.Slot).Order());
        Assert.DoesNotContain(first, supervisor.Workers);
        await TestCluster.UntilAsync(() => cluster.Primary.Workers.Count == 2, "the old workers to leave");
    }

    [Fact]
    public async Task A_scale_during_a_restarts_backoff_counts_the_slot_waiting_for_it()
    {
        await using var cluster = new TestCluster(["serve"]);
        await using var supervisor = new Supervisor(cluster.Primary, Quick with { Workers = 3, RestartDelay = TimeSpan.FromSeconds(1), MaxRestartDelay = TimeSpan.FromSeconds(1) });
        await supervisor.StartAsync();
        var victim = supervisor.Workers.Single(w => w.Slot == 1);
        var restarting = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        supervisor.Restarting += (_, _, _) => restarting.TrySetResult();

        victim.Kill(UnixSignal.SIGKILL);
        await restarting.Task.WaitAsync(TestCluster.Timeout);
        await supervisor.ScaleAsync(3).WaitAsync(TestCluster.Timeout); // three slots already: nothing to do
        await supervisor.ScaleByAsync(-1).WaitAsync(TestCluster.Timeout); // the highest slot goes, not the empty one
        await TestCluster.UntilAsync(() => supervisor.Workers.Count == 2 && supervisor.Workers.All(w => w.Ready.IsCompleted), "two ready workers");

        Assert.Equal([0, 1], supervisor.Workers.Select(w => w.Slot).Order());
    }

    // Issue 10 item 4.
    [Fact]
    public async Task Scaling_past_the_maximum_is_refused_and_changes_nothing()
    {
        await using var cluster = new TestCluster(["serve"]);
        await using var supervisor = new Supervisor(cluster.Primary, Quick);
        await supervisor.StartAsync();
        var before = supervisor.Workers.ToHashSet();

        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => supervisor.ScaleByAsync(int.MaxValue)).WaitAsync(TestCluster.Timeout);

        Assert.Equal(before, supervisor.Workers.ToHashSet());
        Assert.All(before, w => Assert.False(w.IsDead));
    }

    // Issue 10 item 5: stop pre-empts a reload, and a cancelled stop does not leave the supervisor stuck.
    [Fact]
    public async Task Stop_pre_empts_a_reload_waiting_for_a_worker_that_never_gets_ready()
    {
        await using var cluster = new TestCluster(["serve"]);
        await using var supervisor = new Supervisor(cluster.Primary, Quick with { Workers = 1, ReadyTimeout = TimeSpan.FromSeconds(25), KillTimeout = TimeSpan.FromSeconds(2) });
        await supervisor.StartAsync();
        var old = supervisor.Workers.Single();
        var forked = new TaskCompletionSource<Worker>(TaskCreationOptions.RunContinuationsAsynchronously);
        cluster.Primary.Forked += w => forked.TrySetResult(w);
        cluster.Primary.SetupPrimary(new ClusterSettings { Environment = new Dictionary<string, string?> { ["HERD_TEST_NEVER_READY"] = "1" } });
        var reload = supervisor.ReloadAsync();
        var fresh = await forked.Task.WaitAsync(TestCluster.Timeout);
        await cluster.ListeningAsync(fresh);

        var clock = Stopwatch.StartNew();
        await supervisor.StopAsync().WaitAsync(TestCluster.Timeout);

        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"stopped after {clock.Elapsed}");
        await Assert.ThrowsAnyAsync<Exception>(() => reload).WaitAsync(TestCluster.Timeout);
        Assert.True(old.IsDead);
        Assert.True(fresh.IsDead);
        Assert.Equal(SupervisorState.Stopped, supervisor.State);
    }

    [Fact]
    public async Task A_stop_cancelled_during_its_drain_still_stops_and_a_later_stop_waits_for_it()
    {
        await using var cluster = new TestCluster(["serve"]);
        await using var supervisor = new Supervisor(cluster.Primary, Quick with { Workers = 1, DrainDelay = TimeSpan.FromSeconds(1) });
        await supervisor.StartAsync();
        var worker = supervisor.Workers.Single();

        using var impatient = new CancellationTokenSource(TimeSpan.FromMilliseconds(100));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => supervisor.StopAsync(impatient.Token));
        await supervisor.StopAsync().WaitAsync(TestCluster.Timeout);

        Assert.True(worker.IsDead);
        Assert.Equal(SupervisorState.Stopped, supervisor.State);
    }

    // Issue 10 item 7: backoff and crash-loop counting are per slot.
    [Fact]
    public async Task Each_slot_has_its_own_backoff()
    {
        await using var cluster = new TestCluster(["serve"]);
        var options = Quick with { MinUptime = TimeSpan.FromSeconds(30), MaxRestartDelay = TimeSpan.FromSeconds(2) };
        await using var supervisor = new Supervisor(cluster.Primary, options);
        await supervisor.StartAsync();
        var delays = System.Threading.Channels.Channel.CreateUnbounded<(int Slot, TimeSpan Delay)>();
        supervisor.Restarting += (worker, _, delay) => delays.Writer.TryWrite((worker.Slot, delay));

        for (int i = 0; i < 3; i++)
        {
            var victim = supervisor.Workers.Single(w => w.Slot == 0);
            await victim.Ready.WaitAsync(TestCluster.Timeout);
            victim.Kill(UnixSignal.SIGKILL);
            await delays.Reader.ReadAsync().AsTask().WaitAsync(TestCluster.Timeout);
            await TestCluster.UntilAsync(() => supervisor.Workers.Any(w => w.Slot == 0 && w != victim), "slot 0's replacement");
        }
        supervisor.Workers.Single(w => w.Slot == 1).Kill(UnixSignal.SIGKILL);

        Assert.Equal((1, options.RestartDelay), await delays.Reader.ReadAsync().AsTask().WaitAsync(TestCluster.Timeout));
    }

    [Fact]
    public async Task A_crash_loop_in_one_slot_leaves_the_healthy_workers_serving()
    {
        await using var cluster = new TestCluster(["serve"]);
        await using var supervisor = new Supervisor(cluster.Primary, Quick with { MinUptime = TimeSpan.FromSeconds(30), MaxRestarts = 2 });
        await supervisor.StartAsync();
        var healthy = supervisor.Workers.Single(w => w.Slot == 1);
        var address = await cluster.ListeningAsync(healthy);
        var errored = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        supervisor.Errored += _ => errored.TrySetResult();

        var killed = new HashSet<Worker>();
        for (int kills = 0; kills <= 2; kills++)
        {
            Worker? victim = null;
            await TestCluster.UntilAsync(() => (victim = supervisor.Workers.FirstOrDefault(w => w.Slot == 0 && w.Ready.IsCompleted && !killed.Contains(w))) is not null, "slot 0's worker");
            killed.Add(victim!);
            victim!.Kill(UnixSignal.SIGKILL);
            await victim.Exited.WaitAsync(TestCluster.Timeout);
        }
        await TestCluster.UntilAsync(() => supervisor.Slots.Any(s => s.Index == 0 && s.State == SlotState.Errored), "slot 0 errored");
        // A restart would come within the (largest) restart delay; none does.
        await Task.Delay(Quick.MaxRestartDelay * 3);

        Assert.Equal([healthy], supervisor.Workers);
        Assert.False(errored.Task.IsCompleted);
        Assert.Equal(SupervisorState.Running, supervisor.State);
        Assert.Equal(healthy.Process.Id, await Client.PidOfAsync(address.EndPoint));
    }
}
