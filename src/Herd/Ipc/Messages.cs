using System.Buffers.Binary;
using System.Text.Json.Serialization;

namespace Herd.Ipc;

/// <summary>The first byte of every record on a channel.</summary>
internal enum FrameKind : byte
{
    /// <summary>A cluster control message (<see cref="InternalMessage"/>, JSON).</summary>
    Internal = 1,

    /// <summary>A user message: UTF-8 JSON, optionally with one fd.</summary>
    User = 2,

    /// <summary>Primary to worker: accepted connections (binary <see cref="NewConn"/>, one fd each).</summary>
    NewConn = 3,

    /// <summary>Worker to primary: the answer for one connection of a <see cref="NewConn"/> (binary <see cref="Accepted"/>).</summary>
    Accepted = 4,

    /// <summary>Worker to primary, under least-busy dispatch: how busy the worker is (binary <see cref="Ipc.Load"/>).</summary>
    Load = 5,

    /// <summary>
    /// Worker to primary, and the same bytes on from the primary to every other worker: an opaque payload for the
    /// workers' SignalR backplane (Herd.AspNetCore's HerdHubLifetimeManager), which the primary does not read.
    /// </summary>
    Relay = 6,
}

/// <summary>The acts of Node's cluster protocol (lib/internal/cluster), spelled as there.</summary>
internal static class Acts
{
    public const string Online = "online";
    public const string QueryServer = "queryServer";
    public const string Listening = "listening";
    public const string Close = "close";
    public const string Disconnect = "disconnect";
    public const string ExitedAfterDisconnect = "exitedAfterDisconnect";

    /// <summary>Herd's own act: the worker is ready for traffic (listening on all it will listen on, app started).</summary>
    public const string Ready = "ready";

    /// <summary>Herd's own act, both ways: the primary asks, the worker answers from its thread pool, so a worker whose pool is stuck does not.</summary>
    public const string Heartbeat = "heartbeat";

    /// <summary>Herd's own act, worker to primary: the worker got SIGTERM or SIGINT (<c>signal</c>) and leaves it to the primary.</summary>
    public const string Signal = "signal";

    /// <summary>Herd's own act, primary to worker: let SIGTERM or SIGINT (<c>signal</c>) end you, as <see cref="Worker.Kill"/> asked.</summary>
    public const string Kill = "kill";

    /// <summary>
    /// Herd's own act, worker to primary, under <see cref="SchedulingPolicy.Sticky"/>: requests that carry this SignalR
    /// connection token (<c>token</c>) are this worker's. Acknowledged, so the worker answers its negotiate only once the primary knows.
    /// </summary>
    public const string Sticky = "sticky";
    /// <summary>Herd's own act, primary to worker: you are (<c>leader</c> true) or are no longer the one worker that runs one-worker jobs.</summary>
    public const string Leader = "leader";

    /// <summary>
    /// Herd's own act, both ways, under <c>herd run --metrics</c>: the primary asks (<c>seq</c>), the worker answers
    /// (<c>ack</c>) with its meters' state (<c>metrics</c>) from its thread pool.
    /// </summary>
    public const string Metrics = "metrics";
}

/// <summary>
/// A control message. Like Node's, one flat shape for every act: <c>seq</c> numbers a request, <c>ack</c> names
/// the request a reply answers, and each act uses the fields it needs.
/// </summary>
internal sealed class InternalMessage
{
    public string? Act { get; set; }
    public int Seq { get; set; }
    public int? Ack { get; set; }

    // queryServer / listening
    public string? Address { get; set; }
    public int Port { get; set; }
    public string? AddressType { get; set; }
    public int Index { get; set; }
    public int Backlog { get; set; }
    public bool ReusePort { get; set; } // queryServer: a socket of the worker's slot, not the policy's handle
    public bool PrefersSticky { get; set; } // queryServer: the app wants sticky routing unless a policy was chosen

    // reply to queryServer; close
    public string? Key { get; set; }
    public int Errno { get; set; }
    public int HandleId { get; set; }
    public bool LeastBusy { get; set; }

    // heartbeat answers: what the worker has served so far
    public long Requests { get; set; }
    public long Connections { get; set; }

    // reply to queryServer: the fd attached is the socket to accept on (a shared handle's, or a reuse-port slot's)
    public bool Shared { get; set; }

    // signal, kill: the signal's number
    public int Signal { get; set; }

    // reply to queryServer: report the SignalR tokens you issue (act sticky); sticky: the token
    public bool Sticky { get; set; }
    public string? Token { get; set; }
    // leader
    public bool Leader { get; set; }

    // metrics answers: the worker's meters
    public Herd.Metrics.MetricFamily[]? Metrics { get; set; }
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingDefault)]
[JsonSerializable(typeof(InternalMessage))]
internal sealed partial class IpcJsonContext : JsonSerializerContext;

/// <summary>
/// newconn: [kind][handle id][first connection id][count], with the count connections' fds attached in order; their
/// ids run on from the first. One frame carries what the primary took for one worker in one wake-up: one sendmsg and
/// one wake-up of the worker's channel for up to <see cref="MaxCount"/> connections.
/// </summary>
internal readonly record struct NewConn(int HandleId, uint FirstConnectionId, int Count)
{
    public const int Size = 10;

    public const int MaxCount = Channel.MaxFdsPerFrame;

    public void Write(Span<byte> buffer)
    {
        buffer[0] = (byte)FrameKind.NewConn;
        BinaryPrimitives.WriteInt32LittleEndian(buffer[1..], HandleId);
        BinaryPrimitives.WriteUInt32LittleEndian(buffer[5..], FirstConnectionId);
        buffer[9] = (byte)Count;
    }

    public static bool TryRead(ReadOnlySpan<byte> frame, out NewConn value)
    {
        value = default;
        if (frame.Length != Size || frame[9] is 0 or > MaxCount) return false;
        value = new NewConn(BinaryPrimitives.ReadInt32LittleEndian(frame[1..]), BinaryPrimitives.ReadUInt32LittleEndian(frame[5..]), frame[9]);
        return true;
    }
}

/// <summary>accepted: [kind][handle id][connection id][0|1].</summary>
internal readonly record struct Accepted(int HandleId, uint ConnectionId, bool Ok)
{
    public const int Size = 10;

    public void Write(Span<byte> buffer)
    {
        buffer[0] = (byte)FrameKind.Accepted;
        BinaryPrimitives.WriteInt32LittleEndian(buffer[1..], HandleId);
        BinaryPrimitives.WriteUInt32LittleEndian(buffer[5..], ConnectionId);
        buffer[9] = Ok ? (byte)1 : (byte)0;
    }

    public static bool TryRead(ReadOnlySpan<byte> frame, out Accepted value)
    {
        value = default;
        if (frame.Length != Size || frame[9] > 1) return false;
        value = new Accepted(BinaryPrimitives.ReadInt32LittleEndian(frame[1..]), BinaryPrimitives.ReadUInt32LittleEndian(frame[5..]), frame[9] == 1);
        return true;
    }
}

/// <summary>load: [kind][busy units], a count that is never negative.</summary>
internal readonly record struct Load(int Busy)
{
    public const int Size = 5;

    public void Write(Span<byte> buffer)
    {
        buffer[0] = (byte)FrameKind.Load;
        BinaryPrimitives.WriteInt32LittleEndian(buffer[1..], Busy);
    }

    public static bool TryRead(ReadOnlySpan<byte> frame, out Load value)
    {
        value = default;
        if (frame.Length != Size) return false;
        value = new Load(BinaryPrimitives.ReadInt32LittleEndian(frame[1..]));
        return value.Busy >= 0;
    }
}
