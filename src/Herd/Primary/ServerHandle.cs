using Herd.Ipc;

namespace Herd.Primary;

/// <summary>One server the primary holds for its workers, under one key (Node's handles map).</summary>
internal abstract class ServerHandle(string key, int id)
{
    public string Key { get; } = key;

    /// <summary>The number workers name this handle by in newconn and accepted frames.</summary>
    public int Id { get; } = id;

    /// <summary>Registers a worker and answers its queryServer (with the shared socket, for a shared handle).</summary>
    public abstract void Add(Worker worker, InternalMessage reply);

    /// <summary>
    /// While true (a supervisor runs), a worker that dies holding the handle leaves its slot awaited: the handle stays
    /// open with no worker left, and connections wait for the replacement rather than being refused. A worker that lets
    /// go gracefully (its server closed, or it disconnected) leaves nothing awaited, and the handle closes with its last
    /// worker, as in Node. Set and cleared by the primary, under its lock.
    /// </summary>
    public bool Held { get; set; }

    /// <summary>
    /// Closed: no worker is left and none is awaited, or binding failed, or <see cref="Close"/>. The primary forgets a
    /// closed handle's key (<see cref="ServerHandles.Update"/>); it never opens again.
    /// </summary>
    public abstract bool IsClosed { get; }

    /// <summary>The worker let go gracefully; the handle closes if no worker is left and none is awaited.</summary>
    public abstract void Remove(Worker worker);

    /// <summary>Nothing is awaited any more (the supervisor stopped): the handle closes if no worker is left.</summary>
    public abstract void CloseIfIdle();

    /// <summary>The worker's channel is gone (it died, unless it had let go already): its slot is awaited while <see cref="Held"/>.</summary>
    public abstract void WorkerGone(Worker worker);

    /// <summary>
    /// A worker is ready: if its slot was awaited and it did not come back to this handle (a replacement listening
    /// elsewhere), nobody is coming for it.
    /// </summary>
    public abstract void WorkerReady(Worker worker);

    /// <summary>No worker will come back to this slot, awaited or not.</summary>
    public virtual void RemoveSlot(int slot)
    {
    }

    /// <summary>The listening socket the primary holds, to hand to a primary taking over; null when it holds none.</summary>
    public virtual System.Net.Sockets.Socket? Listener => null;

    /// <summary>Stops the primary's own accepting, the socket left open; completes when what it accepted has gone to the workers.</summary>
    public virtual Task StopAcceptingAsync() => Task.CompletedTask;

    /// <summary>Closes the handle whatever its workers: the primary is shutting down.</summary>
    public abstract void Close();
}
