namespace Herd.Ipc;

/// <summary>
/// What a <see cref="WorkerChannel"/> delivers, at either end: control and user messages, which both ends read alike
/// (<see cref="Frames.Read"/>), and the kinds of frame that are one end's own.
/// </summary>
internal interface IChannelHandler
{
    /// <summary>Where the peer's user messages wait for this end's handlers.</summary>
    Inbox Inbox { get; }

    /// <summary>A control message. The handler takes the fd it may carry; any left is a breach.</summary>
    void OnInternal(InternalMessage message, ReceivedFds fds);

    /// <summary>A user message, counted in <see cref="Inbox"/> as <paramref name="size"/> bytes until its handlers see it.</summary>
    void OnMessage(ClusterMessage message, int size);

    /// <summary>
    /// A frame of any other kind; <c>frame[0]</c> is its <see cref="FrameKind"/>. Returns null, or how the frame breaks
    /// the protocol (<see cref="Frames.Unexpected"/> for a kind this end does not take), which closes the channel. The
    /// handler takes the fds the frame may carry; any left are a breach too.
    /// </summary>
    string? OnFrame(FrameKind kind, ReadOnlySpan<byte> frame, ReceivedFds fds);

    /// <summary>The channel closed: the peer went away (<paramref name="error"/> null) or broke the protocol.</summary>
    void OnClosed(string? error);
}
