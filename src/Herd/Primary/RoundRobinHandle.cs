using System.Diagnostics;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using Herd.Ipc;
using Herd.Native;
using Herd.Net;

namespace Herd.Primary;

/// <summary>
/// SCHED_RR (Node's round_robin_handle.js): the primary accepts every connection and hands it to the workers in
/// turn over their channels, keeping its own copy until the worker answers <c>accepted</c>. A refused connection,
/// or one held by a worker that dies or whose channel closes before it answers, goes to another worker: none is
/// lost. Each worker has at most <see cref="Window"/> connections in flight, so a stuck worker stops being chosen.
/// Least-busy dispatch is the same machinery with another choice of worker. A worker gets connections only once it is
/// ready (<see cref="Worker.Ready"/>): one whose health checks still fail, replacing another in a reload, gets none,
/// and connections wait for a ready worker rather than meet it early. Sticky dispatch (<see cref="SchedulingPolicy.Sticky"/>,
/// <see cref="SchedulingPolicy.StickyAddress"/>) is the same machinery again: a connection may name the worker it
/// belongs to (its SignalR token's, or its source address's), and waits parked for that worker's room rather than go
/// to another, while that worker is there; new clients go round robin.
/// </summary>
internal sealed class RoundRobinHandle : ServerHandle
{
    // Deep enough that a worker that keeps accepting never fills it (strict turns, equal shares), shallow enough that
    // a worker that stops accepting holds few connections until it dies and they move on.
    internal const int Window = 64;

    // Connections the primary holds while no worker has room (none left, or all stuck). Past it the accept thread
    // waits and the kernel's backlog queues the rest: the primary's fds stay bounded under any flood.
    internal const int MaxQueued = 4096;

    // Connections taken in one wake-up before any goes out: each worker gets its share in one frame. Small, because the
    // first waits for the last: at a few µs an accept4, 16 add well under a millisecond.
    private const int AcceptBatch = NewConn.MaxCount;

    // What a worker passed over may catch up on in a row (NextMember): one batch's worth.
    private const int MaxOwed = AcceptBatch;

    private readonly Socket? _listener;
    private readonly ListeningAddress? _local;
    private readonly SocketError _error;
    private readonly Action<RoundRobinHandle> _retired;
    private readonly ConnectionCounters _counters;
    private readonly bool _leastBusy;
    private readonly bool _byAddress;
    private readonly StickyRouter? _tokens;
    private readonly HttpPeek? _peek;
    private readonly Lock _gate = new();
    private readonly List<Member> _members = [];
    private readonly HashSet<int> _awaited = []; // slots whose worker died holding the handle: their replacements are coming
    private readonly Queue<Pending> _retry = new();
    private readonly Queue<Pending> _pending = new();
    private readonly Dictionary<uint, InFlight> _inFlight = [];
    private readonly SafeHandle[] _fds = new SafeHandle[NewConn.MaxCount]; // Hand's, under _gate
    private readonly object _room = new();
    private readonly EventFd? _wake;
    private readonly TaskCompletionSource _acceptEnded = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _settled = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private bool _acceptStopped;
    private bool _full;
    private int _parked;  // waiting for the room of the worker they belong to
    private int _peeking; // with the peek thread
    private int _next;
    private uint _lastConnectionId;
    private bool _closed;

