using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace Herd;

/// <summary>
/// Herd's instruments, on the meter named "Herd": readable with dotnet-counters (<c>--counters Herd</c>) and
/// OpenTelemetry (<c>AddMeter("Herd")</c>).
/// </summary>
internal static class HerdMetrics
{
    public const string MeterName = "Herd";

    private static readonly Meter s_meter = new(MeterName);
    private static readonly ConcurrentDictionary<ClusterPrimary, byte> s_primaries = new();

    /// <summary>Workers restarted after dying unexpectedly.</summary>
    public static readonly Counter<long> Restarts = s_meter.CreateCounter<long>("herd.worker.restarts", "{restart}", "Workers restarted after an unexpected exit.");

    static HerdMetrics()
    {
        s_meter.CreateObservableGauge("herd.connections.queued", () => s_primaries.Keys.Sum(p => p.QueuedConnections), "{connection}",
            "Connections accepted by the primary, waiting for a worker.");
        Connections("accepted", s => s.Accepted, "Connections the primary accepted for round robin.");
        Connections("handed", s => s.Handed, "Connections a worker took from the primary.");
        Connections("retried", s => s.Retried, "Handoffs retried with another worker after the first refused or died.");
        Connections("refused", s => s.Refused, "Connections the primary closed unserved: no worker was left.");
        s_meter.CreateObservableGauge("herd.workers", Workers, "{worker}", "Live workers, by state.");
        s_meter.CreateObservableGauge("herd.worker.requests", () => PerWorker(w => w.Requests), "{request}", "Requests each worker had served at its last heartbeat.");
        s_meter.CreateObservableGauge("herd.worker.connections", () => PerWorker(w => w.Connections), "{connection}", "Connections each worker had accepted at its last heartbeat.");
    }

    private static void Connections(string outcome, Func<ConnectionStats, long> value, string description) =>
        s_meter.CreateObservableCounter($"herd.connections.{outcome}", () => s_primaries.Keys.Sum(p => value(p.Connections)), "{connection}", description);

    /// <summary>
    /// The one way into the registry of primaries these instruments sum over: <paramref name="primary"/> is measured
    /// until the registration returned is disposed, which only its holder can do.
    /// </summary>
    public static IDisposable Measure(ClusterPrimary primary)
    {
        s_primaries[primary] = 0;
        return new Registration(primary);
    }

    private static IEnumerable<Measurement<int>> Workers() =>
        s_primaries.Keys.SelectMany(p => p.Workers.Values).GroupBy(w => w.State)
            .Select(g => new Measurement<int>(g.Count(), new KeyValuePair<string, object?>("state", g.Key.ToString().ToLowerInvariant())));

    private static IEnumerable<Measurement<long>> PerWorker(Func<Worker, long> value) =>
        s_primaries.Keys.SelectMany(p => p.Workers.Values)
            .Select(w => new Measurement<long>(value(w), new KeyValuePair<string, object?>("worker.id", w.Id), new KeyValuePair<string, object?>("worker.pid", w.Process.Id)));

    private sealed class Registration(ClusterPrimary primary) : IDisposable
    {
        public void Dispose() => s_primaries.TryRemove(primary, out _);
    }
}
