using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Herd.Ipc;
using Herd.Net;

namespace Herd.Primary;

/// <summary>
/// Reuse-port mode (<see cref="ClusterListenOptions.ReusePort"/>; Node has none): the primary binds one SO_REUSEPORT socket per
/// worker slot, all on one port, and gives each worker its slot's socket as a shared handle gives its one; the worker
/// accepts on it itself and the kernel spreads connections over the slots. The primary keeps its copy, so while servers
/// are held (<see cref="ServerHandle.Held"/>) a slot whose worker dies keeps its queued connections, and the kernel
/// keeps queueing there, for the replacement in that slot: with sockets of the workers' own, the kernel would reset them.
/// </summary>
/// <remarks>
/// A slot's socket closes once no worker of the slot is left and none is awaited: its last worker let go gracefully, or
/// died with servers not held, or the slot was removed (scaled away), or its replacement became ready without it. That
/// resets what is queued in it, unless net.ipv4.tcp_migrate_req=1 moves it to another slot's socket.
/// </remarks>
internal sealed class ReusePortHandle(string key, int id, AddressKey address, int backlog) : ServerHandle(key, id)
{
    private readonly Lock _gate = new();
    private readonly Dictionary<int, Slot> _slots = [];
    private readonly HashSet<int> _awaited = []; // slots whose worker died holding their socket
    private EndPoint _endPoint = address.ToEndPoint(); // port 0 until the first slot has bound: then that slot's port

    // No slot open: the first bind failed (the key is forgotten so a later query can retry), or every slot has closed.
    public override bool IsClosed
    {
        get
        {
            lock (_gate) return _slots.Count == 0;
        }
    }

    public override void Add(Worker worker, InternalMessage reply)
    {
        lock (_gate)
        {
            if (!_slots.TryGetValue(worker.Slot, out var slot))
            {
                try
                {
                    slot = new Slot(Bind());
                }
                catch (SocketException ex)
                {
                    reply.SocketError = ex.SocketErrorCode;
                    worker.Channel.SendInternal(reply);
                    return;
                }
                _slots[worker.Slot] = slot;
            }
            _awaited.Remove(worker.Slot);
            slot.Workers.Add(worker);
            reply.Shared = true;
            worker.Channel.SendInternal(reply, slot.Socket.SafeHandle);
        }
    }

    public override void Remove(Worker worker) => Leave(worker, died: false);

    public override void WorkerGone(Worker worker) => Leave(worker, died: true);

    public override void RemoveSlot(int slot) => Await(slot, false);

    public override void WorkerReady(Worker worker) => Await(worker.Slot, false);

    public override void CloseIfIdle()
    {
        lock (_gate)
        {
            _awaited.Clear();
            foreach (int slot in _slots.Keys.ToList()) CloseIfLeft(slot);
        }
    }

    private void Leave(Worker worker, bool died)
    {
        lock (_gate)
        {
            if (!_slots.TryGetValue(worker.Slot, out var slot) || !slot.Workers.Remove(worker)) return;
        }
        Await(worker.Slot, died && Held);
    }

    // Whether a replacement is coming to the slot; the slot's socket closes once none is and no worker has it.
    private void Await(int slot, bool coming)
    {
        lock (_gate)
        {
            if (coming) _awaited.Add(slot);
            else _awaited.Remove(slot);
            if (_slots.ContainsKey(slot)) CloseIfLeft(slot);
        }
    }

    public override void Close()
    {
        lock (_gate)
        {
            foreach (var slot in _slots.Values) slot.Socket.Dispose();
            _slots.Clear();
        }
    }

    // Under _gate. Later slots bind the port the first one was given, so port 0 is one port for every slot.
    private Socket Bind()
    {
        Debug.Assert(_gate.IsHeldByCurrentThread);
        var socket = address.IsUdp
            ? Binder.BindDatagram((IPEndPoint)_endPoint, reusePort: true)
            : Binder.BindAndListen(_endPoint, backlog, reusePort: true);
        _endPoint = socket.LocalEndPoint!;
        return socket;
    }

    // Under _gate. An awaited slot stays open with no worker: the kernel keeps queueing its connections for the replacement.
    private void CloseIfLeft(int number)
    {
        Debug.Assert(_gate.IsHeldByCurrentThread);
        var slot = _slots[number];
        if (slot.Workers.Count > 0 || _awaited.Contains(number)) return;
        slot.Socket.Dispose();
        _slots.Remove(number);
    }

    private sealed class Slot(Socket socket)
    {
        public Socket Socket { get; } = socket;

        /// <summary>The workers accepting on it: one, or two while one replaces the other.</summary>
        public HashSet<Worker> Workers { get; } = [];
    }
}
