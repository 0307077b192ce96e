namespace Herd.Primary;

/// <summary>
/// Which worker issued each SignalR connection token, as the workers tell it (act <c>sticky</c>) before their negotiate
/// response leaves: shared by the primary's round-robin handles under <see cref="SchedulingPolicy.Sticky"/>. Bounded:
/// past <see cref="Capacity"/> tokens the oldest is forgotten (its client, if still there, lands anywhere and negotiates
/// again). A worker that leaves takes its tokens with it.
/// </summary>
internal sealed class StickyRouter
{
    internal const int Capacity = 100_000;

    // Longer than any token SignalR issues (22 characters), short enough that a worker cannot fill the primary's memory.
    internal const int MaxTokenLength = 128;

    private readonly Lock _gate = new();
    private readonly Dictionary<string, LinkedListNode<(string Token, Worker Worker)>> _tokens = new(StringComparer.Ordinal);
    private readonly LinkedList<(string Token, Worker Worker)> _order = new();
    private readonly int _capacity;

    public StickyRouter(int capacity = Capacity) => _capacity = capacity;

    public int Count
    {
        get
        {
            lock (_gate) return _tokens.Count;
        }
    }

    /// <summary>Requests carrying <paramref name="token"/> go to <paramref name="worker"/> from now on.</summary>
    public bool Add(string token, Worker worker)
    {
        if (token.Length is 0 or > MaxTokenLength) return false;
        lock (_gate)
        {
            if (_tokens.Remove(token, out var old)) _order.Remove(old);
            if (_tokens.Count >= _capacity && _order.First is { } oldest)
            {
                _order.RemoveFirst();
                _tokens.Remove(oldest.Value.Token);
            }
            _tokens[token] = _order.AddLast((token, worker));
            return true;
        }
    }

    public Worker? Find(string token)
    {
        lock (_gate) return _tokens.TryGetValue(token, out var node) ? node.Value.Worker : null;
    }

    /// <summary>The worker is gone: its clients' next requests go elsewhere, and negotiate there again.</summary>
    public void Forget(Worker worker)
    {
        lock (_gate)
        {
            for (var node = _order.First; node is not null;)
            {
                var next = node.Next;
                if (node.Value.Worker == worker)
                {
                    _order.Remove(node);
                    _tokens.Remove(node.Value.Token);
                }
                node = next;
            }
        }
    }
}
