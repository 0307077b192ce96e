using System.Diagnostics;
using System.Globalization;
using HerdRun = Herd.Tests.CliTests.HerdRun;

namespace Herd.Tests;

/// <summary>
/// How the primary starts, watches, signals and lets go of worker processes (issue 11, items 1 to 6). These run
/// herd whole, twenty reloads among them: alone, so that they neither load the timing-sensitive tests nor are loaded.
/// </summary>
[Collection(nameof(ProcessTests))]
public sealed class ProcessTests
{
    // Item 1: a worker's child that keeps its stdout, stderr and channel open must not hide the worker's death.
    [Fact]
    public async Task A_killed_worker_whose_child_holds_its_output_is_replaced_at_once_and_reload_is_quick()
    {
        var child = OrphanSleep();
        try
        {
            // A death hidden by the child's pipes would hold the reload for the kill timeout at least: a long one keeps
            // that apart from a slow machine's reload.
            await using var herd = await HerdRun.StartAsync(1, [], $"{string.Join(' ', child)} &", config: """{ "killTimeout": 60000 }""");
            var victim = Assert.Single(await herd.LsAsync());
            var clock = Stopwatch.StartNew();
            Assert.True(Native.Fd.Kill(victim, (int)UnixSignal.SIGKILL));
            await herd.WaitForReplacementAsync(victim, 1);
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"replaced after {clock.Elapsed}"); // a hidden death: never
            Assert.Contains(herd.Errors, line => line.Contains($"(pid {victim}) died (SIGKILL)", StringComparison.Ordinal));

            clock.Restart();
            var (code, output) = await HerdRun.CliAsync("reload", "--name", herd.Name);
            Assert.True(code == 0, output);
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), $"reloaded in {clock.Elapsed}");
        }
        finally
        {
            KillAll(child);
        }
    }

    // Item 2: the status is waitid's, not a guess from an exit code above 128.
    [Theory]
    [InlineData("exit 137", 137, null, "exit code 137")]
    [InlineData("exit 130", 130, null, "exit code 130")]
    [InlineData("kill -KILL $$", null, UnixSignal.SIGKILL, "SIGKILL")]
    [InlineData("kill -BUS $$", null, UnixSignal.SIGBUS, "SIGBUS")]
    [InlineData("kill -SYS $$", null, UnixSignal.SIGSYS, "SIGSYS")]
    [InlineData("kill -RTMIN $$", null, (UnixSignal)34, "signal 34")]
    public async Task A_workers_exit_is_reported_as_waitid_tells_it(string script, int? code, UnixSignal? signal, string shown)
    {
        await using var cluster = new TestCluster([], settings: new ClusterSettings { Exec = "sh", Args = ["-c", script] });
        var exit = await cluster.Primary.Fork().Exited.WaitAsync(TestCluster.Timeout);
        Assert.Equal(new WorkerExit(code, signal), exit);
        Assert.Equal(shown, exit.ToString());
    }

    // Item 3: a replaced worker's pipes close; they used to wait for a garbage collection.
    [Fact]
    public async Task Replaced_workers_leave_no_pipe_open_in_the_primary()
    {
        await using var herd = await HerdRun.StartAsync(workers: 1);
        await herd.PidsServingAsync(1);
        int baseline = PipesOf(herd.Pid);
        for (int i = 0; i < 20; i++)
        {
            var (code, output) = await HerdRun.CliAsync("reload", "--name", herd.Name);
            Assert.True(code == 0, output);
        }
        int now = 0;
        await TestCluster.UntilAsync(() => (now = PipesOf(herd.Pid)) <= baseline, $"the primary's pipes back to {baseline} after 20 reloads");
        Assert.True(now <= baseline, $"{now} pipes open after 20 reloads, {baseline} before");
    }

    // Item 5: a terminal's Ctrl-C and systemd's default stop signal the whole group: the workers must serve on
    // through the drain, the request they are in the middle of included, as with herd stop. herd starts as a
    // non-interactive shell starts a background job (`herd run ... &` in a script, CI's runners): SIGINT and SIGQUIT
    // ignored. The runtime then never installed its SIGINT handler, so herd missed the signal its workers forwarded
    // and disconnected them all (refused connections, then a restart loop, and no stop).
    [Theory]
    [InlineData(UnixSignal.SIGTERM)]
    [InlineData(UnixSignal.SIGINT)]
    public async Task A_signal_to_herds_whole_process_group_drains_as_herd_stop_does(UnixSignal signal)
    {
        var drain = TimeSpan.FromSeconds(3);
        string[] backgroundJob = ["sh", "-c", "trap '' INT QUIT; exec setsid \"$@\"", "sh"];
        await using var herd = await HerdRun.StartAsync(2, backgroundJob, shell: null, config: $$"""{ "drainDelay": {{drain.TotalMilliseconds}} }""");
        await herd.PidsServingAsync(4);
        using var inFlight = new System.Net.Sockets.TcpClient();
        await inFlight.ConnectAsync(herd.Uri.Host, herd.Uri.Port);
        var stream = inFlight.GetStream();
        await stream.WriteAsync("GET /pid HTTP/1.1\r\nHost: test\r\n"u8.ToArray()); // the request's last line comes later

        Assert.True(Native.Fd.Kill(-herd.Pid, (int)signal)); // herd leads its own process group, as a terminal's job does
        var clock = Stopwatch.StartNew();
        int served = await ServeThroughAsync(herd.GetPidAsync, drain);
        await stream.WriteAsync("\r\n"u8.ToArray());
        var answer = new byte[64];
        int read = await stream.ReadAsync(answer).AsTask().WaitAsync(TestCluster.Timeout);
        Assert.StartsWith("HTTP/1.1 200", System.Text.Encoding.ASCII.GetString(answer, 0, read), StringComparison.Ordinal);

        Assert.Equal(0, await herd.ExitCodeAsync());
        Assert.True(clock.Elapsed >= drain, $"herd exited after {clock.Elapsed}, before the drain ended");
        Assert.True(served > 0);
        Assert.Contains(herd.Errors, line => line.Contains($"{signal}: stopping gracefully", StringComparison.Ordinal));
    }

    // Item 5, the other side: Worker.Kill still ends a worker by the signal it sends (Node's worker.kill()), and a
    // SIGTERM sent to one worker alone asks it to leave gracefully.
    [Fact]
    public async Task Kill_with_sigterm_ends_the_worker_by_it()
    {
        await using var cluster = new TestCluster(["serve"]);
        var (worker, _) = await cluster.ForkListeningAsync();
        worker.Kill();
        Assert.Equal(new WorkerExit(null, UnixSignal.SIGTERM), await worker.Exited.WaitAsync(TestCluster.Timeout));
        Assert.False(worker.ExitedAfterDisconnect);
        // Reaped, its pid may be anyone's now: a kill goes nowhere (it goes through the worker's pidfd).
        Assert.True(worker.Process.HasExited);
        worker.Kill(UnixSignal.SIGKILL);
    }

    [Fact]
    public async Task A_sigterm_to_one_worker_alone_makes_it_leave_gracefully()
    {
        await using var cluster = new TestCluster(["serve"]);
        var (worker, _) = await cluster.ForkListeningAsync();
        Assert.True(Native.Fd.Kill(worker.Process.Id, (int)UnixSignal.SIGTERM));
        Assert.Equal(new WorkerExit(0, null), await worker.Exited.WaitAsync(TestCluster.Timeout));
        Assert.True(worker.ExitedAfterDisconnect);
    }

    // Item 6: as a container's pid 1, herd reaps the orphans the kernel hands it, and SIGTERM still drains it.
    [Fact]
    public async Task As_pid_1_herd_reaps_orphans_and_stops_gracefully_on_sigterm()
    {
        if (await NewPidNamespaceAsync() is not { } newPidNamespace) return;
        var orphan = OrphanSleep(seconds: 6);
        // The worker's shell starts a sleep from a subshell that exits at once: the sleep is orphaned, to pid 1.
        await using var herd = await HerdRun.StartAsync(1, newPidNamespace, shell: $"({string.Join(' ', orphan)} &);");
        int init = Assert.Single(ChildrenOf(herd.Pid));
        Assert.Contains(File.ReadLines($"/proc/{init}/status"), line => line.StartsWith("NSpid:", StringComparison.Ordinal) && line.EndsWith("\t1", StringComparison.Ordinal));

        int sleeper = 0;
        await TestCluster.UntilAsync(() => (sleeper = Find(orphan)) != 0, "the orphaned sleep");
        Assert.Equal(init, ParentOf(sleeper));
        await TestCluster.UntilAsync(() => !Directory.Exists($"/proc/{sleeper}"), $"pid {sleeper} to be reaped once its sleep ends, not left a zombie");

        // Nobody takes a worker's exit status from herd, which is pid 2 (at pid 1 the runtime reaps every child).
        int primary = Assert.Single(ChildrenOf(init));
        Assert.True(Native.Fd.Kill(Assert.Single(ChildrenOf(primary)), (int)UnixSignal.SIGKILL));
        await TestCluster.UntilAsync(() => herd.Errors.Any(line => line.Contains("died (SIGKILL)", StringComparison.Ordinal)), "the worker's death, by SIGKILL");

        Assert.True(Native.Fd.Kill(init, (int)UnixSignal.SIGTERM));
        Assert.Equal(0, await herd.ExitCodeAsync());
        Assert.Contains(herd.Errors, line => line.Contains("SIGTERM: stopping gracefully", StringComparison.Ordinal));
    }

    // The docs' systemd unit, with systemd's default KillMode, under systemctl stop: served through the drain.
    [Fact]
    public async Task The_systemd_unit_in_the_docs_stops_gracefully()
    {
        if (!Directory.Exists("/run/systemd/system")) // sd_booted(3)
        {
            Console.Error.WriteLine("skipped: systemd is not pid 1 here, so systemd-run has nothing to start a unit with");
            return;
        }
        var unit = "herd-test-" + Guid.NewGuid().ToString("N")[..8];
        var drain = TimeSpan.FromSeconds(3);
        var config = Path.GetTempFileName();
        await File.WriteAllTextAsync(config, $$"""{ "drainDelay": {{drain.TotalMilliseconds}} }""");
        var uri = new Uri($"http://127.0.0.1:{Ports.Free()}/pid");
        var dotnet = Environment.ProcessPath!; // the unit's PATH may not lead to it
        string[] run =
        [
            "systemd-run", $"--unit={unit}", "--collect", $"--setenv=DOTNET_ROOT={Path.GetDirectoryName(dotnet)}",
            .. DocumentedServiceSettings("Type", "KillMode", "TimeoutStopSec", "Restart").Select(setting => $"--property={setting}"),
            "--", dotnet, TestCluster.HerdCliDll, "run", "-i", "2", "--name", unit, "--config", config,
            "--", dotnet, TestCluster.PlainWebAppDll, "--urls", $"http://127.0.0.1:{uri.Port}",
        ];
        try
        {
            var (code, output) = await TestProcess.RunAsync(run); // Type=notify: back once herd said READY
            Assert.True(code == 0, output);
            using var http = new HttpClient { Timeout = TestCluster.Timeout };
            http.DefaultRequestHeaders.ConnectionClose = true;
            await http.GetStringAsync(uri);

            var clock = Stopwatch.StartNew();
            var stop = TestProcess.RunAsync(["systemctl", "stop", unit]);
            Assert.True(await ServeThroughAsync(() => http.GetStringAsync(uri), drain) > 0);
            (code, output) = await stop;
            Assert.True(code == 0, output);
            Assert.True(clock.Elapsed >= drain, $"stopped after {clock.Elapsed}, before the drain ended");
        }
        finally
        {
            await TestProcess.RunAsync(["systemctl", "stop", unit]);
            File.Delete(config);
        }
    }

    // The named settings of the [Service] section of the unit in docs/systemd.md, as Key=Value.
    private static IEnumerable<string> DocumentedServiceSettings(params string[] keys)
    {
        var folder = new DirectoryInfo(AppContext.BaseDirectory);
        while (!File.Exists(Path.Combine(folder.FullName, "docs", "systemd.md"))) folder = folder.Parent!;
        return File.ReadLines(Path.Combine(folder.FullName, "docs", "systemd.md"))
            .SkipWhile(line => line != "[Service]").TakeWhile(line => line.Length > 0)
            .Where(line => keys.Contains(line.Split('=')[0]));
    }

    // Sends requests one after another for most of the drain: each must be served.
    private static async Task<int> ServeThroughAsync(Func<Task> request, TimeSpan drain)
    {
        var clock = Stopwatch.StartNew();
        int served = 0;
        while (clock.Elapsed < drain * 0.6)
        {
            await request();
            served++;
        }
        return served;
    }

    // Each thread lists the children it forked: herd forks its workers from a thread of their own.
    /// <summary>A launcher that runs a command as pid 1 of a new pid namespace; null (saying why) where unshare cannot.</summary>
    internal static async Task<string[]?> NewPidNamespaceAsync()
    {
        string[] newPidNamespace = ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child"];
        var (able, why) = await TestProcess.RunAsync([.. newPidNamespace, "true"]);
        if (able == 0) return newPidNamespace;
        Console.Error.WriteLine($"skipped: unshare cannot make a pid namespace here (it needs root, as CI has): {why}");
        return null;
    }

    internal static int[] ChildrenOf(int pid) =>
        [.. Directory.GetDirectories($"/proc/{pid}/task").SelectMany(task => File.ReadAllText(Path.Combine(task, "children")).Split(' ', StringSplitOptions.RemoveEmptyEntries))
            .Select(child => int.Parse(child, CultureInfo.InvariantCulture))];

    private static int ParentOf(int pid) =>
        int.Parse(File.ReadAllText($"/proc/{pid}/stat").Split(") ")[1].Split(' ')[1], CultureInfo.InvariantCulture);

    private static int PipesOf(int pid) =>
        new DirectoryInfo($"/proc/{pid}/fd").GetFileSystemInfos().Count(fd => fd.LinkTarget?.StartsWith("pipe:", StringComparison.Ordinal) == true);

    /// <summary>A sleep whose command line no other test shares, so that it can be found afterwards.</summary>
    private static string[] OrphanSleep(int seconds = 600) =>
        ["sleep", $"{seconds}.{Random.Shared.Next(100000, 999999).ToString(CultureInfo.InvariantCulture)}"];

    private static void KillAll(string[] commandLine)
    {
        while (Find(commandLine) is var pid and not 0) Native.Fd.Kill(pid, (int)UnixSignal.SIGKILL);
    }

    // A process running exactly this command line, or 0.
    private static int Find(string[] commandLine)
    {
        var wanted = string.Join('\0', commandLine) + "\0";
        foreach (var dir in Directory.GetDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out int pid)) continue;
            try
            {
                if (File.ReadAllText(Path.Combine(dir, "cmdline")) == wanted) return pid;
            }
            catch (IOException)
            {
                // gone meanwhile
            }
        }
        return 0;
    }
}

[CollectionDefinition(nameof(ProcessTests), DisableParallelization = true)]
public sealed class ProcessTestsRunAlone;
