using System.Net;
using System.Net.Sockets;

namespace Herd;

/// <summary>Where a worker's server listens: the real address and port, so port 0 shows the port the kernel chose.</summary>
/// <param name="AddressType">TCP, UDP or Unix, and the IP family.</param>
/// <param name="Address">The IP address, or the socket path for <see cref="AddressType.Unix"/>.</param>
/// <param name="Port">The port; -1 for a Unix socket.</param>
public sealed record ListeningAddress(AddressType AddressType, string Address, int Port)
{
    /// <summary>The address as an endpoint to connect or send to.</summary>
    public EndPoint EndPoint => AddressType == AddressType.Unix
        ? new UnixDomainSocketEndPoint(Address)
        : new IPEndPoint(IPAddress.Parse(Address), Port);

    /// <inheritdoc />
    public override string ToString() => AddressType == AddressType.Unix ? Address : $"{EndPoint}";

    internal static ListeningAddress Of(EndPoint endPoint, bool udp) => endPoint switch
    {
        IPEndPoint ip => new ListeningAddress(
            ip.AddressFamily == AddressFamily.InterNetworkV6 ? (udp ? AddressType.Udp6 : AddressType.IPv6) : (udp ? AddressType.Udp4 : AddressType.IPv4),
            ip.Address.ToString(), ip.Port),
        UnixDomainSocketEndPoint unix => new ListeningAddress(AddressType.Unix, unix.ToString(), -1),
        _ => throw new NotSupportedException($"Herd cannot listen on {endPoint.GetType().Name}."),
    };
}
