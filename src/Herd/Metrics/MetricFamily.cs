using System.Text.Json.Serialization;

namespace Herd.Metrics;

/// <summary>How a family's points add up across collections, as Prometheus types them.</summary>
internal enum MetricKind
{
    /// <summary>Only goes up: <c>Counter&lt;T&gt;</c>, <c>ObservableCounter&lt;T&gt;</c>.</summary>
    Counter = 1,

    /// <summary>A value now: up-down counters and gauges, synchronous or observable.</summary>
    Gauge = 2,

    /// <summary>Bucket counts, sum and count: <c>Histogram&lt;T&gt;</c>.</summary>
    Histogram = 3,
}

/// <summary>One instrument's cumulative state in one process, as a worker sends it to the primary.</summary>
internal sealed class MetricFamily
{
    public string Name { get; set; } = "";
    public string? Unit { get; set; }
    public string? Description { get; set; }
    public MetricKind Kind { get; set; }

    /// <summary>Histograms: the buckets' upper bounds, ascending; each point has one more bucket, the overflow (+Inf).</summary>
    [JsonNumberHandling(JsonNumberHandling.AllowNamedFloatingPointLiterals)]
    public double[]? Bounds { get; set; }

    public MetricPoint[] Points { get; set; } = [];
}

/// <summary>One tag set's state: its value, or its histogram's buckets (not cumulative; their total is the count) and sum.</summary>
[JsonNumberHandling(JsonNumberHandling.AllowNamedFloatingPointLiterals)]
internal sealed class MetricPoint
{
    public Dictionary<string, string> Tags { get; set; } = [];
    public double Value { get; set; }
    public long[]? Buckets { get; set; }
    public double Sum { get; set; }
}
