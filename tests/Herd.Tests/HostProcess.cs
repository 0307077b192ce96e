using System.Diagnostics;
using System.Globalization;

namespace Herd.Tests;

/// <summary>
/// A primary in a process of its own (Herd.TestWorker's "host"), driven by line commands; its events and Herd's log
/// come back as lines. Its fds and memory are read from /proc, as a user would watch a production primary.
/// </summary>
internal sealed class HostProcess : IAsyncDisposable
{
    private readonly TestProcess _process;

    private HostProcess(TestProcess process) => _process = process;

    /// <summary>Starts a primary whose workers run the test worker with <paramref name="workerArgs"/>.</summary>
    public static async Task<HostProcess> StartAsync(params string[] workerArgs)
    {
        var host = new HostProcess(TestProcess.Start(["dotnet", TestCluster.WorkerDll, "host", .. workerArgs], input: true));
        await host.WaitForAsync(line => line == "ready");
        return host;
    }

    public int Pid => _process.Pid;

    /// <summary>The primary's open sockets, pipes and other non-file fds (the runtime opens assemblies lazily: not leaks).</summary>
    public int OpenFds => Directory.GetFileSystemEntries($"/proc/{Pid}/fd").Count(fd => new FileInfo(fd).LinkTarget is { } target && !target.StartsWith('/'));

    /// <summary>The primary's resident memory, in KB.</summary>
    public long RssKb => long.Parse(File.ReadLines($"/proc/{Pid}/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal)).Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);

    public bool HasExited => _process.HasExited;

    public IReadOnlyList<string> Lines => _process.Output.Lines;

    /// <summary>Waits for the first line from index <paramref name="from"/> on that matches.</summary>
    public Task<string> WaitForAsync(Func<string, bool> match, int from = 0) => _process.Output.WaitForAsync(match, from);

    /// <summary>Sends a command and returns the first line after it that starts with <paramref name="reply"/>.</summary>
    public async Task<string> CommandAsync(string command, string reply)
    {
        int from = _process.Output.Count;
        await _process.WriteLineAsync(command);
        return await WaitForAsync(line => line.StartsWith(reply, StringComparison.Ordinal), from);
    }

    /// <summary>Forks a worker with extra environment (KEY=VALUE) and waits until it listens; returns its pid and port.</summary>
    public async Task<(int Pid, int Port)> ForkListeningAsync(params string[] env)
    {
        var forked = (await CommandAsync(string.Join(' ', ["fork", .. env]), "forked ")).Split(' ');
        var listening = await WaitForAsync(line => line.StartsWith($"listening {forked[1]} ", StringComparison.Ordinal));
        return (int.Parse(forked[2], CultureInfo.InvariantCulture), int.Parse(listening.Split(' ')[3], CultureInfo.InvariantCulture));
    }

    public async Task<ConnectionStats> StatsAsync()
    {
        var n = (await CommandAsync("stats", "stats ")).Split(' ')[1..].Select(w => long.Parse(w, CultureInfo.InvariantCulture)).ToArray();
        return new ConnectionStats(n[0], n[1], n[2], n[3]);
    }

    /// <summary>Polls the primary's connection counts until every accepted connection has an outcome.</summary>
    public async Task<ConnectionStats> SettledStatsAsync()
    {
        ConnectionStats stats = default!;
        await TestCluster.UntilAsync(async () => (stats = await StatsAsync()).Pending == 0, "every accepted connection to have an outcome");
        return stats;
    }

    /// <summary>Pids of the workers that said they listen, and have not exited.</summary>
    public IReadOnlyList<int> LiveWorkers()
    {
        var lines = Lines;
        var exited = lines.Where(l => l.StartsWith("exit ", StringComparison.Ordinal)).Select(l => l.Split(' ')[2]).ToHashSet();
        return [.. lines.Where(l => l.StartsWith("listening ", StringComparison.Ordinal)).Select(l => l.Split(' ')[2]).Where(pid => !exited.Contains(pid))
            .Distinct().Select(pid => int.Parse(pid, CultureInfo.InvariantCulture))];
    }

    /// <summary>SIGKILLs the primary; returns how long its <paramref name="workers"/> outlived it (5 s at most: the caller judges).</summary>
    public async Task<TimeSpan> KillAsync(IReadOnlyList<int> workers)
    {
        _process.Kill();
        var killedAt = Stopwatch.StartNew();
        await _process.WaitForExitAsync();
        while (workers.Any(LifecycleTests.IsAlive) && killedAt.Elapsed < TimeSpan.FromSeconds(5)) await Task.Delay(10);
        return killedAt.Elapsed;
    }

    public async ValueTask DisposeAsync()
    {
        var workers = Lines.Where(l => l.StartsWith("forked ", StringComparison.Ordinal) || l.StartsWith("listening ", StringComparison.Ordinal))
            .Select(l => int.Parse(l.Split(' ')[2], CultureInfo.InvariantCulture)).ToHashSet();
        await _process.DisposeAsync();
        foreach (int pid in workers.Where(LifecycleTests.IsAlive))
        {
            try
            {
                Process.GetProcessById(pid).Kill(); // its primary is gone: it should be too, but never leave one behind
            }
            catch (ArgumentException)
            {
                // already gone
            }
        }
    }
}
