using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;

namespace Herd.Cli;

/// <summary>
/// herd.json: everything <c>herd run</c> takes, durations in milliseconds. The command line overrides it; a key
/// it does not know, or a value of the wrong kind, is an error that names it. The keys here are herd's own; every
/// other key is a <see cref="SupervisorOptions"/> property, bound to it by <see cref="SupervisorJson"/>.
/// </summary>
internal sealed record HerdConfig
{
    public string? Name { get; init; }
    public JsonElement? Instances { get; init; }
    public string[]? Command { get; init; }

    /// <summary>PM2's wait_ready: a worker is ready only once the app says so (<c>Cluster.Worker.SignalReady()</c>), besides its health checks.</summary>
    public bool? WaitReady { get; init; }

    /// <summary>The scheduling policy (rr, none, leastbusy, sticky, stickyaddress), as <c>--policy</c> and HERD_SCHED_POLICY.</summary>
    public string? Policy { get; init; }
    /// <summary>--socket: addresses herd binds and passes to every worker from fd 3 (any language's server).</summary>
    public string[]? Sockets { get; init; }
    /// <summary>--metrics: the address (HOST:PORT) of one Prometheus scrape for the whole cluster.</summary>
    public string? Metrics { get; init; }

    /// <summary>The keys that are not herd's own: the supervisor's, read into <see cref="Supervisor"/>.</summary>
    [JsonExtensionData]
    public JsonObject? SupervisorKeys { get; set; }

    /// <summary>The supervisor's options: the file's over the defaults, <see cref="SupervisorOptions.Workers"/> not yet set.</summary>
    [JsonIgnore]
    public SupervisorOptions Supervisor { get; private init; } = new();

    public static HerdConfig Load(string path)
    {
        if (Directory.Exists(path)) throw new ConfigException($"{path} is a folder, not a herd.json file.");
        if (!File.Exists(path)) throw new ConfigException($"{path}: no such file.");
        try
        {
            var config = JsonSerializer.Deserialize(File.ReadAllText(path), HerdConfigJson.Default.HerdConfig) ?? new HerdConfig();
            foreach (var (key, _) in config.SupervisorKeys ?? [])
            {
                if (!SupervisorJson.Knows(key)) throw new ConfigException($"{path}: '{key}' is not a setting herd knows.");
            }
            return config with { Supervisor = SupervisorJson.Over(config.SupervisorKeys) };
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new ConfigException($"{path}: {ex.Message}");
        }
        catch (JsonException ex)
        {
            var key = ex.Path is { Length: > 2 } at ? at[2..] : null;
            var problem = key is null ? $"is not valid JSON ({ex.Message})" : "has a value of the wrong kind";
            throw new ConfigException($"{path}: {(key is null ? "the file" : $"'{key}'")} {problem}.");
        }
    }

    /// <summary>The supervisor's options for <paramref name="workers"/> workers; a value out of range is an error naming its herd.json key.</summary>
    public SupervisorOptions ToOptions(int workers)
    {
        var options = Supervisor with { Workers = workers };
        if (options.FirstInvalid() is var (option, _, problem)) throw new ConfigException($"{SupervisorJson.Key(option)}: {problem}");
        return options;
    }

    /// <summary>The worker count: a positive number, or "max" for one per CPU the process may use (a container's CPU quota counts).</summary>
    public static int ParseInstances(string text, string where) =>
        text == "max" ? Environment.ProcessorCount
        : int.TryParse(text, System.Globalization.CultureInfo.InvariantCulture, out int n) && n > 0 ? n
        : throw new ConfigException($"{where} must be a positive number or max, not '{text}'.");

    /// <summary>A policy's name as given, once it names one.</summary>
    public static string CheckPolicy(string name) =>
        SchedulingPolicyNames.Parse(name) is null ? throw new ConfigException($"policy must be {SchedulingPolicyNames.All}, not '{name}'.") : name;
}