    public RoundRobinHandle(string key, int id, AddressKey address, int backlog, Socket? inherited, ConnectionCounters counters, SchedulingPolicy policy,
        StickyRouter tokens, Action<RoundRobinHandle> retired)
        : base(key, id)
    {
        _retired = retired;
        _counters = counters;
        _leastBusy = policy == SchedulingPolicy.LeastBusy;
        _byAddress = policy is SchedulingPolicy.Sticky or SchedulingPolicy.StickyAddress;
        try
        {
            _listener = inherited ?? Binder.BindAndListen(address.ToEndPoint(), backlog, reusePort: false);
        }
        catch (SocketException ex)
        {
            _error = ex.SocketErrorCode;
            _closed = true;
            _acceptEnded.SetResult();
            return;
        }
        if (policy == SchedulingPolicy.Sticky)
        {
            _tokens = tokens;
            _peek = new HttpPeek(key, OnPeeked);
        }
        // Another process may accept on this socket too (systemd's, or a primary taking over in an upgrade), so the
        // socket is never shut down, which would end it for them as well: accept4 never blocks (the flag is the
        // socket's, and that process accepts this way too), and the accept thread waits for readiness or a wake-up.
        _listener.Blocking = false;
        _local = ListeningAddress.Of(_listener.LocalEndPoint!, udp: false);
        _wake = new EventFd();
        new Thread(AcceptLoop) { IsBackground = true, Name = $"herd accept {key}" }.Start();
    }

    public override bool IsClosed => Volatile.Read(ref _closed);

    public override Socket? Listener => _listener;

    /// <summary>
    /// Stops accepting, the listening socket left open for whoever else has it: a primary taking over. What was accepted
    /// still goes to the workers; completes once the accept thread has left and every such connection has been taken.
    /// </summary>
    public override async Task StopAcceptingAsync()
    {
        lock (_gate)
        {
            Volatile.Write(ref _acceptStopped, true);
            Wake();
        }
        await _acceptEnded.Task.ConfigureAwait(false);
        lock (_gate) CheckSettled();
        await _settled.Task.ConfigureAwait(false);
    }

    /// <summary>Connections accepted and waiting for a worker with room.</summary>
    public int Queued
    {
        get
        {
            lock (_gate) return Waiting;
        }
    }

    private int Waiting
    {
        get
        {
            Debug.Assert(_gate.IsHeldByCurrentThread);
            return _retry.Count + _pending.Count + _parked + _peeking;
        }
    }

    public override void Add(Worker worker, InternalMessage reply)
    {
        if (_listener is null)
        {
            reply.SocketError = _error;
            worker.Channel.SendInternal(reply);
            return;
        }
        reply.HandleId = Id;
        reply.Address = _local!.Address;
        reply.Port = _local.Port;
        reply.LeastBusy = _leastBusy; // asks the worker to report how busy it is: under round robin it sends nothing
        reply.Sticky = _peek is not null; // asks the worker to report the SignalR tokens it issues
        worker.Channel.SendInternal(reply);
        lock (_gate)
        {
            // A newcomer starts level with the least-served worker rather than owed everything it missed.
            _members.Add(new Member(worker) { Dispatched = _members.Count == 0 ? 0 : _members.Min(m => m.Dispatched) });
            _awaited.Remove(worker.Slot);
            Pump();
        }
    }

    public override void Remove(Worker worker)
    {
        lock (_gate)
        {
            var member = _members.Find(m => m.Worker == worker);
            if (member is not null) Deactivate(member, died: false);
        }
    }

    public override void WorkerGone(Worker worker)
    {
        lock (_gate)
        {
            var member = _members.Find(m => m.Worker == worker);
            if (member is not null) Deactivate(member, died: true);
            RequeueHeldBy(worker);
            Pump();
            RetireIfDone();
        }
    }

    /// <summary>A worker's answer to newconn. False when it names no connection that worker holds.</summary>
    public bool OnAccepted(Worker worker, uint connectionId, bool ok)
    {
        SafeFdHandle? handed = null;
        lock (_gate)
        {
            if (!_inFlight.TryGetValue(connectionId, out var entry) || entry.Member.Worker != worker) return false;
            _inFlight.Remove(connectionId);
            entry.Member.InFlight--;
            if (ok)
            {
                handed = entry.Connection.Connection;
                _counters.Handed();
            }
            else
            {
                // The worker no longer has this server (it is closing); the connection goes to another.
                Requeue(entry.Connection);
                Deactivate(entry.Member, died: false);
            }
            Pump();
            RetireIfDone();
        }
        // The worker holds the connection now: this was only the primary's copy, and its close needs no lock, which
        // the accept thread wants meanwhile.
        handed?.Dispose();
        return true;
    }

