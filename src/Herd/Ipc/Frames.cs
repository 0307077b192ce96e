using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace Herd.Ipc;

/// <summary>Encoding and decoding of the JSON frames: control messages and user messages.</summary>
internal static class Frames
{
    public static bool SendInternal(this WorkerChannel channel, InternalMessage message, SafeHandle? fd = null) =>
        channel.SendJson((byte)FrameKind.Internal, message, IpcJsonContext.Default.InternalMessage, fd);

    public static bool SendUser<T>(this WorkerChannel channel, T message, JsonTypeInfo<T> typeInfo, SafeHandle? fd) =>
        channel.SendJson((byte)FrameKind.User, message, typeInfo, fd);

    private static bool SendJson<T>(this WorkerChannel channel, byte kind, T message, JsonTypeInfo<T> typeInfo, SafeHandle? fd)
    {
        var buffer = new ArrayBufferWriter<byte>(256);
        buffer.Write([kind]);
        using (var writer = new Utf8JsonWriter(buffer))
            JsonSerializer.Serialize(writer, message, typeInfo);
        return channel.Send(buffer.WrittenSpan, fd);
    }

    /// <summary>
    /// Reads one frame for <paramref name="handler"/>: control and user messages alike at both ends, any other kind
    /// as the handler's own. Returns null, or how the frame breaks the protocol.
    /// </summary>
    public static string? Read(IChannelHandler handler, FrameKind kind, ReadOnlySpan<byte> frame, ReceivedFds fds)
    {
        switch (kind)
        {
            case FrameKind.Internal:
                if (!TryReadInternal(frame, out var message, out var error)) return error;
                handler.OnInternal(message, fds);
                return null;
            case FrameKind.User:
                if (!TryReceiveUser(frame, fds, handler.Inbox, out var user, out var breach)) return breach;
                handler.OnMessage(user, frame.Length);
                return null;
            default:
                return handler.OnFrame(kind, frame, fds);
        }
    }

    /// <summary>The breach of a frame whose kind its receiver does not take.</summary>
    public static string Unexpected(FrameKind kind, ReadOnlySpan<byte> frame) => $"an unexpected frame of kind {(int)kind} and {frame.Length} bytes";

    private static bool TryReadInternal(ReadOnlySpan<byte> frame, [NotNullWhen(true)] out InternalMessage? message, [NotNullWhen(false)] out string? error)
    {
        try
        {
            message = JsonSerializer.Deserialize(frame[1..], IpcJsonContext.Default.InternalMessage);
            error = message is null || (message.Act is null && message.Ack is null) ? "a control message with neither act nor ack" : null;
            return error is null;
        }
        catch (JsonException ex)
        {
            message = null;
            error = $"a malformed control message ({ex.Message})";
            return false;
        }
    }

    /// <summary>
    /// Reads a message that waits in <paramref name="inbox"/> for the receiver's handlers, or says how the frame
    /// breaks the protocol. More than one fd is refused before any is taken, so none leaks with the breach.
    /// </summary>
    private static bool TryReceiveUser(ReadOnlySpan<byte> frame, ReceivedFds fds, Inbox inbox,
        [NotNullWhen(true)] out ClusterMessage? message, [NotNullWhen(false)] out string? breach)
    {
        message = null;
        breach = fds.Count > 1 ? $"sent {fds.Count} fds with a message, which carries at most one"
            : !inbox.TryAdd(frame.Length) ? $"a flood of messages: over {inbox} waiting for {inbox.Receiver} handlers"
            : null;
        return breach is null && TryReadUser(frame, fds, out message, out breach);
    }

    private static bool TryReadUser(ReadOnlySpan<byte> frame, ReceivedFds fds, [NotNullWhen(true)] out ClusterMessage? message, [NotNullWhen(false)] out string? error)
    {
        try
        {
            var body = JsonElement.Parse(frame[1..]);
            message = new ClusterMessage(body, fds.Take()?.ToSocket());
            error = null;
            return true;
        }
        catch (JsonException ex)
        {
            message = null;
            error = $"a malformed message ({ex.Message})";
            return false;
        }
    }
}
