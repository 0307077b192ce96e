using System.Buffers;
using System.Diagnostics;
using System.Runtime.InteropServices;
using Herd.Native;

namespace Herd.Ipc;

/// <summary>
/// Framed messages, with fds, over one private AF_UNIX SOCK_SEQPACKET socket. One record per sendmsg keeps fds
/// tied to their message; frames larger than a record travel as several records, the last one carrying the fds.
/// Each channel reads on a thread of its own with blocking recvmsg, so a message costs one wakeup and no hop
/// through the thread pool. Sends never block: a full socket buffer queues the rest for a drain thread, in order.
/// </summary>
internal sealed class WorkerChannel : IDisposable
{
    /// <summary>Largest record; SEQPACKET records must fit the socket buffer whole.</summary>
    internal const int MaxRecord = 64 * 1024;

    /// <summary>Largest frame a peer may send; beyond it the peer is cut off, not buffered.</summary>
    internal const int MaxFrame = 16 * 1024 * 1024;

    /// <summary>Most fds one frame may carry.</summary>
    internal const int MaxFdsPerFrame = 16;

    // Set on the kind byte of every record of a frame but its last.
    private const byte More = 0x80;

    private readonly SafeFdHandle _handle;
    private readonly int _fd;
    private readonly Lock _sendLock = new();
    private Queue<Outgoing>? _backlog;
    private bool _closed;
    private int _closedReported;
    private readonly TaskCompletionSource _ended = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private IChannelHandler? _handler;

    public WorkerChannel(SafeFdHandle fd)
    {
        _handle = fd;
        _fd = fd.Fd;
    }

    public bool IsClosed => Volatile.Read(ref _closed);

    /// <summary>Completes once the receive loop has ended and the handler has heard of it.</summary>
    public Task Ended => _ended.Task;

    public void Start(IChannelHandler handler)
    {
        _handler = handler;
        new Thread(ReceiveLoop) { IsBackground = true, Name = "herd channel" }.Start();
    }

    /// <summary>Sends one frame (<c>frame[0]</c> is its kind), with an optional fd. False when the channel is closed.</summary>
    public bool Send(ReadOnlySpan<byte> frame, SafeHandle? fd = null) =>
        fd is null ? Send(frame, ReadOnlySpan<SafeHandle>.Empty) : Send(frame, new ReadOnlySpan<SafeHandle>(in fd));