    public override void Close()
    {
        lock (_gate)
        {
            foreach (var member in _members) Unpark(member);
            _members.Clear();
            CloseListener();
            foreach (var entry in _inFlight.Values) entry.Connection.Connection.Dispose();
            _counters.Refused(_inFlight.Count);
            _inFlight.Clear();
            RetireIfDone();
        }
    }

    /// <summary>
    /// Accepts on a thread of its own with accept4: no allocation and no thread hop per connection but the fd's handle,
    /// and under load no other call (poll only when nothing is left to take). The thread holds the listener's fd
    /// (<see cref="ListenerFd"/>) and closes it as it leaves; nothing else waits for it.
    /// </summary>
    private void AcceptLoop()
    {
        var listener = ListenerFd.Hold(_listener!);
        var backoff = new AcceptBackoff();
        Span<byte> address = stackalloc byte[ListenerFd.AddressRoom];
        var firstBytes = _peek is null ? null : new byte[HttpPeek.Limit];
        try
        {
            var taken = new Taken[AcceptBatch];
            int room = MaxQueued; // in the queue, after the last batch: the next takes no more, so MaxQueued holds exactly
            while (!Volatile.Read(ref _closed) && !Volatile.Read(ref _acceptStopped))
            {
                WaitForRoom();
                int count = 0, errno = 0, limit = Math.Clamp(room, 1, taken.Length);
                while (count < limit)
                {
                    var connection = listener.Accept(_byAddress ? address : default, out int length, out errno);
                    if (connection is null) break;
                    // A request line that is there already (the common case) is read now, without blocking; only the rest
                    // waits for the peek thread.
                    var (found, token) = firstBytes is null ? (Peeked.Http, null) : HttpPeek.Examine(connection, firstBytes);
                    taken[count++] = new Taken(connection, _byAddress ? SourceOf(address[..length]) : null, found, token);
                }
                if (count > 0)
                {
                    backoff.Succeeded();
                    if (!Dispatch(taken.AsSpan(0, count), out room)) return;
                    if (count == limit) continue;
                }
                if (errno == Libc.EAGAIN) listener.WaitReadable(_wake!.Handle);
                else if (errno is Libc.EINVAL or Libc.EBADF) return;
                else if (!AcceptBackoff.IsTransient(errno)) Thread.Sleep(backoff.Failed(Key, errno));
            }
        }
        finally
        {
            lock (_gate)
            {
                listener.Dispose();
                _wake!.Dispose();
            }
            _acceptEnded.SetResult();
        }
    }

    // On the accept thread: what one wake-up took goes to the workers under one lock, in as few frames as there are
    // workers. False when the handle closed: no worker is left for them. Handed over (StopAcceptingAsync), they still
    // go to one of ours.
    private bool Dispatch(Span<Taken> taken, out int room)
    {
        room = 0;
        _counters.Accepted(taken.Length);
        int peeking = 0;
        lock (_gate)
        {
            if (_closed)
            {
                foreach (var connection in taken) connection.Connection.Dispose();
                _counters.Refused(taken.Length);
                return false;
            }
            foreach (var (connection, source, found, token) in taken)
            {
                if (found is { } now) Enqueue(connection, source, now, token);
                else peeking++;
            }
            _peeking += peeking;
            Pump();
            if (Waiting >= MaxQueued) Volatile.Write(ref _full, true);
            room = MaxQueued - Waiting;
        }
        if (peeking > 0)
        {
            foreach (var (connection, source, found, _) in taken)
            {
                if (found is null) _peek!.Add(connection, source);
            }
        }
        taken.Clear();
        return true;
    }

    private void Wake()
    {
        _wake?.Signal(); // a no-op once the accept thread has left and closed it
        MakeRoom();
    }

