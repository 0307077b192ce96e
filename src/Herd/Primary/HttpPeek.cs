using System.Collections.Concurrent;
using System.Diagnostics;
using System.Text;
using Herd.Native;

namespace Herd.Primary;

/// <summary>What a peek at a new connection's first bytes found.</summary>
internal enum Peeked
{
    /// <summary>A plain HTTP request line with SignalR's connection token (<c>?id=</c>).</summary>
    Token,

    /// <summary>A plain HTTP request line without one: a new client.</summary>
    Http,

    /// <summary>Bytes that are not a plain HTTP request line (a TLS ClientHello, another protocol, a line too long).</summary>
    Other,

    /// <summary>Nothing within <see cref="HttpPeek.Wait"/>, or the client closed or failed first.</summary>
    Silent,
}

/// <summary>
/// Reads each new connection's request line with MSG_PEEK, leaving every byte for the worker. The accept thread peeks
/// once without waiting (<see cref="Examine"/>); a connection whose line is not there yet is handed to this class's
/// thread, so a client that sends nothing delays nobody but itself, for <see cref="Wait"/> at most. One poll(2) watches every connection being peeked; a partial line is looked at again
/// a few milliseconds later (poll would report it readable at once, the bytes being still there).
/// </summary>
internal sealed class HttpPeek : IDisposable
{
    /// <summary>How long a connection may stay silent before it goes without its request line.</summary>
    internal static readonly TimeSpan Wait = TimeSpan.FromMilliseconds(500);

    /// <summary>How much of a connection is peeked at: a request line longer than this is <see cref="Peeked.Other"/>.</summary>
    internal const int Limit = 4096;

    private static readonly long PartialRecheck = Stopwatch.Frequency / 200;

    private readonly ConcurrentQueue<(SafeFdHandle Connection, ulong? Source)> _incoming = new();
    private readonly EventFd _wake;
    private readonly Action<SafeFdHandle, ulong?, Peeked, string?> _done;
    private readonly Lock _gate = new(); // Add against Dispose: nothing is queued once the thread may have drained the queue
    private volatile bool _closed;

    /// <param name="name">Names the thread.</param>
    /// <param name="done">
    /// Called with each connection, the source it was added with, and what was found (the token, for
    /// <see cref="Peeked.Token"/>); it owns the connection then. Called on the peek thread, never under a lock of this class.
    /// </param>
    public HttpPeek(string name, Action<SafeFdHandle, ulong?, Peeked, string?> done)
    {
        _done = done;
        _wake = new EventFd();
        new Thread(Loop) { IsBackground = true, Name = $"herd peek {name}" }.Start();
    }

    public void Add(SafeFdHandle connection, ulong? source)
    {
        lock (_gate)
        {
            if (!_closed)
            {
                _incoming.Enqueue((connection, source));
                _wake.Signal();
                return;
            }
        }
        _done(connection, source, Peeked.Silent, null);
    }

    /// <summary>Stops peeking: what was being peeked goes to <c>done</c> as <see cref="Peeked.Silent"/>.</summary>
    public void Dispose()
    {
        lock (_gate)
        {
            if (_closed) return;
            _closed = true;
            _wake.Signal();
        }
    }

