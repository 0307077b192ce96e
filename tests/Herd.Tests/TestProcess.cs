using System.Diagnostics;

namespace Herd.Tests;

/// <summary>
/// A program a test starts: its arguments as a list, its environment, its output as lines a test can wait for, every
/// wait bounded by <see cref="TestCluster.Timeout"/>, and the whole process tree killed on dispose if it still runs.
/// The one way the tests start a process.
/// </summary>
internal sealed class TestProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly Task _reading;

    private TestProcess(Process process, bool input)
    {
        _process = process;
        _reading = Task.WhenAll(ReadAsync(process.StandardOutput, Output), ReadAsync(process.StandardError, Errors));
        if (!input) process.StandardInput.Close(); // a program that reads its input sees the end, not a test's silence
    }

    /// <summary>
    /// Starts <paramref name="command"/> (the program, then its arguments). <paramref name="environment"/> sets
    /// variables over the test's, a null value removing one; <paramref name="input"/> keeps standard input open for <see cref="WriteLineAsync"/>.
    /// </summary>
    public static TestProcess Start(IReadOnlyList<string> command, IReadOnlyDictionary<string, string?>? environment = null, bool input = false)
    {
        var start = new ProcessStartInfo(command[0])
        {
            RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        foreach (var arg in command.Skip(1)) start.ArgumentList.Add(arg);
        foreach (var (name, value) in environment ?? new Dictionary<string, string?>())
        {
            if (value is null) start.Environment.Remove(name);
            else start.Environment[name] = value;
        }
        return new TestProcess(Process.Start(start)!, input);
    }

    /// <summary>
    /// Runs <paramref name="command"/> to its end, killed if it outlasts <paramref name="timeout"/> (by default
    /// <see cref="TestCluster.Timeout"/>); returns its exit code and output (stdout, then stderr).
    /// </summary>
    public static async Task<(int Code, string Output)> RunAsync(IReadOnlyList<string> command, IReadOnlyDictionary<string, string?>? environment = null, TimeSpan? timeout = null)
    {
        await using var process = Start(command, environment);
        int code = await process.WaitForExitAsync(timeout);
        return (code, process.Output.ToString() + process.Errors);
    }

    /// <summary><paramref name="command"/> run as nobody (uid and gid 65534, no groups) through setpriv; only root may.</summary>
    public static string[] AsNobody(params string[] command) => ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", .. command];

    /// <summary>What it writes to standard output.</summary>
    public OutputLines Output { get; } = new("stdout");

    /// <summary>What it writes to standard error.</summary>
    public OutputLines Errors { get; } = new("stderr");

    public int Pid => _process.Id;

    public bool HasExited => _process.HasExited;

    /// <summary>
    /// Waits, at most <paramref name="timeout"/> (by default <see cref="TestCluster.Timeout"/>), for it to exit and, unless
    /// <paramref name="untilOutputEnds"/> is false, for the last of its output; returns its exit code. A program that hands
    /// its outputs on (herd upgrade's new primary inherits them) exits with them still open.
    /// </summary>
    public async Task<int> WaitForExitAsync(TimeSpan? timeout = null, bool untilOutputEnds = true)
    {
        await _process.WaitForExitAsync().WaitAsync(timeout ?? TestCluster.Timeout);
        if (untilOutputEnds) await _reading.WaitAsync(TestCluster.Timeout);
        return _process.ExitCode;
    }

    public async Task WriteLineAsync(string line)
    {
        await _process.StandardInput.WriteLineAsync(line);
        await _process.StandardInput.FlushAsync();
    }

    /// <summary>SIGKILLs the process, or its whole tree.</summary>
    public void Kill(bool entireProcessTree = false) => _process.Kill(entireProcessTree);

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited) _process.Kill(entireProcessTree: true);
        await _process.WaitForExitAsync().WaitAsync(TestCluster.Timeout);
        // Not waiting for the output's end: a process that left the tree (an upgraded primary) may hold it open.
        _process.Dispose();
    }

    private static async Task ReadAsync(StreamReader reader, OutputLines lines)
    {
        try
        {
            while (await reader.ReadLineAsync() is { } line) lines.Add(line);
        }
        catch (Exception ex) when (ex is ObjectDisposedException or IOException)
        {
            // disposed while another process still held the output open
        }
        finally
        {
            lines.End();
        }
    }
}

/// <summary>The lines a process wrote to one of its outputs, so far; a test waits for the one it expects.</summary>
internal sealed class OutputLines(string stream)
{
    private readonly List<string> _lines = [];
    private readonly Lock _gate = new();
    private TaskCompletionSource _more = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private bool _ended;

    public IReadOnlyList<string> Lines
    {
        get
        {
            lock (_gate) return [.. _lines];
        }
    }

    public int Count
    {
        get
        {
            lock (_gate) return _lines.Count;
        }
    }

    /// <summary>Waits, at most <see cref="TestCluster.Timeout"/>, for the first line from index <paramref name="from"/> on that matches.</summary>
    public async Task<string> WaitForAsync(Func<string, bool> match, int from = 0)
    {
        using var timeout = new CancellationTokenSource(TestCluster.Timeout);
        int index = await IndexOfAsync(match, from, timeout.Token);
        lock (_gate) return _lines[index];
    }

    /// <summary>Waits, at most <see cref="TestCluster.Timeout"/> in all, until <paramref name="count"/> lines match.</summary>
    public async Task WaitForAsync(Func<string, bool> match, int count, string what)
    {
        using var timeout = new CancellationTokenSource(TestCluster.Timeout);
        for (int found = 0, from = 0; found < count; found++) from = await IndexOfAsync(match, from, timeout.Token, what) + 1;
    }

    /// <summary>The line at <paramref name="index"/>, once there is one; for a test that reads every line in turn, bounded as a whole by <paramref name="cancellationToken"/>.</summary>
    public async Task<string> LineAsync(int index, CancellationToken cancellationToken)
    {
        await IndexOfAsync(_ => true, index, cancellationToken, $"line {index}");
        lock (_gate) return _lines[index];
    }

    private async Task<int> IndexOfAsync(Func<string, bool> match, int from, CancellationToken timeout, string what = "the line awaited")
    {
        while (true)
        {
            Task more;
            lock (_gate)
            {
                for (int i = from; i < _lines.Count; i++)
                {
                    if (match(_lines[i])) return i;
                }
                if (_ended) throw new InvalidOperationException($"Its {stream} ended without {what}; it said:{Environment.NewLine}{this}");
                from = _lines.Count;
                more = _more.Task;
            }
            try
            {
                await more.WaitAsync(timeout);
            }
            catch (OperationCanceledException)
            {
                throw new TimeoutException($"Still waiting on {stream}, after {TestCluster.Timeout}, for {what}; it said:{Environment.NewLine}{this}");
            }
        }
    }

    /// <summary>The lines, each ended by a newline.</summary>
    public override string ToString() => string.Concat(Lines.Select(line => line + "\n"));

    internal void Add(string line)
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

    internal void End()
    {
        lock (_gate)
        {
            _ended = true;
            _more.TrySetResult();
        }
    }
}
