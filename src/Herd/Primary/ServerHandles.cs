using System.Collections.Concurrent;
using System.Diagnostics;

namespace Herd.Primary;

/// <summary>
/// The primary's servers, one per key while open (Node's <c>handles</c> map), and the one rule that keeps it: whatever
/// a handle is told, once it has closed its key is forgotten, so a later listen on it binds afresh. A round-robin handle
/// stays findable by id after it closed, until the last connection it had in flight is answered: workers' answers
/// arrive on their channels' threads, without the primary's lock. A handle whose bind failed is closed from the start.
/// </summary>
internal sealed class ServerHandles(Lock gate)
{
    private readonly Dictionary<string, ServerHandle> _byKey = [];
    private readonly ConcurrentDictionary<int, RoundRobinHandle> _roundRobin = new();

    /// <summary>Every open handle. Under the primary's lock.</summary>
    public IEnumerable<ServerHandle> Open
    {
        get
        {
            Debug.Assert(gate.IsHeldByCurrentThread);
            return _byKey.Values;
        }
    }

    /// <summary>Connections round robin holds for want of a worker with room.</summary>
    public int Queued => _roundRobin.Values.Sum(h => h.Queued);

    /// <summary>
    /// The open handle for a key. One can close without the primary's lock (round robin's last worker refusing a
    /// connection on its channel's thread): it is forgotten here. Under the primary's lock.
    /// </summary>
    public bool TryGet(string key, [System.Diagnostics.CodeAnalysis.MaybeNullWhen(false)] out ServerHandle handle)
    {
        Debug.Assert(gate.IsHeldByCurrentThread);
        if (_byKey.TryGetValue(key, out handle) && !handle.IsClosed) return true;
        _byKey.Remove(key);
        handle = null;
        return false;
    }

    /// <summary>A round-robin handle by the id its newconn frames carry; any thread.</summary>
    public RoundRobinHandle? RoundRobin(int id) => _roundRobin.GetValueOrDefault(id);

    /// <summary>Registers a new handle. Under the primary's lock.</summary>
    public void Add(ServerHandle handle)
    {
        Debug.Assert(gate.IsHeldByCurrentThread);
        _byKey[handle.Key] = handle;
        if (handle is RoundRobinHandle { IsClosed: false } roundRobin) _roundRobin[handle.Id] = roundRobin;
    }

    /// <summary>For a round-robin handle: it closed and nothing it accepted is in flight any more.</summary>
    public void Done(RoundRobinHandle handle) => _roundRobin.TryRemove(handle.Id, out _);

    /// <summary>Tells one handle something, and forgets it if that closed it. Under the primary's lock.</summary>
    public void Update(ServerHandle handle, Action<ServerHandle> change)
    {
        Debug.Assert(gate.IsHeldByCurrentThread);
        change(handle);
        Forget(handle);
    }

    /// <summary>Tells every open handle something, and forgets those that closed. Under the primary's lock.</summary>
    public void UpdateAll(Action<ServerHandle> change)
    {
        foreach (var handle in _byKey.Values.ToList()) Update(handle, change);
    }

    /// <summary>Closes every handle: the primary is shutting down. Under the primary's lock.</summary>
    public void CloseAll() => UpdateAll(handle => handle.Close());

    private void Forget(ServerHandle handle)
    {
        if (handle.IsClosed) _byKey.Remove(handle.Key);
    }
}
