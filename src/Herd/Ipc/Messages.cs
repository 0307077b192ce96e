using System.Buffers.Binary;

namespace Herd.Ipc;

/// <summary>
/// newconn: [kind][handle id][first connection id][count], with the count connections' fds attached in order; their
/// ids run on from the first. One frame carries what the primary took for one worker in one wake-up: one sendmsg and
/// one wake-up of the worker's channel for up to <see cref="MaxCount"/> connections.
/// </summary>
internal readonly record struct NewConn(int HandleId, uint FirstConnectionId, int Count)
{
    public const int Size = 10;

    public const int MaxCount = WorkerChannel.MaxFdsPerFrame;

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
