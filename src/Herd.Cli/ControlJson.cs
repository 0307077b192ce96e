using System.Text.Json.Serialization;

namespace Herd.Cli;

/// <summary>The control socket's JSON: camelCase, strict (an unknown property is an error), source-generated.</summary>
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    RespectRequiredConstructorParameters = true, AllowOutOfOrderMetadataProperties = true, UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow)]
[JsonSerializable(typeof(ControlRequest))]
[JsonSerializable(typeof(ControlResponse))]
[JsonSerializable(typeof(WorkerInfo[]))]
internal sealed partial class ControlJson : JsonSerializerContext;
