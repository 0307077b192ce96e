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
    /// While true, the handle stays open with no worker left: a supervisor is about to bring one, and connections
    /// wait for it rather than being refused. Set and cleared by the primary, under its lock.
    /// </summary>
    public bool Held { get; set; }

    /// <summary>Stops giving the worker anything; true when no worker is left and the handle has closed.</summary>
    public abstract bool Remove(Worker worker);

    /// <summary>Closes the handle if no worker is left (it was held); true when it has closed.</summary>
    public abstract bool CloseIfIdle();

    /// <summary>The worker's channel is gone: whatever it held but never took goes to the others.</summary>
    public virtual bool WorkerGone(Worker worker) => Remove(worker);

    /// <summary>No worker will come back to this slot, held or not; true when the handle has closed.</summary>
    public virtual bool RetireSlot(int slot) => false;

    /// <summary>Binding failed; the reply carried the error and the key should be forgotten, so a later query can retry.</summary>
    public abstract bool Failed { get; }

    /// <summary>Closes the handle whatever its workers: the primary is shutting down.</summary>
    public abstract void Close();
}
