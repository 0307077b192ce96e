using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;

namespace Herd;

/// <summary>A message from the other side of a worker's channel: a JSON value, and the socket sent with it, if any.</summary>
public sealed class ClusterMessage
{
    internal ClusterMessage(JsonElement body, Socket? socket)
    {
        Body = body;
        Socket = socket;
    }

    /// <summary>The message as JSON.</summary>
    public JsonElement Body { get; }

    /// <summary>The socket sent with the message, now owned by the receiver; null when none was sent.</summary>
    public Socket? Socket { get; }

    /// <summary>Reads the message as a <typeparamref name="T"/>.</summary>
    public T? Deserialize<T>(JsonTypeInfo<T> typeInfo) => Body.Deserialize(typeInfo);

    /// <inheritdoc />
    public override string ToString() => Body.GetRawText();
}
