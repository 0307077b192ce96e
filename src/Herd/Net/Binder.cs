using System.Net;
using System.Net.Sockets;
using Herd.Native;

namespace Herd.Net;

/// <summary>Creates bound sockets the same way wherever Herd binds: in the primary, standalone, or in an exclusive worker.</summary>
internal static class Binder
{
    /// <summary>A bound stream socket (TCP or Unix), not yet listening.</summary>
    public static Socket BindStream(EndPoint endPoint, bool reusePort) =>
        Bind(endPoint, SocketType.Stream, endPoint is UnixDomainSocketEndPoint ? ProtocolType.Unspecified : ProtocolType.Tcp, reusePort);

    /// <summary>A bound UDP socket.</summary>
    public static Socket BindDatagram(IPEndPoint endPoint, bool reusePort) =>
        Bind(endPoint, SocketType.Dgram, ProtocolType.Udp, reusePort);

    public static Socket BindAndListen(EndPoint endPoint, int backlog, bool reusePort)
    {
        var socket = BindStream(endPoint, reusePort);
        try
        {
            socket.Listen(backlog);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    private static Socket Bind(EndPoint endPoint, SocketType type, ProtocolType protocol, bool reusePort)
    {
        var socket = new Socket(endPoint.AddressFamily, type, protocol);
        try
        {
            if (endPoint is IPEndPoint ip)
            {
                if (ip.Address.Equals(IPAddress.IPv6Any)) socket.DualMode = true;
                // Raw options: managed ReuseAddress would also set SO_REUSEPORT and let any process of this uid join the port.
                if (type == SocketType.Stream) socket.SetReuseAddress();
                if (reusePort) socket.SetReusePort();
            }
            socket.Bind(endPoint);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }
}
