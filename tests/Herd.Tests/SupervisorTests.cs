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

        await Assert.ThrowsAsync<TimeoutException>(() => supervisor.StartAsync());
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
        while (!after.All(served.ContainsKey)) await Task.Delay(10).WaitAsync(TestCluster.Timeout); // the new workers serve
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
        Assert.Equal(SupervisorState.Draining, supervisor.State);
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
}
