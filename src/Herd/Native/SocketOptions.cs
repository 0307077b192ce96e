using System.Net.Sockets;

namespace Herd.Native;

/// <summary>
/// The socket options Herd sets or reads by Linux's own numbers (the same on x86-64 and arm64), named once: the BCL
/// either has no name for them or, for SO_REUSEADDR, sets SO_REUSEPORT along with it.
/// </summary>
internal static class SocketOptions
{
    private const int SOL_SOCKET = 1;
    private const int SO_REUSEADDR = 2;
    private const int SO_REUSEPORT = 15;
    private const int SO_PEERCRED = 17;

    /// <summary>SO_REUSEADDR alone: a restarted primary binds over connections in TIME_WAIT, and no other process joins the port.</summary>
    public static void SetReuseAddress(this Socket socket) => socket.SetRawSocketOption(SOL_SOCKET, SO_REUSEADDR, BitConverter.GetBytes(1));

    /// <summary>SO_REUSEPORT: several sockets of this uid on one port, the kernel spreading connections over them.</summary>
    public static void SetReusePort(this Socket socket) => socket.SetRawSocketOption(SOL_SOCKET, SO_REUSEPORT, BitConverter.GetBytes(1));

    /// <summary>The uid of the process at the other end of a Unix socket (SO_PEERCRED: pid, uid, gid).</summary>
    public static uint PeerUid(this Socket socket)
    {
        Span<byte> credentials = stackalloc byte[12];
        socket.GetRawSocketOption(SOL_SOCKET, SO_PEERCRED, credentials);
        return BitConverter.ToUInt32(credentials[4..]);
    }
}
