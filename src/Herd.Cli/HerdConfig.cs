using System.Text.Json;
using System.Text.Json.Serialization;

namespace Herd.Cli;

/// <summary>
/// herd.json: everything <c>herd run</c> takes, durations in milliseconds. The command line overrides it; a key
/// it does not know, or a value of the wrong kind, is an error that names it.
/// </summary>
[JsonUnmappedMemberHandling(JsonUnmappedMemberHandling.Disallow)]
internal sealed record HerdConfig
{
    public string? Name { get; init; }
    public JsonElement? Instances { get; init; }
    public int? MaxInstances { get; init; }
    public string[]? Command { get; init; }
    public int? KillTimeout { get; init; }
    public int? ReadyTimeout { get; init; }

    /// <summary>PM2's wait_ready: a worker is ready only once the app says so (<c>Cluster.Worker.SignalReady()</c>), besides its health checks.</summary>
    public bool? WaitReady { get; init; }
    public int? RestartDelay { get; init; }
    public int? MaxRestartDelay { get; init; }
    public int? MinUptime { get; init; }
    public int? StableAfter { get; init; }
    public int? MaxRestarts { get; init; }
    public int? ReloadBatchSize { get; init; }
    public int? HeartbeatInterval { get; init; }
    public long? MaxRequests { get; init; }
    public long? MaxRequestsJitter { get; init; }
    public long? MaxMemoryMb { get; init; }
    public int? MaxAge { get; init; }
    public int? DrainDelay { get; init; }
    public int? HeartbeatTimeout { get; init; }

    /// <summary>The scheduling policy (rr, none, leastbusy, sticky, stickyaddress), as <c>--policy</c> and HERD_SCHED_POLICY.</summary>
    public string? Policy { get; init; }
    /// <summary>--socket: addresses herd binds and passes to every worker from fd 3 (any language's server).</summary>
    public string[]? Sockets { get; init; }
    /// <summary>--metrics: the address (HOST:PORT) of one Prometheus scrape for the whole cluster.</summary>
    public string? Metrics { get; init; }

    public static HerdConfig Load(string path)
    {
        if (Directory.Exists(path)) throw new ConfigException($"{path} is a folder, not a herd.json file.");
        if (!File.Exists(path)) throw new ConfigException($"{path}: no such file.");
        try
        {
            return JsonSerializer.Deserialize(File.ReadAllText(path), HerdConfigJson.Default.HerdConfig) ?? new HerdConfig();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            throw new ConfigException($"{path}: {ex.Message}");
        }
        catch (JsonException ex)
        {
            var key = ex.Path is { Length: > 2 } at ? at[2..] : null;
            var problem = ex.Message.Contains("could not be mapped", StringComparison.Ordinal) ? "is not a setting herd knows"
                : key is null ? $"is not valid JSON ({ex.Message})" : "has a value of the wrong kind";
            throw new ConfigException($"{path}: {(key is null ? "the file" : $"'{key}'")} {problem}.");
        }
    }

    /// <summary>The supervisor's options: these settings over the defaults.</summary>
    public SupervisorOptions ToOptions(int workers)
    {
        var defaults = new SupervisorOptions();
        var options = new SupervisorOptions
        {
            Workers = workers,
            KillTimeout = Millis(KillTimeout, defaults.KillTimeout),
            ReadyTimeout = Millis(ReadyTimeout, defaults.ReadyTimeout),
            RestartDelay = Millis(RestartDelay, defaults.RestartDelay),
            MaxRestartDelay = Millis(MaxRestartDelay, defaults.MaxRestartDelay),
            MinUptime = Millis(MinUptime, defaults.MinUptime),
            StableAfter = Millis(StableAfter, defaults.StableAfter),
            MaxRestarts = MaxRestarts ?? defaults.MaxRestarts,
            ReloadBatchSize = ReloadBatchSize ?? defaults.ReloadBatchSize,
            MaxWorkers = MaxInstances ?? defaults.MaxWorkers,
            HeartbeatInterval = Millis(HeartbeatInterval, defaults.HeartbeatInterval),
            HeartbeatTimeout = Millis(HeartbeatTimeout, defaults.HeartbeatTimeout),
            MaxRequests = MaxRequests ?? defaults.MaxRequests,
            MaxRequestsJitter = MaxRequestsJitter ?? defaults.MaxRequestsJitter,
            MaxMemory = MaxMemoryMb is long mb ? Megabytes(mb) : defaults.MaxMemory,
            MaxAge = Millis(MaxAge, defaults.MaxAge),
            DrainDelay = Millis(DrainDelay, defaults.DrainDelay),
        };
        try
        {
            options.Validate();
        }
        catch (ArgumentOutOfRangeException ex)
        {
            var key = ex.ParamName switch { nameof(SupervisorOptions.Workers) => "instances", nameof(SupervisorOptions.MaxWorkers) => "maxInstances", var name => JsonNamingPolicy.CamelCase.ConvertName(name!) };
            throw new ConfigException($"{key}: {ex.Message.Split(" (Parameter", 2)[0]}");
        }
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

    // In bytes; out of range is an error that names the key as herd.json has it.
    private static long Megabytes(long mb) => mb switch
    {
        < 0 => throw new ConfigException("maxMemoryMb cannot be negative."),
        > long.MaxValue / 1048576 => throw new ConfigException($"maxMemoryMb is too large: at most {long.MaxValue / 1048576}."),
        _ => mb * 1048576,
    };

    private static TimeSpan Millis(int? value, TimeSpan fallback) => value is int ms ? TimeSpan.FromMilliseconds(ms) : fallback;
}

internal sealed class ConfigException(string message) : Exception(message);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, ReadCommentHandling = JsonCommentHandling.Skip, AllowTrailingCommas = true)]
[JsonSerializable(typeof(HerdConfig))]
internal sealed partial class HerdConfigJson : JsonSerializerContext;
