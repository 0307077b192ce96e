using System.Diagnostics;
using System.Globalization;

namespace Herd.Tests;

/// <summary>
/// AddHostedServiceInOneWorker: a job that runs in one worker of the cluster, and moves when that worker leaves.
/// TestWebApp's job appends "pid ticks" to a file every 50 ms while it runs.
/// </summary>
public sealed class OneWorkerTests
{
    // How long two workers may both run the job while it moves: the old one's StopAsync, on a busy machine.
    private static readonly TimeSpan Handoff = TimeSpan.FromSeconds(2);

    [Fact]
    public async Task The_job_runs_in_one_worker_and_moves_when_it_leaves()
    {
        var file = Path.GetTempFileName();
        try
        {
            await using var herd = await CliTests.HerdRun.StartAsync(2, null,
                port => ["dotnet", TestCluster.TestWebAppDll, "--urls", $"http://127.0.0.1:{port}"], ("HERD_TEST_JOB_FILE", file));

            // One worker runs it: the first ready (the lowest slot among those ready when the leader is chosen).
            int first = await NextWriterAsync(file, except: 0);
            Assert.Contains(first, await herd.LsAsync());
            await WhileWritingAsync(file, TimeSpan.FromSeconds(1));
            Assert.Equal([first], Writers(file, since: TimeSpan.FromSeconds(1)));

            // Killed, it moves to the other worker.
            var clock = Stopwatch.StartNew();
            Native.Fd.Kill(first, (int)UnixSignal.SIGKILL);
            int second = await NextWriterAsync(file, except: first);
            var moved = clock.Elapsed;
            Assert.NotEqual(first, second);

            // Restarted gracefully, it moves once to another worker, the two overlapping at most a handoff.
            await herd.WaitForWorkersAsync(2);
            var leaderId = (await herd.LsRowsAsync()).Single(r => r.GetProperty("pid").GetInt32() == second).GetProperty("id").GetInt32();
            Assert.Equal(0, (await CliTests.HerdRun.CliAsync("restart", leaderId.ToString(CultureInfo.InvariantCulture), "--name", herd.Name)).Code);
            int third = await NextWriterAsync(file, except: second);
            await WhileWritingAsync(file, TimeSpan.FromSeconds(1));
            Assert.Equal([third], Writers(file, since: TimeSpan.FromSeconds(0.5)));

            // Over the whole run, no two workers wrote at once for longer than a handoff.
            var spans = Lines(file).GroupBy(l => l.Pid).Select(g => (Pid: g.Key, First: g.Min(l => l.At), Last: g.Max(l => l.At))).OrderBy(s => s.First).ToList();
            Assert.Equal([first, second, third], spans.Select(s => s.Pid));
            for (int i = 1; i < spans.Count; i++)
                Assert.True(spans[i - 1].Last - spans[i].First < Handoff, $"{spans[i - 1].Pid} and {spans[i].Pid} overlapped {spans[i - 1].Last - spans[i].First}");
            Assert.True(moved < TestCluster.Timeout);
        }
        finally
        {
            File.Delete(file);
        }
    }

    private static async Task<int> NextWriterAsync(string file, int except)
    {
        int writer = 0;
        await TestCluster.UntilAsync(() => (writer = Lines(file).LastOrDefault().Pid) != 0 && writer != except, $"a worker but {except} to run the job");
        return writer;
    }

    // The job writes 20 lines a second; this waits for some while keeping the test bounded.
    private static async Task WhileWritingAsync(string file, TimeSpan span)
    {
        int before = Lines(file).Count;
        await TestCluster.UntilAsync(() => Lines(file).Count >= before + (int)(span.TotalMilliseconds / 50), $"the job's lines for {span}");
    }

    private static List<int> Writers(string file, TimeSpan since)
    {
        var lines = Lines(file);
        var end = lines[^1].At;
        return [.. lines.Where(l => end - l.At <= since).Select(l => l.Pid).Distinct()];
    }

    private static List<(int Pid, DateTime At)> Lines(string file)
    {
        using var stream = new FileStream(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
        using var reader = new StreamReader(stream);
        var lines = new List<(int, DateTime)>();
        while (reader.ReadLine() is { } line)
        {
            var parts = line.Split(' ');
            if (parts.Length == 2 && int.TryParse(parts[0], CultureInfo.InvariantCulture, out int pid) && long.TryParse(parts[1], CultureInfo.InvariantCulture, out long ticks))
                lines.Add((pid, new DateTime(ticks, DateTimeKind.Utc)));
        }
        return lines;
    }
}