    // The accept thread's only wait; never under _gate, which is taken inside _room and never the other way round.
    private void WaitForRoom()
    {
        lock (_room)
        {
            while (Volatile.Read(ref _full) && !Volatile.Read(ref _closed) && !Volatile.Read(ref _acceptStopped)) Monitor.Wait(_room);
        }
    }

    private void MakeRoom()
    {
        Volatile.Write(ref _full, false);
        lock (_room) Monitor.PulseAll(_room);
    }

    // On the peek thread.
    private void OnPeeked(SafeFdHandle connection, ulong? source, Peeked found, string? token)
    {
        lock (_gate)
        {
            _peeking--;
            if (_closed)
            {
                connection.Dispose();
                _counters.Refused();
                return;
            }
            Enqueue(connection, source, found, token);
            Pump();
        }
    }

    // Under _gate: what the connection's request line says decides where it goes. Plain HTTP with a token goes to the
    // token's worker; plain HTTP without one (or with one no worker here issued) is a new client for round robin; the
    // rest goes by its source address, as everything does under StickyAddress (no peek).
    private void Enqueue(SafeFdHandle connection, ulong? source, Peeked found, string? token)
    {
        Debug.Assert(_gate.IsHeldByCurrentThread);
        var owner = found == Peeked.Token ? _tokens!.Find(token!) : null;
        _pending.Enqueue(new Pending(connection, owner, _peek is null || found is Peeked.Other or Peeked.Silent ? source : null));
    }

    // Under _gate: hand queued connections to workers with room: to the worker they belong to, else in turn or to the
    // least busy. One whose worker has no room waits parked for it, and the others go on.
    private void Pump()
    {
        Debug.Assert(_gate.IsHeldByCurrentThread);
        do Assign();
        while (!Flush()); // a worker's channel closed under us: what it held is queued again, for the others
        if (_full && Waiting < MaxQueued) MakeRoom();
        CheckSettled();
    }

    // Under _gate: gives each waiting connection a member with room, into its batch.
    private void Assign()
    {
        Debug.Assert(_gate.IsHeldByCurrentThread);
        foreach (var member in _members)
        {
            while (member.Parked.Count > 0 && HasRoom(member))
            {
                _parked--;
                member.Batch.Add(member.Parked.Dequeue());
                member.InFlight++;
            }
        }
        while (_retry.Count + _pending.Count > 0)
        {
            var next = _retry.Count > 0 ? _retry.Peek() : _pending.Peek();
            var member = OwnerOf(next) ?? NextMember();
            if (member is null) break;
            if (_retry.Count > 0) _retry.Dequeue();
            else _pending.Dequeue();
            if (HasRoom(member))
            {
                member.Batch.Add(next);
                member.InFlight++;
            }
            else
            {
                member.Parked.Enqueue(next);
                _parked++;
            }
        }
    }

    // Under _gate: sends each member its batch, up to NewConn.MaxCount connections a frame. False when a worker's
    // channel closed under us: it is gone, and so is anything it held but never took.
    private bool Flush()
    {
        Debug.Assert(_gate.IsHeldByCurrentThread);
        foreach (var member in _members)
        {
            var batch = member.Batch;
            for (int sent = 0; sent < batch.Count; sent += NewConn.MaxCount)
            {
                int count = Math.Min(NewConn.MaxCount, batch.Count - sent);
                if (Hand(member, CollectionsMarshal.AsSpan(batch).Slice(sent, count))) continue;
                batch.RemoveRange(0, sent + count); // the rest of it: back in the queue with what the worker held
                foreach (var connection in batch) Requeue(connection);
                batch.Clear();
                Deactivate(member, died: true);
                RequeueHeldBy(member.Worker);
                return false;
            }
            batch.Clear();
        }
        return true;
    }

