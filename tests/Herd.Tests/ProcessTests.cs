using System.Diagnostics;
using System.Globalization;
using HerdRun = Herd.Tests.CliTests.HerdRun;

namespace Herd.Tests;

/// <summary>How the primary starts, watches, signals and lets go of worker processes (issue 11, items 1 to 6).</summary>
public sealed class ProcessTests
{
    // Item 1: a worker's child that keeps its stdout, stderr and channel open must not hide the worker's death.
    [Fact]
    public async Task A_killed_worker_whose_child_holds_its_output_is_replaced_at_once_and_reload_is_quick()
    {
        var child = OrphanSleep();
        try
        {
            await using var herd = await HerdRun.StartAsync(1, [], $"{string.Join(' ', child)} &");
            var victim = Assert.Single(await herd.LsAsync());
            var clock = Stopwatch.StartNew();
            Assert.True(Native.Fd.Kill(victim, (int)UnixSignal.SIGKILL));
            await herd.WaitForReplacementAsync(victim, 1);
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5), $"replaced after {clock.Elapsed}");
            Assert.Contains(herd.Errors, line => line.Contains($"(pid {victim}) died (SIGKILL)", StringComparison.Ordinal));

            clock.Restart();
            var (code, output) = await HerdRun.CliAsync("reload", "--name", herd.Name);
            Assert.True(code == 0, output);
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"reloaded in {clock.Elapsed}");
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
        var clock = Stopwatch.StartNew();
        int now;
        while ((now = PipesOf(herd.Pid)) > baseline && clock.Elapsed < TestCluster.Timeout) await Task.Delay(100);
        Assert.True(now <= baseline, $"{now} pipes open after 20 reloads, {baseline} before");
    }

    private static int PipesOf(int pid) =>
        new DirectoryInfo($"/proc/{pid}/fd").GetFileSystemInfos().Count(fd => fd.LinkTarget?.StartsWith("pipe:", StringComparison.Ordinal) == true);

    /// <summary>A sleep whose command line no other test shares, so that it can be found and killed afterwards.</summary>
    private static string[] OrphanSleep() => ["sleep", $"600.{Random.Shared.Next(100000, 999999).ToString(CultureInfo.InvariantCulture)}"];

    private static void KillAll(string[] commandLine)
    {
        var wanted = string.Join('\0', commandLine) + "\0";
        foreach (var dir in Directory.GetDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out int pid)) continue;
            try
            {
                if (File.ReadAllText(Path.Combine(dir, "cmdline")) == wanted) Native.Fd.Kill(pid, (int)UnixSignal.SIGKILL);
            }
            catch (IOException)
            {
                // gone meanwhile
            }
        }
    }
}
