using System.Text;

namespace Herd.Cli;

/// <summary>
/// Everything <c>herd run</c> prints, and the workers' merged output for <c>herd logs</c>. From construction to
/// disposal it owns the primary's console: every line, the primary's own and each worker's (prefixed with its id),
/// reaches stdout or stderr through one writer thread, and a worker's lines are also kept in a ring for
/// <c>herd logs</c> and its followers.
/// </summary>
/// <remarks>
/// Nothing here waits on a reader. A worker's pipes are drained as fast as it writes, whatever the primary's stdout
/// does; a stdout that stalls (a FIFO nobody reads, a paused terminal) stalls only the writer thread, while each
/// source's lines wait in a buffer of <see cref="EchoBytes"/>, past which they are dropped, counted, and said in one
/// "[herd] N lines dropped" line once the writer gets through again. Lines longer than <see cref="MaxLineBytes"/>
/// are cut, with a marker; the ring holds <see cref="RingBytes"/>, and a follower that falls further behind is told
/// how many lines it missed.
/// </remarks>
internal sealed class WorkerLogs : IAsyncDisposable
{
    internal const int MaxLineBytes = 16 * 1024;
    internal const long RingBytes = 4 << 20;
    internal const int EchoBytes = 256 * 1024;
    private const int Primary = 0; // the source of herd's own lines: worker ids start at 1

    private readonly Lock _gate = new();
    private readonly Ring _ring = new();
    private readonly System.Collections.Concurrent.ConcurrentDictionary<int, Task> _reading = new(); // worker id → its pipes still being read
    private readonly Echo _echo = new();
    private readonly TextWriter _out = Console.Out;
    private readonly TextWriter _error = Console.Error;
    private TaskCompletionSource _more = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public WorkerLogs()
    {
        Console.SetOut(new LineWriter(line => _echo.Write(Primary, line, error: false)));
        Console.SetError(new LineWriter(line => _echo.Write(Primary, line, error: true)));
    }

