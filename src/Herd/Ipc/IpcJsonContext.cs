using System.Text.Json.Serialization;

namespace Herd.Ipc;

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingDefault)]
[JsonSerializable(typeof(InternalMessage))]
internal sealed partial class IpcJsonContext : JsonSerializerContext;
