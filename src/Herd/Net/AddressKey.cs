using System.Net;
using System.Net.Sockets;

namespace Herd.Net;

/// <summary>
/// The parts of Node's server key (<c>address:port:addressType:fd:index</c>) that an endpoint decides; the worker
/// adds the index, so that the n-th server of every worker on one address shares the n-th primary handle.
/// </summary>
internal readonly record struct AddressKey(string Address, int Port, string AddressType)
{
    public const string Unix = "-1";

    public static AddressKey Of(EndPoint endPoint, bool udp) => endPoint switch
    {
        IPEndPoint ip => new AddressKey(ip.Address.ToString(), ip.Port, Family(ip, udp)),
        UnixDomainSocketEndPoint unix => new AddressKey(Path.GetFullPath(unix.ToString()), -1, Unix),
        _ => throw new NotSupportedException($"Herd cannot listen on {endPoint.GetType().Name}; use an IPEndPoint or a UnixDomainSocketEndPoint."),
    };

    private static string Family(IPEndPoint ip, bool udp)
    {
        string family = ip.AddressFamily == AddressFamily.InterNetworkV6 ? "6" : "4";
        return udp ? "udp" + family : family;
    }

    public bool IsUdp => AddressType.StartsWith("udp", StringComparison.Ordinal);

    public EndPoint ToEndPoint() => AddressType == Unix
        ? new UnixDomainSocketEndPoint(Address)
        : new IPEndPoint(IPAddress.Parse(Address), Port);

    /// <summary>The key without the index: what a worker counts indexes under.</summary>
    public override string ToString() => $"{Address}:{Port}:{AddressType}:";
}
