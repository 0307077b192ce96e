using System.Net.Sockets;
using Herd.Ipc;
using Herd.Net;

namespace Herd.Primary;

/// <summary>
/// SCHED_NONE, and every UDP socket (Node's shared_handle.js): the primary binds once and gives the bound socket
/// to each worker, which listens and accepts on it itself.
/// </summary>
internal sealed class SharedHandle : ServerHandle
{
    private readonly Lock _gate = new();
    private readonly HashSet<Worker> _workers = [];
    private readonly HashSet<int> _awaited = []; // slots whose worker died holding the socket
    private readonly Socket? _socket;
    private readonly SocketError _error;
    private bool _closed;

    public SharedHandle(string key, int id, AddressKey address, Socket? inherited) : base(key, id)
    {
        try
        {
            var endPoint = address.ToEndPoint();
            _socket = inherited ?? (address.IsUdp ? Binder.BindDatagram((System.Net.IPEndPoint)endPoint, reusePort: false) : Binder.BindStream(endPoint, reusePort: false));
        }
        catch (SocketException ex)
        {
            _error = ex.SocketErrorCode;
        }
    }

    public override Socket? Listener => _socket;

    public override void Add(Worker worker, InternalMessage reply)
    {
        if (_socket is null)
        {
            reply.SocketError = _error;
            worker.Channel.SendInternal(reply);
            return;
        }
        lock (_gate)
        {
            _workers.Add(worker);
            _awaited.Remove(worker.Slot);
        }
        reply.Shared = true;
        worker.Channel.SendInternal(reply, _socket.SafeHandle);
    }

    public override bool IsClosed => _socket is null || Volatile.Read(ref _closed);

    public override void Remove(Worker worker) => Update(() => _workers.Remove(worker));

    public override void WorkerGone(Worker worker) => Update(() =>
    {
        if (!_workers.Remove(worker)) return false;
        if (Held) _awaited.Add(worker.Slot);
        return true;
    });

    public override void WorkerReady(Worker worker) => Update(() => _awaited.Remove(worker.Slot));

    public override void CloseIfIdle() => Update(() =>
    {
        _awaited.Clear();
        return true;
    });

    // Under _gate, a change; if it changed anything, the socket closes once no worker has it and none is awaited. An
    // awaited socket stays open in the primary, so the kernel keeps queueing its connections for the replacement.
    private void Update(Func<bool> change)
    {
        lock (_gate)
        {
            if (!change() || _workers.Count > 0 || _awaited.Count > 0) return;
        }
        Close();
    }

    public override void Close()
    {
        Volatile.Write(ref _closed, true);
        _socket?.Dispose();
    }
}
