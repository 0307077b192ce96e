using Xunit.Abstractions;
using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net.Sockets;

namespace Herd.Tests;

/// <summary>Node's test-cluster-basic, worker-exit, worker-kill-signal, worker-disconnect, wait-server-close, primary-kill.</summary>
public sealed class LifecycleTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Events_fire_in_order_with_the_states_node_reports()
    {
        await using var cluster = new TestCluster(["serve"]);
        var events = new ConcurrentQueue<string>();
        var exited = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var primary = cluster.Primary;
        primary.Setup += _ => events.Enqueue("setup");
        primary.Forked += w =>
        {
            events.Enqueue($"fork:{w.State}");
            w.Online += _ => events.Enqueue("worker.online");
            w.Exit += (_, _) => events.Enqueue("worker.exit");
        };
        primary.Online += w => events.Enqueue($"online:{w.State}");
        primary.Listening += (w, a) => events.Enqueue($"listening:{w.State}:{a.AddressType}:{a.Address}");
        primary.Disconnect += w => events.Enqueue($"disconnect:{w.ExitedAfterDisconnect}");
        primary.Exit += (w, e) =>
        {
            events.Enqueue($"exit:{w.State}:{e}");
            exited.TrySetResult();
        };

        var (worker, address) = await cluster.ForkListeningAsync();
        Assert.Equal(1, worker.Id);
        Assert.True(address.Port > 0);
        Assert.Equal(WorkerState.Listening, worker.State);
        Assert.Null(worker.ExitedAfterDisconnect);
        Assert.Same(worker, primary.Workers[1]);

        var exit = await worker.DisconnectAsync().WaitAsync(TestCluster.Timeout);
        await exited.Task.WaitAsync(TestCluster.Timeout);

        Assert.Equal(new WorkerExit(0, null), exit);
        Assert.True(worker.ExitedAfterDisconnect);
        Assert.True(worker.IsDead);
        Assert.False(worker.IsConnected);
        Assert.Equal(WorkerState.Dead, worker.State);
        Assert.Empty(primary.Workers);
        var seen = events.ToArray();
        Assert.Equal(["setup", "fork:None", "worker.online", "online:Online", "listening:Listening:IPv4:127.0.0.1"], seen[..5]);
        Assert.Contains("disconnect:True", seen);
        Assert.Contains("exit:Dead:exit code 0", seen);
        Assert.True(Array.IndexOf(seen, "worker.exit") < Array.IndexOf(seen, "exit:Dead:exit code 0"), "worker-level events come first");
    }

    [Fact]
    public async Task A_workers_exit_code_reaches_the_primary()
    {
        await using var cluster = new TestCluster(["exit", "42"]);
        var worker = cluster.Primary.Fork();
        var exit = await worker.Exited.WaitAsync(TestCluster.Timeout);
        Assert.Equal(42, exit.ExitCode);
        Assert.Null(exit.Signal);
        Assert.False(worker.ExitedAfterDisconnect);
    }

    [Fact]
    public async Task Kill_sends_a_plain_signal()
    {
        await using var cluster = new TestCluster(["serve"]);
        int disconnects = 0;
        cluster.Primary.Disconnect += _ => Interlocked.Increment(ref disconnects);
        var (worker, _) = await cluster.ForkListeningAsync();
        var disconnected = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        worker.Disconnect += _ => disconnected.TrySetResult();

        worker.Kill(UnixSignal.SIGKILL);
        var exit = await worker.Exited.WaitAsync(TestCluster.Timeout);
        await disconnected.Task.WaitAsync(TestCluster.Timeout);

        Assert.Equal(UnixSignal.SIGKILL, exit.Signal);
        Assert.Null(exit.ExitCode);
        Assert.False(worker.ExitedAfterDisconnect);
        Assert.True(worker.IsDead);
        Assert.Equal(1, disconnects);
        Assert.Empty(cluster.Primary.Workers);
    }

    [Fact]
    public async Task Graceful_disconnect_waits_for_an_open_connection()
    {
        await using var cluster = new TestCluster(["serve"]);
        var (worker, address) = await cluster.ForkListeningAsync();
        using var client = await Client.ConnectAsync(address.EndPoint);
        Assert.Equal(worker.Process.Id, await client.ReadPidAsync());

        var exiting = worker.DisconnectAsync();
        // The connection is still open, so the worker must still be there a second later, still serving it.
        if (await Task.WhenAny(exiting, Task.Delay(TimeSpan.FromSeconds(1))) == exiting)
            Assert.Fail($"the worker left ({await exiting}) while a connection was open");
        Assert.Equal("still here", await client.EchoAsync("still here"));
        Assert.Empty(cluster.Primary.Workers); // it left the table at once, as in Node
        // It was the last worker on the port, so the primary closed the listening socket: new connections are refused.
        var refused = await Assert.ThrowsAsync<SocketException>(() => Client.ConnectAsync(address.EndPoint));
        Assert.Equal(SocketError.ConnectionRefused, refused.SocketErrorCode);

        client.Dispose();
        var exit = await exiting.WaitAsync(TestCluster.Timeout);
        Assert.Equal(0, exit.ExitCode);
        Assert.True(worker.ExitedAfterDisconnect);
    }

    [Fact]
    public async Task A_worker_that_disconnects_itself_exited_after_disconnect()
    {
        await using var cluster = new TestCluster(["serve"]);
        var (worker, _) = await cluster.ForkListeningAsync();
        var seen = new ConcurrentQueue<bool?>();
        worker.Disconnect += w => seen.Enqueue(w.ExitedAfterDisconnect);
        worker.Exit += (w, _) => seen.Enqueue(w.ExitedAfterDisconnect);

        worker.Send(TestCluster.Json("""{"cmd":"disconnect"}"""));
        var exit = await worker.Exited.WaitAsync(TestCluster.Timeout);

        Assert.Equal(0, exit.ExitCode);
        Assert.Equal([true, true], seen); // known before either event, as Node's ack guarantees
    }

    [Fact]
    public async Task Silent_workers_write_to_the_primary_not_the_terminal()
    {
        await using var cluster = new TestCluster(["serve"], settings: new ClusterSettings { Silent = true });
        var (worker, address) = await cluster.ForkListeningAsync();
        using var output = new StreamReader(worker.Process.StandardOutput!);
        var line = await output.ReadLineAsync().WaitAsync(TestCluster.Timeout);
        Assert.Equal($"worker {worker.Process.Id} serving {address.EndPoint}", line);
    }

    [Fact]
    public async Task Workers_exit_within_a_second_when_the_primary_is_killed()
    {
        await using var primary = await HostProcess.StartAsync("serve", "--port", "0");
        int[] workers = [(await primary.ForkListeningAsync()).Pid, (await primary.ForkListeningAsync()).Pid];
        await KillAndAssertWorkersGoneWithinASecondAsync(primary, workers, "the primary killed");
    }

    [Fact]
    public async Task A_stopped_worker_is_killed_with_its_primary()
    {
        await using var primary = await HostProcess.StartAsync("serve", "--port", "0");
        var (worker, _) = await primary.ForkListeningAsync();
        // Stopped, the worker cannot read its channel's end of stream: only the parent-death signal can end it. It shares
        // the test's process group, so the primary's death orphans no group (which would SIGCONT it).
        Assert.True(Native.Fd.Kill(worker, (int)UnixSignal.SIGSTOP));
        await TestCluster.UntilAsync(() => StateOf(worker) == 'T', "the worker to stop");
        await KillAndAssertWorkersGoneWithinASecondAsync(primary, [worker], "the primary killed, its worker stopped");
    }

    // SIGKILLs the primary; every worker must be gone (a zombie at most) within a second.
    private async Task KillAndAssertWorkersGoneWithinASecondAsync(HostProcess primary, int[] workers, string scenario)
    {
        Assert.All(workers, pid => Assert.True(IsAlive(pid)));
        var gone = await primary.KillAsync(workers);
        ChaosReport.Append(output, scenario, $"{workers.Length} worker(s) gone {gone.TotalMilliseconds:0} ms after the primary's SIGKILL");
        Assert.All(workers, pid => Assert.False(IsAlive(pid), $"worker {pid} outlived its primary"));
        Assert.True(gone < TimeSpan.FromSeconds(1), $"workers took {gone.TotalMilliseconds:0} ms to exit");
    }

    [Fact]
    public async Task A_worker_forked_from_a_thread_that_exits_lives_on()
    {
        await using var cluster = new TestCluster(["serve"]);
        Worker? worker = null;
        ListeningAddress? address = null;
        string? task = null;
        Exception? error = null;
        var forker = new Thread(() =>
        {
            try
            {
                worker = cluster.Primary.Fork();
                // Listening, the worker has set its parent-death signal (it does so first thing): the kernel would send it
                // when the thread that forked the worker exits, had that been this one.
                address = cluster.ListeningAsync(worker).GetAwaiter().GetResult();
                task = Path.Combine("/proc", new DirectoryInfo("/proc/thread-self").LinkTarget!); // /proc/<pid>/task/<tid>
            }
            catch (Exception e)
            {
                error = e;
            }
        });
        forker.Start();
        Assert.True(await Task.Run(() => forker.Join(TestCluster.Timeout)));
        Assert.Null(error);
        // The thread's /proc entry goes only after the kernel has sent its children their parent-death signal.
        await TestCluster.UntilAsync(() => !Directory.Exists(task), "the forking thread to be gone");

        Assert.Equal(worker!.Process.Id, await Client.PidOfAsync(address!.EndPoint));
        Assert.False(worker.IsDead);
    }

    // A zombie (exited, not yet reaped by its dead parent's reaper) counts as gone.
    internal static bool IsAlive(int pid) => StateOf(pid) is not (null or 'Z');

    // The state letter of /proc/<pid>/stat (R, S, T, Z...), null once the process is gone.
    internal static char? StateOf(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[stat.LastIndexOf(')') + 2];
        }
        catch (IOException)
        {
            return null;
        }
    }
}
