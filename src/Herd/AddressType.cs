namespace Herd;

/// <summary>The kind of address a server listens on (Node's <c>addressType</c>).</summary>
public enum AddressType
{
    /// <summary>TCP over IPv4.</summary>
    IPv4,
    /// <summary>TCP over IPv6 (dual stack when bound to <c>::</c>).</summary>
    IPv6,
    /// <summary>A Unix domain socket path.</summary>
    Unix,
    /// <summary>UDP over IPv4.</summary>
    Udp4,
    /// <summary>UDP over IPv6.</summary>
    Udp6,
}