    // Under _gate: one newconn frame; the connections are in flight, numbered on from the last.
    private bool Hand(Member member, ReadOnlySpan<Pending> connections)
    {
        Debug.Assert(_gate.IsHeldByCurrentThread);
        Span<byte> frame = stackalloc byte[NewConn.Size];
        new NewConn(Id, _lastConnectionId + 1, connections.Length).Write(frame);
        for (int i = 0; i < connections.Length; i++)
        {
            _inFlight.Add(++_lastConnectionId, new InFlight(member, connections[i]));
            _fds[i] = connections[i].Connection;
        }
        bool sent = member.Worker.Channel.Send(frame, _fds.AsSpan(0, connections.Length));
        _fds.AsSpan(0, connections.Length).Clear();
        return sent;
    }

    // Under _gate: after StopAcceptingAsync, every connection accepted has gone to a worker, or was refused.
    private void CheckSettled()
    {
        Debug.Assert(_gate.IsHeldByCurrentThread);
        if (_acceptEnded.Task.IsCompleted && Waiting == 0 && _inFlight.Count == 0) _settled.TrySetResult();
    }

    private static bool HasRoom(Member member) => member.InFlight < Window && member.Worker.Ready.IsCompleted;

    // Under _gate: the ready worker a connection belongs to, if any: its token's, else the one its source address ranks
    // highest (rendezvous hashing: a worker that comes or goes moves only the addresses it wins or held).
    private Member? OwnerOf(Pending connection)
    {
        Debug.Assert(_gate.IsHeldByCurrentThread);
        Member? owner = null;
        if (connection.Owner is { } worker) owner = _members.Find(m => m.Worker == worker && m.Worker.Ready.IsCompleted);
        if (owner is null && connection.Source is { } source)
        {
            ulong best = 0;
            foreach (var member in _members)
            {
                if (!member.Worker.Ready.IsCompleted) continue;
                ulong score = Mix(source ^ Mix((ulong)member.Worker.Slot + 1));
                if (owner is null || score > best) (owner, best) = (member, score);
            }
        }
        if (owner is not null) owner.Dispatched++;
        return owner;
    }

    // An address's hash, IPv4 the same whether mapped into IPv6 or not; null for a Unix socket's peer.
    private static ulong? SourceOf(ReadOnlySpan<byte> address)
    {
        var bytes = ListenerFd.IpAddressOf(address);
        if (bytes.IsEmpty) return null;
        if (bytes.Length == 16 && bytes[..10].IndexOfAnyExcept((byte)0) < 0 && bytes[10] == 0xff && bytes[11] == 0xff) bytes = bytes[12..];
        ulong hash = 14695981039346656037; // FNV-1a
        foreach (byte b in bytes) hash = (hash ^ b) * 1099511628211;
        return hash;
    }

    // splitmix64's finalizer: spreads every bit of the input over the output.
    private static ulong Mix(ulong x)
    {
        x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9;
        x = (x ^ (x >> 27)) * 0x94d049bb133111eb;
        return x ^ (x >> 31);
    }

    private void Unpark(Member member)
    {
        _parked -= member.Parked.Count;
        while (member.Parked.TryDequeue(out var connection)) _retry.Enqueue(connection);
    }

    // The member with room that has been given the fewest connections, the earliest in turn on ties: strict round
    // robin while every worker keeps up, and equal shares over time when one is briefly full. A worker passed over is
    // owed at most MaxOwed connections: one that was stuck is not flooded when it recovers, and after a burst one worker
    // was too busy for (a flood of idle connections), the next clients meet both workers at once rather than up to two
    // windows' worth in a row on one. Least busy makes the same choice among the members whose load is least: equally
    // busy workers share evenly, and one passed over while it looked busier catches up once it no longer does.
    private Member? NextMember()
    {
        Member? best = null;
        int leastLoad = 0;
        long most = 0;
        for (int i = 0; i < _members.Count; i++)
        {
            var member = _members[(_next + i) % _members.Count];
            most = Math.Max(most, member.Dispatched);
            if (member.InFlight >= Window || !member.Worker.Ready.IsCompleted) continue;
            int load = _leastBusy ? member.Worker.Busy + member.InFlight : 0; // read once: the worker's reports change it
            if (best is null || load < leastLoad || (load == leastLoad && member.Dispatched < best.Dispatched)) (best, leastLoad) = (member, load);
        }
        if (best is null) return null;
        best.Dispatched = Math.Max(best.Dispatched, most - MaxOwed) + 1;
        _next = (_members.IndexOf(best) + 1) % _members.Count;
        return best;
    }

