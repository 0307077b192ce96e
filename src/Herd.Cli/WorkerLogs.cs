using System.Threading.Channels;

namespace Herd.Cli;

/// <summary>
/// The workers' merged output for <c>herd logs</c>: every line a worker writes is prefixed with its id, echoed on
/// the primary's own stdout or stderr, kept in a ring of the latest lines, and streamed to followers.
/// </summary>
internal sealed class WorkerLogs
{
    private const int Kept = 1000;

    private readonly Lock _gate = new();
    private readonly Queue<string> _latest = new();
    private readonly List<ChannelWriter<string>> _followers = [];

    /// <summary>Starts reading a silent worker's stdout and stderr.</summary>
    public void Attach(Worker worker)
    {
        async Task ForwardAsync(Stream? output, TextWriter echo)
        {
            if (output is null) return;
            using var reader = new StreamReader(output);
            try
            {
                while (await reader.ReadLineAsync().ConfigureAwait(false) is { } data)
                {
                    var line = $"[{worker.Id}] {data}";
                    echo.WriteLine(line);
                    Add(line);
                }
            }
            catch (Exception ex) when (ex is ObjectDisposedException or IOException)
            {
                // Herd closed an output a grandchild kept open after the worker exited.
            }
        }
        _ = ForwardAsync(worker.Process.StandardOutput, Console.Out);
        _ = ForwardAsync(worker.Process.StandardError, Console.Error);
    }

    /// <summary>The latest lines, then, when following, every new one until <paramref name="cancellationToken"/> fires.</summary>
    public async IAsyncEnumerable<string> ReadAsync(bool follow, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        var live = Channel.CreateBounded<string>(new BoundedChannelOptions(Kept) { FullMode = BoundedChannelFullMode.DropOldest });
        string[] latest;
        lock (_gate)
        {
            latest = [.. _latest];
            if (follow) _followers.Add(live.Writer);
        }
        foreach (var line in latest) yield return line;
        if (!follow) yield break;
        try
        {
            await foreach (var line in live.Reader.ReadAllAsync(cancellationToken).ConfigureAwait(false)) yield return line;
        }
        finally
        {
            lock (_gate) _followers.Remove(live.Writer);
        }
    }

    /// <summary>The last <paramref name="count"/> lines worker <paramref name="workerId"/> wrote, prefix included: what a failure report shows.</summary>
    public IReadOnlyList<string> LastLines(int workerId, int count)
    {
        var prefix = $"[{workerId}] ";
        lock (_gate) return [.. _latest.Where(line => line.StartsWith(prefix, StringComparison.Ordinal)).TakeLast(count)];
    }

    private void Add(string line)
    {
        lock (_gate)
        {
            if (_latest.Count == Kept) _latest.Dequeue();
            _latest.Enqueue(line);
            foreach (var follower in _followers) follower.TryWrite(line);
        }
    }
}
