using System.Text.Json.Serialization;

namespace Herd.AspNetCore.SignalR;

/// <summary>What one worker's hub asks of the others' (the payload of a relay frame).</summary>
internal sealed class RelayEnvelope
{
    /// <summary>The hub's type, by full name: every hub of the app has its own lifetime manager.</summary>
    public string Hub { get; set; } = "";

    public RelayKind Kind { get; set; }

    /// <summary>The connection ids, groups or users sent to; for a group change, the connection id and the group.</summary>
    public string[]? Names { get; set; }

    public string[]? Excluded { get; set; }

    /// <summary>The invocation, already serialized by each of the app's hub protocols (by protocol name).</summary>
    public Dictionary<string, byte[]>? Payloads { get; set; }
}

internal enum RelayKind
{
    All = 1,
    Connections = 2,
    Groups = 3,
    Users = 4,
    AddToGroup = 5,
    RemoveFromGroup = 6,
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
[JsonSerializable(typeof(RelayEnvelope))]
internal sealed partial class RelayJsonContext : JsonSerializerContext;