    private void RequeueHeldBy(Worker worker)
    {
        foreach (var (id, held) in _inFlight.Where(e => e.Value.Member.Worker == worker).ToList())
        {
            _inFlight.Remove(id);
            Requeue(held.Connection);
        }
    }

    private void Requeue(Pending connection)
    {
        if (_closed)
        {
            connection.Connection.Dispose(); // no worker left: refused outright, never left hanging
            _counters.Refused();
            return;
        }
        _retry.Enqueue(connection);
        _counters.Retried();
    }

    // Under _gate. The last worker to leave closes the listener and refuses what is queued, as in Node, unless a
    // replacement is awaited: one that died while held leaves its slot awaited.
    private void Deactivate(Member member, bool died)
    {
        Debug.Assert(_gate.IsHeldByCurrentThread);
        int index = _members.IndexOf(member);
        if (index < 0) return;
        _members.RemoveAt(index);
        Unpark(member);
        if (index < _next) _next--;
        if (died && Held) _awaited.Add(member.Worker.Slot);
        CloseIfUnused();
    }

    /// <summary>A member became ready: what waited for a worker may go to it now.</summary>
    public override void WorkerReady(Worker worker)
    {
        lock (_gate)
        {
            if (_members.Find(m => m.Worker == worker) is { } member)
            {
                // Level with the least-served ready worker, as a newcomer is: not owed what went by while it was not ready.
                var ready = _members.Where(m => m != member && m.Worker.Ready.IsCompleted).ToList();
                if (ready.Count > 0) member.Dispatched = Math.Max(member.Dispatched, ready.Min(m => m.Dispatched));
                Pump();
            }
            if (_awaited.Remove(worker.Slot)) CloseIfUnused();
            RetireIfDone();
        }
    }

    public override void CloseIfIdle()
    {
        lock (_gate)
        {
            _awaited.Clear();
            CloseIfUnused();
            RetireIfDone();
        }
    }

    private void CloseIfUnused()
    {
        Debug.Assert(_gate.IsHeldByCurrentThread);
        if (_members.Count == 0 && _awaited.Count == 0) CloseListener();
    }

    private void CloseListener()
    {
        if (_closed) return;
        Volatile.Write(ref _closed, true);
        if (_listener is not null) Wake(); // the accept thread closes the listener as it leaves
        _peek?.Dispose(); // what it still peeks at comes back through OnPeeked, refused there
        int dropped = _retry.Count + _pending.Count;
        _counters.Refused(dropped);
        MakeRoom();
        while (_retry.TryDequeue(out var queued)) queued.Connection.Dispose();
        while (_pending.TryDequeue(out var queued)) queued.Connection.Dispose();
        HerdLog.HandleClosed(Cluster.Logger, Key, dropped);
    }

    private void RetireIfDone()
    {
        CheckSettled();
        if (_closed && _inFlight.Count == 0) _retired(this);
    }

    private sealed class Member(Worker worker)
    {
        public Worker Worker { get; } = worker;
        public int InFlight { get; set; }
        public long Dispatched { get; set; }
        public Queue<Pending> Parked { get; } = new();
        public List<Pending> Batch { get; } = [];
    }

    /// <summary>A connection on its way, with the worker it belongs to (by its token) or the hash of its source address, if known.</summary>
    private readonly record struct Pending(SafeFdHandle Connection, Worker? Owner, ulong? Source);

    private readonly record struct InFlight(Member Member, Pending Connection);

    /// <summary>A connection the accept thread took, with what it knows of it so far.</summary>
    private readonly record struct Taken(SafeFdHandle Connection, ulong? Source, Peeked? Found, string? Token);
}
