using System.Globalization;
using System.Net;
using System.Net.Sockets;
using Herd.Native;
using Herd.Net;

namespace Herd.Primary;

/// <summary>
/// Listening sockets the primary was given rather than bound: systemd socket activation (sd_listen_fds(3):
/// LISTEN_PID, LISTEN_FDS, fds from 3). A worker's server whose address one of them has takes it instead of binding.
/// </summary>
internal sealed class InheritedSockets
{
    private const int FirstFd = 3;
    private readonly List<Socket> _sockets = [];
    private readonly Lock _gate = new();

    /// <summary>Takes the sockets systemd passed to this process, once; the variables go, so workers do not see them.</summary>
    public int AdoptSystemd()
    {
        var pid = Environment.GetEnvironmentVariable("LISTEN_PID");
        var count = Environment.GetEnvironmentVariable("LISTEN_FDS");
        foreach (var name in new[] { "LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES" }) Environment.SetEnvironmentVariable(name, null);
        if (pid != Environment.ProcessId.ToString(CultureInfo.InvariantCulture) || !int.TryParse(count, CultureInfo.InvariantCulture, out int n) || n <= 0) return 0;
        lock (_gate)
        {
            for (int fd = FirstFd; fd < FirstFd + n; fd++)
            {
                Fd.SetCloseOnExec(fd, true); // systemd hands them over inheritable; workers must not inherit them
                var socket = new Socket(new SafeSocketHandle(fd, ownsHandle: true)) { Blocking = true };
                _sockets.Add(socket);
            }
        }
        return n;
    }

    /// <summary>The sockets no worker has taken yet.</summary>
    public Socket[] Remaining()
    {
        lock (_gate) return [.. _sockets];
    }

    /// <summary>Removes and returns the inherited socket for this address, if there is one: same kind, same port, same or wildcard IP.</summary>
    public Socket? Take(AddressKey address)
    {
        lock (_gate)
        {
            var wanted = address.ToEndPoint();
            var type = address.IsUdp ? SocketType.Dgram : SocketType.Stream;
            var match = _sockets.Find(s => s.SocketType == type && Matches(s.LocalEndPoint, wanted));
            if (match is not null) _sockets.Remove(match);
            return match;
        }
    }

    private static bool Matches(EndPoint? have, EndPoint wanted) => (have, wanted) switch
    {
        (IPEndPoint h, IPEndPoint w) => h.Port == w.Port && (h.Address.Equals(w.Address) || h.Address.Equals(IPAddress.Any) || h.Address.Equals(IPAddress.IPv6Any)),
        (UnixDomainSocketEndPoint h, UnixDomainSocketEndPoint w) => h.ToString() == w.ToString(),
        _ => false,
    };
}
