namespace Herd.Ipc;

/// <summary>
/// Counts one peer's messages that wait for event handlers. Bounded, so a peer that sends faster than the handlers
/// keep up is cut off instead of growing the receiver's memory without end.
/// </summary>
internal sealed class Inbox(string receiver)
{
    private const int MaxMessages = 65_536;
    private const long MaxBytes = 64L * 1024 * 1024;

    private int _messages;
    private long _bytes;
    private volatile bool _discarded;

    /// <summary>Whose handlers the messages wait for ("the primary's"), as a breach names them.</summary>
    public string Receiver => receiver;

    /// <summary>Counts a message in; false when that takes the inbox over its bounds.</summary>
    public bool TryAdd(int bytes)
    {
        int messages = Interlocked.Increment(ref _messages);
        long total = Interlocked.Add(ref _bytes, bytes);
        return messages <= MaxMessages && total <= MaxBytes;
    }

    /// <summary>Counts a message out as its handlers are about to see it; false if it is to be dropped instead.</summary>
    public bool Remove(int bytes)
    {
        Interlocked.Decrement(ref _messages);
        Interlocked.Add(ref _bytes, -bytes);
        return !_discarded;
    }

    /// <summary>The peer was cut off: what it sent and no handler has seen yet is dropped, not delivered.</summary>
    public void Discard() => _discarded = true;

    public override string ToString() => $"{MaxMessages} messages or {MaxBytes / (1024 * 1024)} MB";
}
