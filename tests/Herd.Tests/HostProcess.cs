using System.Diagnostics;
using System.Globalization;

namespace Herd.Tests;

/// <summary>
/// A primary in a process of its own (Herd.TestWorker's "host"), driven by line commands; its events and Herd's log
/// come back as lines. Its fds and memory are read from /proc, as a user would watch a production primary.
/// </summary>
internal sealed class HostProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly List<string> _lines = [];
    private readonly Lock _gate = new();
    private readonly Task _reading;
    private TaskCompletionSource _more = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private HostProcess(Process process)
    {
        _process = process;
        _reading = Task.Run(ReadAsync);
    }

    /// <summary>Starts a primary whose workers run the test worker with <paramref name="workerArgs"/>.</summary>
    public static async Task<HostProcess> StartAsync(params string[] workerArgs)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardInput = true, RedirectStandardOutput = true, UseShellExecute = false };
        foreach (var arg in (string[])[TestCluster.WorkerDll, "host", .. workerArgs]) start.ArgumentList.Add(arg);
        var host = new HostProcess(Process.Start(start)!);
        await host.WaitForAsync(line => line == "ready");
        return host;
    }

    public int Pid => _process.Id;

    /// <summary>The primary's open sockets, pipes and other non-file fds (the runtime opens assemblies lazily: not leaks).</summary>
    public int OpenFds => Directory.GetFileSystemEntries($"/proc/{Pid}/fd").Count(fd => new FileInfo(fd).LinkTarget is { } target && !target.StartsWith('/'));

    /// <summary>The primary's resident memory, in KB.</summary>
    public long RssKb => long.Parse(File.ReadLines($"/proc/{Pid}/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal)).Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);

    public bool HasExited => _process.HasExited;

    public IReadOnlyList<string> Lines
    {
        get
        {
            lock (_gate) return [.. _lines];
        }
    }

    /// <summary>Waits for the first line from index <paramref name="from"/> on that matches.</summary>
    public async Task<string> WaitForAsync(Func<string, bool> match, int from = 0)
    {
        using var timeout = new CancellationTokenSource(TestCluster.Timeout);
        while (true)
        {
            Task more;
            lock (_gate)
            {
                for (int i = from; i < _lines.Count; i++)
                {
                    if (match(_lines[i])) return _lines[i];
                }
                from = _lines.Count;
                more = _more.Task;
            }
            if (_reading.IsCompleted) throw new InvalidOperationException($"The primary exited without the line awaited; it said:{Environment.NewLine}{string.Join(Environment.NewLine, Lines)}");
            await more.WaitAsync(timeout.Token);
        }
    }

    /// <summary>Sends a command and returns the first line after it that starts with <paramref name="reply"/>.</summary>
    public async Task<string> CommandAsync(string command, string reply)
    {
        int from;
        lock (_gate) from = _lines.Count;
        await _process.StandardInput.WriteLineAsync(command);
        await _process.StandardInput.FlushAsync();
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
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            var stats = await StatsAsync();
            if (stats.Pending == 0 || deadline.Elapsed > TestCluster.Timeout) return stats;
            await Task.Delay(50);
        }
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
        await _process.WaitForExitAsync().WaitAsync(TestCluster.Timeout);
        while (workers.Any(LifecycleTests.IsAlive) && killedAt.Elapsed < TimeSpan.FromSeconds(5)) await Task.Delay(10);
        return killedAt.Elapsed;
    }

    public async ValueTask DisposeAsync()
    {
        var workers = Lines.Where(l => l.StartsWith("forked ", StringComparison.Ordinal) || l.StartsWith("listening ", StringComparison.Ordinal))
            .Select(l => int.Parse(l.Split(' ')[2], CultureInfo.InvariantCulture)).ToHashSet();
        if (!_process.HasExited) _process.Kill();
        await _process.WaitForExitAsync().WaitAsync(TestCluster.Timeout);
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
        _process.Dispose();
    }

    private async Task ReadAsync()
    {
        try
        {
            while (await _process.StandardOutput.ReadLineAsync() is { } line)
            {
                TaskCompletionSource more;
                lock (_gate)
                {
                    _lines.Add(line);
                    more = _more;
                    _more = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                }
                more.SetResult();
            }
        }
        finally
        {
            lock (_gate) _more.TrySetResult();
        }
    }
}