    /// <summary>Starts reading a silent worker's stdout and stderr.</summary>
    public void Attach(Worker worker)
    {
        var reading = Task.WhenAll(
            worker.Process.StandardOutput is { } stdout ? ReadLinesAsync(stdout, text => Add(worker.Id, text, error: false)) : Task.CompletedTask,
            worker.Process.StandardError is { } stderr ? ReadLinesAsync(stderr, text => Add(worker.Id, text, error: true)) : Task.CompletedTask);
        _reading[worker.Id] = reading;
        _ = reading.ContinueWith(_ => _reading.TryRemove(worker.Id, out Task? _), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    /// <summary>
    /// <see cref="LastLines"/> once the worker's pipes are read to their end, or after a second: its exit is seen
    /// through its pidfd, often before its last words have come through its pipes.
    /// </summary>
    public async Task<IReadOnlyList<string>> LastLinesAsync(int workerId, int count)
    {
        if (_reading.TryGetValue(workerId, out var reading))
            await Task.WhenAny(reading, Task.Delay(TimeSpan.FromSeconds(1))).ConfigureAwait(false);
        return LastLines(workerId, count);
    }

    /// <summary>
    /// What <c>herd logs</c> sends: the kept lines, then, when following, every new one until
    /// <paramref name="cancellationToken"/> fires; each item is one or more whole lines, each ending in a newline. A
    /// follower that falls more than the ring behind gets "[herd] N lines dropped" in place of what it missed.
    /// </summary>
    public async IAsyncEnumerable<string> ReadAsync(bool follow, [System.Runtime.CompilerServices.EnumeratorCancellation] CancellationToken cancellationToken)
    {
        long next, end;
        lock (_gate)
        {
            next = _ring.Oldest;
            end = follow ? long.MaxValue : _ring.Next;
        }
        var text = new StringBuilder();
        while (next < end)
        {
            Task more;
            lock (_gate)
            {
                long missed = _ring.Read(ref next, Math.Min(end, next + 1000), text);
                if (missed > 0) text.Insert(0, $"[herd] {missed} lines dropped\n");
                more = _more.Task;
            }
            if (text.Length > 0)
            {
                yield return text.ToString();
                text.Clear();
            }
            else if (next < end)
            {
                await more.WaitAsync(cancellationToken).ConfigureAwait(false);
            }
        }
    }

    /// <summary>The last <paramref name="count"/> lines worker <paramref name="workerId"/> wrote, prefix included: what a failure report shows.</summary>
    private IReadOnlyList<string> LastLines(int workerId, int count)
    {
        lock (_gate) return _ring.LastLines(workerId, count);
    }

    /// <summary>Writes what is waiting, for a second at most (a stdout nobody reads must not keep herd from exiting), and gives the console back.</summary>
    public async ValueTask DisposeAsync()
    {
        await _echo.DisposeAsync().ConfigureAwait(false);
        Console.SetOut(_out);
        Console.SetError(_error);
    }

    private void Add(int workerId, string text, bool error)
    {
        var line = $"[{workerId}] {text}";
        TaskCompletionSource more;
        lock (_gate)
        {
            _ring.Add(workerId, line);
            more = _more;
            _more = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        more.SetResult();
        _echo.Write(workerId, line, error);
    }

    /// <summary>
    /// Splits a pipe's bytes into UTF-8 lines, as fast as they come: a line past <see cref="MaxLineBytes"/> keeps its
    /// start and says how much was cut. Ends with the pipe (or when reading fails: the worker is gone).
    /// </summary>
    internal static async Task ReadLinesAsync(Stream stream, Action<string> onLine)
    {
        var buffer = new byte[64 * 1024];
        var line = new byte[MaxLineBytes];
        int length = 0;
        long cut = 0;
        try
        {
            int read;
            while ((read = await stream.ReadAsync(buffer).ConfigureAwait(false)) > 0)
            {
                var chunk = buffer.AsMemory(0, read);
                while (!chunk.IsEmpty)
                {
                    int end = chunk.Span.IndexOf((byte)'\n');
                    var part = end < 0 ? chunk : chunk[..end];
                    int kept = Math.Min(part.Length, MaxLineBytes - length);
                    part.Span[..kept].CopyTo(line.AsSpan(length));
                    length += kept;
                    cut += part.Length - kept;
                    if (end < 0) break;
                    onLine(Decode(line, length, cut));
                    (length, cut) = (0, 0);
                    chunk = chunk[(end + 1)..];
                }
            }
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException)
        {
            // the pipe broke: what was read still counts
        }
        finally
        {
            await stream.DisposeAsync().ConfigureAwait(false);
        }
        if (length > 0 || cut > 0) onLine(Decode(line, length, cut));
    }

    private static string Decode(byte[] line, int length, long cut)
    {
        if (cut == 0 && length > 0 && line[length - 1] == '\r') length--;
        var text = Encoding.UTF8.GetString(line, 0, length);
        return cut == 0 ? text : $"{text} [herd] line cut: {cut} more bytes dropped";
    }

    /// <summary>The latest workers' lines, bounded by memory rather than by count, each numbered in order.</summary>
    private sealed class Ring
    {
        private (int WorkerId, string Line)[] _entries = new (int, string)[1024];
        private int _head;
        private int _count;
        private long _bytes;

        /// <summary>The number the next line will have.</summary>
        public long Next { get; private set; }

        /// <summary>The number of the oldest line kept.</summary>
        public long Oldest => Next - _count;

        public void Add(int workerId, string line)
        {
            if (_count == _entries.Length)
            {
                var grown = new (int, string)[_entries.Length * 2];
                for (int i = 0; i < _count; i++) grown[i] = At(i);
                (_entries, _head) = (grown, 0);
            }
            _entries[(_head + _count) % _entries.Length] = (workerId, line);
            _count++;
            _bytes += Cost(line);
            Next++;
            while (_bytes > RingBytes && _count > 1)
            {
                _bytes -= Cost(_entries[_head].Line);
                _entries[_head] = default;
                _head = (_head + 1) % _entries.Length;
                _count--;
            }
        }

        /// <summary>Appends lines <paramref name="next"/> to <paramref name="end"/> (those still kept) and moves past them; returns how many were no longer kept.</summary>
        public long Read(ref long next, long end, StringBuilder text)
        {
            long missed = Math.Max(0, Oldest - next);
            for (next += missed; next < Math.Min(end, Next); next++) text.Append(At((int)(next - Oldest)).Line).Append('\n');
            return missed;
        }

        public string[] LastLines(int workerId, int count)
        {
            var lines = new List<string>(count);
            for (int i = _count - 1; i >= 0 && lines.Count < count; i--)
            {
                if (At(i).WorkerId == workerId) lines.Add(At(i).Line);
            }
            lines.Reverse();
            return [.. lines];
        }

        private (int WorkerId, string Line) At(int index) => _entries[(_head + index) % _entries.Length];

        private static long Cost(string line) => 2L * line.Length + 40; // UTF-16, with the string's header and the entry's slot
    }

    /// <summary>
    /// The writer thread and each source's buffer. A source past <see cref="EchoBytes"/> drops every line until the
    /// writer has taken what it had, so that the "N lines dropped" line lands where the lines went missing.
    /// </summary>
    private sealed class Echo : IAsyncDisposable
    {
        private readonly Lock _gate = new();
        private readonly Dictionary<int, Source> _sources = [];
        private readonly SemaphoreSlim _work = new(0);
        private readonly TaskCompletionSource _finished = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly Stream _stdout = Console.OpenStandardOutput();
        private readonly Stream _stderr = Console.OpenStandardError();
        private bool _signalled;
        private bool _stopping;

        public Echo() => new Thread(Run) { IsBackground = true, Name = "herd output" }.Start();

        public void Write(int source, string line, bool error)
        {
            lock (_gate)
            {
                if (!_sources.TryGetValue(source, out var pending)) _sources[source] = pending = new Source();
                int size = line.Length + 1; // its size in UTF-8 for ASCII, and near enough otherwise
                if (pending.Dropped > 0 || (pending.Bytes > 0 && pending.Bytes + size > EchoBytes))
                {
                    pending.Dropped++;
                    return;
                }
                pending.Lines.Enqueue((line, error));
                pending.Bytes += size;
                if (_signalled) return;
                _signalled = true;
            }
            _work.Release();
        }

        public async ValueTask DisposeAsync()
        {
            lock (_gate) _stopping = true;
            _work.Release();
            try
            {
                await _finished.Task.WaitAsync(TimeSpan.FromSeconds(1)).ConfigureAwait(false);
            }
            catch (TimeoutException)
            {
                // the sink is stuck: what it did not take is lost, and herd exits regardless
            }
        }

        private void Run()
        {
            var batch = new List<(string Line, bool Error)>();
            var bytes = new MemoryStream();
            while (true)
            {
                _work.Wait();
                bool stopping;
                lock (_gate)
                {
                    _signalled = false;
                    stopping = _stopping;
                }
                // One source at a time, each taken whole: the writer may then block on the sink with no lock held.
                foreach (int source in Sources())
                {
                    lock (_gate)
                    {
                        var pending = _sources[source];
                        while (pending.Lines.TryDequeue(out var line)) batch.Add(line);
                        if (pending.Dropped > 0)
                        {
                            batch.Add((source == Primary ? $"herd: [herd] {pending.Dropped} lines dropped" : $"[{source}] [herd] {pending.Dropped} lines dropped", true));
                            pending.Dropped = 0;
                        }
                        pending.Bytes = 0;
                        _sources.Remove(source); // a new line makes it anew: a worker that left leaves nothing behind
                    }
                    Send(batch, bytes);
                    batch.Clear();
                }
                if (stopping) break;
            }
            _finished.TrySetResult();
        }

        private int[] Sources()
        {
            lock (_gate) return [.. _sources.Keys];
        }

        // Consecutive lines to one stream go in one write.
        private void Send(List<(string Line, bool Error)> lines, MemoryStream bytes)
        {
            for (int i = 0; i < lines.Count;)
            {
                bool error = lines[i].Error;
                bytes.SetLength(0);
                for (; i < lines.Count && lines[i].Error == error; i++)
                {
                    bytes.Write(Encoding.UTF8.GetBytes(lines[i].Line));
                    bytes.WriteByte((byte)'\n');
                }
                try
                {
                    (error ? _stderr : _stdout).Write(bytes.GetBuffer(), 0, (int)bytes.Length);
                }
                catch (IOException)
                {
                    // nobody reads any more (EPIPE): the lines go nowhere, as they would have
                }
            }
        }

        private sealed class Source
        {
            public Queue<(string Line, bool Error)> Lines { get; } = new();
            public int Bytes { get; set; }
            public int Dropped { get; set; }
        }
    }

    /// <summary>A console writer that hands each whole line on.</summary>
    private sealed class LineWriter(Action<string> onLine) : TextWriter
    {
        private readonly StringBuilder _line = new();

        public override Encoding Encoding => Encoding.UTF8;

        public override void Write(char value)
        {
            if (value == '\n')
            {
                if (_line.Length > 0 && _line[^1] == '\r') _line.Length--;
                onLine(_line.ToString());
                _line.Clear();
            }
            else
            {
                _line.Append(value);
            }
        }

        public override void Write(string? value)
        {
            foreach (char c in value ?? "") Write(c);
        }
    }
}
