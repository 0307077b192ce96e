using System.Diagnostics;
using System.Globalization;

using Xunit.Abstractions;

namespace Herd.Tests;

/// <summary>
/// Faults under load, against a primary in its own process: a connection the primary accepted is served or
/// explicitly refused, never lost, and the primary survives whatever its workers do.
/// </summary>
public sealed class ReliabilityTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Killing_a_random_worker_every_200_ms_under_load_loses_no_accepted_connection()
    {
        var duration = TimeSpan.FromSeconds(ChaosReport.Setting("KILL_SECONDS", 10));
        int port = Ports.Free();
        await using var host = await HostProcess.StartAsync("serve", "--port", port.ToString(CultureInfo.InvariantCulture));
        await host.CommandAsync("supervise 2", "supervised");
        var load = EchoLoad.Start(port);
        var killed = new HashSet<int>();
        var random = new Random(1);
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < duration)
        {
            await Task.Delay(200); // the chaos's pace, not a wait for anything
            var live = host.LiveWorkers().Except(killed).ToList();
            if (live.Count == 0) continue;
            int victim = live[random.Next(live.Count)];
            if (Native.Fd.Kill(victim, (int)UnixSignal.SIGKILL)) killed.Add(victim);
        }
        await load.StopAsync();
        var stats = await host.SettledStatsAsync();

        long onKilled = load.FailedBeforePid + load.FailedAfterPid.Values.Sum();
        ChaosReport.Append(output, "kill -9 a worker every 200 ms",
            $"{duration.TotalSeconds:0} s, {killed.Count} workers killed; clients: {load}; primary: accepted {stats.Accepted}, handed {stats.Handed}, " +
            $"retried {stats.Retried}, refused {stats.Refused}, lost {stats.Pending}; requests in flight on killed workers' own connections: {onKilled}");
        Assert.False(host.HasExited);
        Assert.True(killed.Count >= duration.TotalSeconds / 2, $"only {killed.Count} kills"); // fewer than one per 200 ms when none is up yet
        Assert.Equal(0, stats.Refused);
        Assert.Equal(0, stats.Pending);
        Assert.Equal(0, load.Refused);
        Assert.Equal(0, load.Stuck);
        // A connection that failed after a worker answered was on a worker killed meanwhile; none of a live one failed.
        Assert.All(load.FailedAfterPid.Keys, pid => Assert.Contains(pid, killed));
        Assert.True(stats.Retried > 0, "no handoff was ever retried: the kills never hit a connection in flight");
        Assert.True(load.Ok > 100, load.ToString());
    }

    [Fact]
    public async Task A_rolling_reload_every_2_s_under_load_fails_no_request()
    {
        int reloads = ChaosReport.Setting("RELOADS", 5);
        int port = Ports.Free();
        await using var host = await HostProcess.StartAsync("serve", "--port", port.ToString(CultureInfo.InvariantCulture));
        await host.CommandAsync("supervise 2", "supervised");
        var load = EchoLoad.Start(port);
        var clock = Stopwatch.StartNew();
        for (int i = 1; i <= reloads; i++)
        {
            var wait = TimeSpan.FromSeconds(2 * i) - clock.Elapsed;
            if (wait > TimeSpan.Zero) await Task.Delay(wait); // the pace: one reload every 2 s
            await host.CommandAsync("reload", "reloaded");
        }
        await load.StopAsync();
        var stats = await host.SettledStatsAsync();

        ChaosReport.Append(output, "rolling reload every 2 s",
            $"{reloads} reloads in {clock.Elapsed.TotalSeconds:0} s, {host.Lines.Count(l => l.StartsWith("exit ", StringComparison.Ordinal))} workers replaced; " +
            $"clients: {load}; primary: accepted {stats.Accepted}, retried {stats.Retried}, refused {stats.Refused}");
        Assert.Equal(0, load.Failed);
        Assert.Equal(0, stats.Refused);
        Assert.Equal(2 * reloads, host.Lines.Count(l => l.StartsWith("exit ", StringComparison.Ordinal)));
        Assert.True(load.ServedBy.Count >= 2 * reloads, $"only {load.ServedBy.Count} workers served");
    }

    [Fact]
    public async Task After_a_soak_the_primarys_fds_and_memory_return_to_their_baseline()
    {
        int connections = ChaosReport.Setting("SOAK_CONNECTIONS", 20_000);
        await using var host = await HostProcess.StartAsync("serve", "--port", "0");
        var (_, port) = await host.ForkListeningAsync();
        await host.ForkListeningAsync();
        await EchoLoad.Start(port, limit: 1_000).Completion.WaitAsync(TestCluster.Timeout); // warm: JIT, pools, thread stacks
        await host.SettledStatsAsync();
        await host.CommandAsync("gc", "gc");
        int fdsBefore = host.OpenFds;
        long rssBefore = host.RssKb;

        var load = EchoLoad.Start(port, limit: connections);
        await load.Completion.WaitAsync(TimeSpan.FromMinutes(5));
        var stats = await host.SettledStatsAsync();
        await host.CommandAsync("gc", "gc");
        int fdsAfter = host.OpenFds;
        long rssAfter = host.RssKb;

        ChaosReport.Append(output, "soak",
            $"{load.Ok} connections; primary fds {fdsBefore} -> {fdsAfter}, RSS {rssBefore / 1024.0:0.0} -> {rssAfter / 1024.0:0.0} MB; clients: {load}");
        Assert.Equal(0, load.Failed);
        Assert.Equal(0, stats.Pending);
        Assert.Equal(fdsBefore, fdsAfter);
        Assert.True(rssAfter - rssBefore < 8 * 1024, $"RSS grew from {rssBefore} KB to {rssAfter} KB");
    }

    [Theory]
    [InlineData("random", "")]
    [InlineData("oversized-record", "a record over")]
    [InlineData("oversized-frame", "a frame over")]
    [InlineData("truncated", "malformed control message")]
    [InlineData("truncated-binary", "malformed accepted frame")]
    [InlineData("truncated-load", "malformed load frame of 3 bytes")]
    [InlineData("negative-load", "malformed load frame of 5 bytes")]
    [InlineData("interleaved", "interleaved frames")]
    [InlineData("unknown-kind", "unexpected frame of kind 99")]
    [InlineData("fd-on-control", "fd(s) with a frame of kind Internal, which carries none")]
    [InlineData("fds-on-message", "sent 2 fds with a message")]
    [InlineData("flood", "a flood of messages")]
    public async Task A_worker_that_breaks_the_protocol_is_cut_off_and_the_others_serve_on(string attack, string reason)
    {
        await using var host = await HostProcess.StartAsync("serve", "--port", "0");
        var (good, port) = await host.ForkListeningAsync();
        await EchoLoad.Start(port, limit: 20).Completion.WaitAsync(TestCluster.Timeout);
        await host.SettledStatsAsync(); // every answer in: the primary holds no copy of a connection any more
        int fdsBefore = host.OpenFds;

        var (bad, _) = await host.ForkListeningAsync($"HERD_TEST_FUZZ={attack}");
        var cutOff = await host.WaitForAsync(line => line.Contains($"(pid {bad}) broke the protocol and was cut off: ", StringComparison.Ordinal));
        await host.WaitForAsync(line => line.StartsWith("exit ", StringComparison.Ordinal) && line.Contains($" {bad} ", StringComparison.Ordinal));
        var load = EchoLoad.Start(port, limit: 50);
        await load.Completion.WaitAsync(TestCluster.Timeout);
        var stats = await host.SettledStatsAsync();

        ChaosReport.Append(output, $"IPC fuzz: {attack}", $"{cutOff[(cutOff.IndexOf("cut off: ", StringComparison.Ordinal) + 9)..]} Then {load.Ok} requests, all served by the other worker; primary sockets and pipes {fdsBefore} -> {host.OpenFds}");
        Assert.Contains(reason, cutOff, StringComparison.Ordinal);
        Assert.Equal(0, load.Failed);
        Assert.Equal([good], load.ServedBy.Keys);
        Assert.Equal(0, stats.Refused);
        Assert.Equal(0, stats.Pending);
        Assert.False(host.HasExited);
        Assert.Equal(fdsBefore, host.OpenFds);
    }

    [Fact]
    public async Task A_worker_that_takes_nothing_cannot_make_the_primary_hold_unbounded_fds()
    {
        await using var host = await HostProcess.StartAsync("serve", "--port", "0");
        var (pid, port) = await host.ForkListeningAsync("HERD_TEST_LAZY=1"); // accepts nothing until told to
        int fdsBefore = host.OpenFds;
        const int held = Primary.RoundRobinHandle.MaxQueued + Primary.RoundRobinHandle.Window;
        var endPoint = new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, port);
        var clients = new List<Client>();
        try
        {
            for (int i = 0; i < held + 200; i++) clients.Add(await Client.ConnectAsync(endPoint)); // the last 200 wait in the kernel's backlog
            await TestCluster.UntilAsync(async () => (await host.StatsAsync()).Accepted >= held, $"the primary to accept {held} connections");
            var stats = await host.StatsAsync();
            int fdsHolding = host.OpenFds;

            await host.CommandAsync("send 1 {\"cmd\":\"accept\"}", "sent ");
            var pids = await Task.WhenAll(clients.Select(c => c.ReadPidAsync()));

            ChaosReport.Append(output, "a worker that takes nothing", $"{clients.Count} connections waiting: the primary accepted {stats.Accepted} and held {fdsHolding - fdsBefore} more fds, the rest waited in the kernel's backlog; all {pids.Length} served once the worker accepted");
            Assert.Equal(held, stats.Accepted); // no more than that while the worker took nothing
            Assert.InRange(fdsHolding - fdsBefore, held - 10, held + 10);
            Assert.All(pids, p => Assert.Equal(pid, p));
            Assert.Equal(0, (await host.SettledStatsAsync()).Pending);
        }
        finally
        {
            foreach (var client in clients) client.Dispose();
        }
    }

    [Fact]
    public async Task Out_of_fds_the_primary_backs_off_and_recovers()
    {
        await using var host = await HostProcess.StartAsync("serve", "--port", "0");
        var (worker, port) = await host.ForkListeningAsync();
        var fds = Directory.GetFileSystemEntries($"/proc/{host.Pid}/fd").Select(p => int.Parse(Path.GetFileName(p), CultureInfo.InvariantCulture)).ToHashSet();
        int lowestFree = Enumerable.Range(0, int.MaxValue).First(fd => !fds.Contains(fd));
        int from = host.Lines.Count;
        await host.CommandAsync($"nofile {lowestFree}", "nofile ");

        var load = EchoLoad.Start(port, concurrency: 10, limit: 10);
        await host.WaitForAsync(line => line.Contains("failed (Too many open files); retrying", StringComparison.Ordinal), from);
        await host.CommandAsync("nofile max", "nofile ");
        await load.Completion.WaitAsync(TestCluster.Timeout);

        int backoffs = host.Lines.Skip(from).Count(line => line.Contains("Too many open files", StringComparison.Ordinal));
        ChaosReport.Append(output, "RLIMIT_NOFILE exhausted in the primary", $"{backoffs} accept failure(s) logged with backoff, the primary alive; clients once the limit rose: {load}");
        Assert.True(load.Ok >= 10, load.ToString());
        Assert.Equal(0, load.Failed);
        Assert.Equal([worker], load.ServedBy.Keys);
        Assert.False(host.HasExited);
    }
}