internal sealed class ConfigException(string message) : Exception(message);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, ReadCommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true)]
[JsonSerializable(typeof(HerdConfig))]
internal sealed partial class HerdConfigJson : JsonSerializerContext;

/// <summary>
/// herd.json's supervisor keys bound to <see cref="SupervisorOptions"/> itself: each option under its camelCase name,
/// durations in milliseconds, and the few whose herd.json name differs (<see cref="Key"/>) renamed. The contract is the
/// source generated one, changed by a modifier, as Native AOT needs.
/// </summary>
internal static class SupervisorJson
{
    // Workers is herd's own key, as -i (a number or max): HerdConfig takes it, so no file's key reaches the option's.
    private static readonly Dictionary<string, string> Renamed = new()
    {
        [nameof(SupervisorOptions.Workers)] = "instances",
        [nameof(SupervisorOptions.MaxWorkers)] = "maxInstances",
        [nameof(SupervisorOptions.MaxMemory)] = "maxMemoryMb",
    };

    public static JsonTypeInfo<SupervisorOptions> Options { get; } = (JsonTypeInfo<SupervisorOptions>)new JsonSerializerOptions(SupervisorOptionsJson.Default.Options)
    {
        TypeInfoResolver = SupervisorOptionsJson.Default.WithAddedModifier(HerdJsonKeys),
    }.GetTypeInfo(typeof(SupervisorOptions));

    /// <summary>
    /// The options <paramref name="keys"/> set, over the defaults. The generated contract sets init-only properties as a
    /// constructor would, to their type's default when a key is missing, so the defaults go in as keys first.
    /// </summary>
    public static SupervisorOptions Over(JsonObject? keys)
    {
        var merged = JsonSerializer.SerializeToNode(new SupervisorOptions(), Options)!.AsObject();
        foreach (var (key, value) in keys ?? []) merged[key] = value?.DeepClone();
        return merged.Deserialize(Options)!;
    }

    /// <summary>Whether <paramref name="key"/> is an option's herd.json key.</summary>
    public static bool Knows(string key) => Options.Properties.Any(property => property.Name == key);

    /// <summary>The herd.json key of a <see cref="SupervisorOptions"/> property.</summary>
    public static string Key(string option) => Renamed.GetValueOrDefault(option) ?? Camel(option);

    private static void HerdJsonKeys(JsonTypeInfo info)
    {
        if (info.Type != typeof(SupervisorOptions)) return;
        foreach (var property in info.Properties)
        {
            foreach (var (option, key) in Renamed)
            {
                if (property.Name != Camel(option)) continue;
                property.Name = key;
                if (option == nameof(SupervisorOptions.MaxMemory)) property.CustomConverter = new MegabytesConverter();
            }
        }
    }

    private static string Camel(string option) => JsonNamingPolicy.CamelCase.ConvertName(option);

    internal sealed class MillisecondsConverter : JsonConverter<TimeSpan>
    {
        public override TimeSpan Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => TimeSpan.FromMilliseconds(reader.GetInt32());

        public override void Write(Utf8JsonWriter writer, TimeSpan value, JsonSerializerOptions options) => writer.WriteNumberValue((long)value.TotalMilliseconds);
    }

    // In bytes; out of range is an error that names the key as herd.json has it.
    private sealed class MegabytesConverter : JsonConverter<long>
    {
        public override long Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) => reader.GetInt64() switch
        {
            < 0 => throw new ConfigException("maxMemoryMb cannot be negative."),
            > long.MaxValue / 1048576 => throw new ConfigException($"maxMemoryMb is too large: at most {long.MaxValue / 1048576}."),
            var mb => mb * 1048576,
        };

        public override void Write(Utf8JsonWriter writer, long value, JsonSerializerOptions options) => writer.WriteNumberValue(value / 1048576);
    }
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, Converters = [typeof(SupervisorJson.MillisecondsConverter)])]
[JsonSerializable(typeof(SupervisorOptions))]
internal sealed partial class SupervisorOptionsJson : JsonSerializerContext;
