using System.Text.Json;
using System.Text.Json.Serialization;

namespace Herd;

[JsonSerializable(typeof(JsonElement))]
internal sealed partial class JsonContext : JsonSerializerContext;