    private void Loop()
    {
        var peeking = new List<Entry>();
        var buffer = new byte[Limit];
        var polled = new List<int>(); // indexes into peeking, in the order of the poll set's [1..]
        var poll = new PollSet();
        while (!_closed)
        {
            long now = Stopwatch.GetTimestamp();
            while (_incoming.TryDequeue(out var added)) peeking.Add(new Entry(added.Connection, added.Source, now + (long)(Wait.TotalSeconds * Stopwatch.Frequency)));
            polled.Clear();
            long wakeAt = long.MaxValue;
            for (int i = 0; i < peeking.Count; i++)
            {
                var entry = peeking[i];
                if (entry.RecheckAt <= now) polled.Add(i);
                wakeAt = Math.Min(wakeAt, Math.Min(entry.Deadline, entry.RecheckAt > now ? entry.RecheckAt : long.MaxValue));
            }
            poll.Clear();
            poll.Add(_wake.Handle);
            foreach (int i in polled) poll.Add(peeking[i].Connection);
            int timeout = wakeAt == long.MaxValue ? -1 : (int)Math.Clamp((wakeAt - now) * 1000 / Stopwatch.Frequency + 1, 0, int.MaxValue);
            poll.Wait(timeout);
            if (poll.IsReady(0)) _wake.Reset();
            now = Stopwatch.GetTimestamp();
            var finished = new HashSet<int>();
            for (int i = 0; i < polled.Count; i++)
            {
                if (!poll.IsReady(i + 1)) continue;
                var entry = peeking[polled[i]];
                var (found, token) = Examine(entry.Connection, buffer);
                if (found is null)
                {
                    entry.RecheckAt = now + PartialRecheck;
                    continue;
                }
                finished.Add(polled[i]);
                _done(entry.Connection, entry.Source, found.Value, token);
            }
            for (int i = peeking.Count - 1; i >= 0; i--)
            {
                if (finished.Contains(i)) peeking.RemoveAt(i);
                else if (peeking[i].Deadline <= now)
                {
                    _done(peeking[i].Connection, peeking[i].Source, Peeked.Silent, null);
                    peeking.RemoveAt(i);
                }
            }
        }
        foreach (var entry in peeking) _done(entry.Connection, entry.Source, Peeked.Silent, null);
        while (_incoming.TryDequeue(out var added)) _done(added.Connection, added.Source, Peeked.Silent, null);
        lock (_gate) _wake.Dispose();
    }

    /// <summary>Peeks without waiting; Found is null while the request line is still coming.</summary>
    internal static (Peeked? Found, string? Token) Examine(SafeFdHandle connection, byte[] buffer)
    {
        int read = Peek.Read(connection, buffer);
        if (read <= 0) return read == -Libc.EAGAIN ? (null, null) : (Peeked.Silent, null);
        return Parse(buffer.AsSpan(0, read));
    }

    /// <summary>Reads a request line: <c>METHOD target HTTP/x</c>, and SignalR's <c>id</c> in the target's query.</summary>
    internal static (Peeked? Found, string? Token) Parse(ReadOnlySpan<byte> data)
    {
        int method = 0;
        while (method < data.Length && data[method] is >= (byte)'A' and <= (byte)'Z') method++;
        if (method < data.Length && (method == 0 || data[method] != (byte)' ')) return (Peeked.Other, null);
        int end = data.IndexOf((byte)'\n');
        if (end < 0) return data.Length >= Limit ? (Peeked.Other, null) : (null, null);
        var line = data[..end].TrimEnd((byte)'\r');
        int space = line.LastIndexOf((byte)' ');
        if (space <= method || !line[(space + 1)..].StartsWith("HTTP/"u8)) return (Peeked.Other, null);
        var target = line[(method + 1)..space];
        int query = target.IndexOf((byte)'?');
        if (query < 0) return (Peeked.Http, null);
        foreach (var range in target[(query + 1)..].Split((byte)'&'))
        {
            var pair = target[(query + 1)..][range];
            if (pair.StartsWith("id="u8) && pair.Length > 3 && pair.Length - 3 <= StickyRouter.MaxTokenLength * 3)
                return (Peeked.Token, Uri.UnescapeDataString(Encoding.ASCII.GetString(pair[3..])));
        }
        return (Peeked.Http, null);
    }

    private sealed class Entry(SafeFdHandle connection, ulong? source, long deadline)
    {
        public SafeFdHandle Connection { get; } = connection;
        public ulong? Source { get; } = source;
        public long Deadline { get; } = deadline;
        public long RecheckAt { get; set; }
    }
}
