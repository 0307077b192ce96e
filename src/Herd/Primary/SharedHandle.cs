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
    private readonly Socket? _socket;
    private readonly SocketError _error;

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

    public override bool Failed => _socket is null;

    public override void Add(Worker worker, InternalMessage reply)
    {
        if (_socket is null)
        {
            reply.Errno = (int)_error;
            worker.Channel.SendInternal(reply);
            return;
        }
        lock (_gate) _workers.Add(worker);
        reply.Shared = true;
        worker.Channel.SendInternal(reply, _socket.SafeHandle);
    }

    public override bool Remove(Worker worker)
    {
        lock (_gate)
        {
            if (!_workers.Remove(worker)) return false;
        }
        return CloseIfIdle();
    }

    // A held socket stays open in the primary, so the kernel keeps queueing its connections for the next worker.
    public override bool CloseIfIdle()
    {
        lock (_gate)
        {
            if (_workers.Count > 0 || Held) return false;
        }
        Close();
        return true;
    }

    public override void Close() => _socket?.Dispose();
}