    /// <summary>Sends one frame with up to <see cref="MaxFdsPerFrame"/> fds, in order. False when the channel is closed.</summary>
    public bool Send(ReadOnlySpan<byte> frame, ReadOnlySpan<SafeHandle> fds)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(fds.Length, MaxFdsPerFrame);
        lock (_sendLock)
        {
            if (_closed) return false;
            if (frame.Length <= MaxRecord)
                return SendRecord(frame, fds);
            byte kind = frame[0];
            var rest = frame[1..];
            var record = ArrayPool<byte>.Shared.Rent(MaxRecord);
            try
            {
                while (!rest.IsEmpty)
                {
                    int take = Math.Min(rest.Length, MaxRecord - 1);
                    bool last = take == rest.Length;
                    record[0] = last ? kind : (byte)(kind | More);
                    rest[..take].CopyTo(record.AsSpan(1));
                    if (!SendRecord(record.AsSpan(0, take + 1), last ? fds : default)) return false;
                    rest = rest[take..];
                }
                return true;
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(record);
            }
        }
    }

    private bool SendRecord(ReadOnlySpan<byte> record, ReadOnlySpan<SafeHandle> fds)
    {
        Debug.Assert(_sendLock.IsHeldByCurrentThread);
        if (_backlog is null)
        {
            int result = ScmRights.Send(_fd, record, fds);
            if (result >= 0) return true;
            if (result != -Libc.EAGAIN)
            {
                CloseForSend();
                return false;
            }
            _backlog = new Queue<Outgoing>();
            Task.Factory.StartNew(Drain, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        }
        _backlog.Enqueue(Outgoing.Create(record, fds));
        return true;
    }

    private void Drain()
    {
        while (true)
        {
            Fd.WaitWritable(_fd, 250);
            lock (_sendLock)
            {
                if (_closed) return;
                while (_backlog!.TryPeek(out var next))
                {
                    int result = ScmRights.Send(_fd, next.Record, next.Fds);
                    if (result == -Libc.EAGAIN) break;
                    _backlog.Dequeue().Release();
                    if (result < 0)
                    {
                        CloseForSend();
                        return;
                    }
                }
                if (_backlog.Count == 0)
                {
                    _backlog = null;
                    return;
                }
            }
        }
    }

    // Under _sendLock. The receive loop sees the same end of stream and reports it.
    private void CloseForSend()
    {
        Debug.Assert(_sendLock.IsHeldByCurrentThread);
        _closed = true;
        if (_backlog is null) return;
        while (_backlog.TryDequeue(out var item)) item.Release();
    }

    private void ReceiveLoop()
    {
        string? error = null;
        var buffer = new byte[MaxRecord];
        var fds = new ReceivedFds();
        var partial = new ArrayBufferWriter<byte>();
        var partialFds = new List<SafeFdHandle>();
        bool added = false;
        try
        {
            _handle.DangerousAddRef(ref added); // the fd number stays ours until this loop ends, even after Dispose
            error = Receive(buffer, fds, partial, partialFds);
        }
        catch (ObjectDisposedException) when (!added)
        {
            // Disposed before it started.
        }
#pragma warning disable CA1031 // a bug in a handler ends this channel, loudly, and nothing else
        catch (Exception ex)
#pragma warning restore CA1031
        {
            error = $"an internal error handling its message: {ex}";
        }
        finally
        {
            foreach (var fd in partialFds) fd.Dispose();
            if (added) _handle.DangerousRelease();
            Close(error);
        }
    }

    // Reads records until end of stream (null) or a protocol error (its description).
    private string? Receive(byte[] buffer, ReceivedFds fds, ArrayBufferWriter<byte> partial, List<SafeFdHandle> partialFds)
    {
        Span<int> raw = stackalloc int[MaxFdsPerFrame];
        while (true)
        {
            int n = ScmRights.Receive(_fd, buffer, raw, out int fdCount, out bool truncated, out bool oversized);
            if (n == 0 || n == -Libc.ECONNRESET || Volatile.Read(ref _closed)) return null;
            if (n < 0) return $"recvmsg failed: errno {-n}";
            for (int i = 0; i < fdCount; i++) partialFds.Add(new SafeFdHandle(raw[i]));
            if (truncated || partialFds.Count > MaxFdsPerFrame) return "fds were lost: more than a frame may carry, or this process is out of fds";
            if (oversized) return $"sent a record over {MaxRecord} bytes";
            byte header = buffer[0];
            var record = buffer.AsSpan(0, n);
            if ((header & More) == 0 && partial.WrittenCount == 0)
            {
                if (Deliver(record, fds, partialFds) is { } breach) return breach;
                continue;
            }
            if (partial.WrittenCount == 0) partial.Write([(byte)(header & ~More)]);
            else if ((header & ~More) != partial.WrittenSpan[0]) return "interleaved frames";
            if (partial.WrittenCount + n > MaxFrame) return $"sent a frame over {MaxFrame} bytes";
            partial.Write(record[1..]);
            if ((header & More) != 0) continue;
            if (Deliver(partial.WrittenSpan, fds, partialFds) is { } error) return error;
            partial.ResetWrittenCount();
        }
    }

    private string? Deliver(ReadOnlySpan<byte> frame, ReceivedFds fds, List<SafeFdHandle> pending)
    {
        fds.Reset(pending);
        pending.Clear();
        try
        {
            var kind = (FrameKind)frame[0];
            return Frames.Read(_handler!, kind, frame, fds)
                ?? (fds.Count > 0 ? $"sent {fds.Count} fd(s) with a frame of kind {kind}, which carries none" : null);
        }
        finally
        {
            fds.DisposeRest();
        }
    }

    private void Close(string? error)
    {
        Dispose();
        if (Interlocked.Exchange(ref _closedReported, 1) == 0) _handler?.OnClosed(error);
        _ended.TrySetResult();
    }

    /// <summary>Closes the channel; the peer sees end of stream. Queued sends are dropped.</summary>
    public void Dispose()
    {
        lock (_sendLock)
        {
            if (_handle.IsClosed) return;
            CloseForSend();
            Fd.Shutdown(_handle); // wakes the reader; the fd closes when it lets go
        }
        _handle.Dispose();
    }

    private readonly record struct Outgoing(byte[] Record, SafeHandle[] Fds)
    {
        public static Outgoing Create(ReadOnlySpan<byte> record, ReadOnlySpan<SafeHandle> fds)
        {
            var held = new List<SafeHandle>(fds.Length);
            foreach (var fd in fds)
            {
                bool added = false;
                try
                {
                    fd.DangerousAddRef(ref added);
                }
                catch (ObjectDisposedException)
                {
                    // closed by its owner first: it is sent without it, as ScmRights.Send does
                }
                if (added) held.Add(fd);
            }
            return new Outgoing(record.ToArray(), [.. held]);
        }

        public void Release()
        {
            foreach (var fd in Fds) fd.DangerousRelease();
        }
    }
}

/// <summary>The fds that came with one frame. A handler takes what it owns; the rest are closed.</summary>
internal sealed class ReceivedFds
{
    private readonly List<SafeFdHandle> _fds = [];

    public int Count => _fds.Count;

    /// <summary>Takes ownership of the frame's first fd, or null if it brought none.</summary>
    public SafeFdHandle? Take()
    {
        if (_fds.Count == 0) return null;
        var fd = _fds[0];
        _fds.RemoveAt(0);
        return fd;
    }

    internal void Reset(List<SafeFdHandle> fds)
    {
        _fds.Clear();
        _fds.AddRange(fds);
    }

    internal void DisposeRest()
    {
        foreach (var fd in _fds) fd.Dispose();
        _fds.Clear();
    }
}
