using System.Net;
using System.Net.Sockets;
using Herd.Net;

namespace Herd;

/// <summary>
/// Listening that works the same standalone and clustered (Node's <c>net.Server.listen</c> and <c>dgram.bind</c>):
/// in the primary or a standalone process it binds directly; in a worker it asks the primary, which binds the
/// address once for all workers and hands out connections (round robin) or the socket itself (shared), or, in
/// reuse-port mode, binds one socket per worker slot and hands each worker its slot's. Only an exclusive worker binds itself.
/// </summary>
public static class ClusterSocket
{
    /// <summary>Listens for TCP (IPv4 or IPv6; <c>::</c> is dual stack) or Unix domain socket connections.</summary>
    /// <exception cref="SocketException">Binding failed, here or in the primary: AddressAlreadyInUse, AccessDenied...</exception>
    public static async ValueTask<ClusterListener> ListenAsync(EndPoint endPoint, ClusterListenOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(endPoint);
        options ??= ClusterListenOptions.Default;
        options.Validate();
        _ = AddressKey.Of(endPoint, udp: false); // rejects endpoints Herd cannot share, the same way in every role
        var child = Cluster.Child;
        if (child is not null && !options.Exclusive)
            return await child.ListenAsync(endPoint, options, cancellationToken).ConfigureAwait(false);
        var listener = new SocketListener(Binder.BindAndListen(endPoint, options.Backlog, options.ReusePort));
        child?.NotifyListening(listener.LocalEndPoint, udp: false);
        return listener;
    }

    /// <summary>Binds a UDP socket. In a worker every worker shares the primary's socket, as in Node, or its slot's in reuse-port mode.</summary>
    /// <exception cref="SocketException">Binding failed, here or in the primary.</exception>
    public static async ValueTask<Socket> BindUdpAsync(IPEndPoint endPoint, ClusterListenOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(endPoint);
        options ??= ClusterListenOptions.Default;
        options.Validate();
        var child = Cluster.Child;
        if (child is not null && !options.Exclusive)
            return await child.BindUdpAsync(endPoint, options, cancellationToken).ConfigureAwait(false);
        var socket = Binder.BindDatagram(endPoint, options.ReusePort);
        child?.NotifyListening(socket.LocalEndPoint!, udp: true);
        return socket;
    }
}
