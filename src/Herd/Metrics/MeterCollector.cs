using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Globalization;

namespace Herd.Metrics;

/// <summary>
/// Keeps the cumulative state of every instrument of the meters it includes, per tag set, for a scrape: counters and
/// up-down counters sum what they record, gauges and observable instruments keep their last value (observed at
/// <see cref="Collect"/>), histograms count into buckets. A worker runs one only when <c>herd run --metrics</c> asked.
/// </summary>
internal sealed class MeterCollector : IDisposable
{
    /// <summary>Set (to the address herd serves) by <c>herd run --metrics</c>, in its environment and so its workers'.</summary>
    internal const string Variable = "HERD_METRICS";

    /// <summary>
    /// Series kept per instrument, as OpenTelemetry's default cardinality limit: past it, new tag sets (a tag with
    /// unbounded values) go to one overflow series tagged <c>otel.metric.overflow</c>, and the worker's memory stays bounded.
    /// </summary>
    internal const int MaxSeries = 2000;

    private static readonly KeyValuePair<string, object?>[] Overflow = [new("otel.metric.overflow", "true")];

    // OpenTelemetry's default explicit bounds, for histograms whose instrument gives no advice.
    private static readonly double[] DefaultBounds = [0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000];

    private readonly MeterListener _listener = new();
    private readonly ConcurrentDictionary<Instrument, InstrumentState> _instruments = new();
    private readonly Lock _collecting = new();

    public MeterCollector(Func<Meter, bool> include)
    {
        _listener.InstrumentPublished = (instrument, listener) =>
        {
            if (!include(instrument.Meter)) return;
            var state = _instruments.GetOrAdd(instrument, static i => new InstrumentState(i));
            listener.EnableMeasurementEvents(instrument, state);
        };
        _listener.MeasurementsCompleted = (instrument, _) => _instruments.TryRemove(instrument, out InstrumentState? _);
        _listener.SetMeasurementEventCallback<byte>((_, value, tags, state) => ((InstrumentState)state!).Record(value, tags));
        _listener.SetMeasurementEventCallback<short>((_, value, tags, state) => ((InstrumentState)state!).Record(value, tags));
        _listener.SetMeasurementEventCallback<int>((_, value, tags, state) => ((InstrumentState)state!).Record(value, tags));
        _listener.SetMeasurementEventCallback<long>((_, value, tags, state) => ((InstrumentState)state!).Record(value, tags));
        _listener.SetMeasurementEventCallback<float>((_, value, tags, state) => ((InstrumentState)state!).Record(value, tags));
        _listener.SetMeasurementEventCallback<double>((_, value, tags, state) => ((InstrumentState)state!).Record(value, tags));
        _listener.SetMeasurementEventCallback<decimal>((_, value, tags, state) => ((InstrumentState)state!).Record((double)value, tags));
        _listener.Start();
    }

    /// <summary>Whether this process was asked to collect (<see cref="Variable"/> is set).</summary>
    public static bool Enabled => !string.IsNullOrEmpty(Environment.GetEnvironmentVariable(Variable));

    /// <summary>Observes the observable instruments, then returns every instrument that has a point.</summary>
    public MetricFamily[] Collect()
    {
        lock (_collecting)
        {
            // An observable's callback says what exists now: a tag set it no longer reports is gone.
            foreach (var state in _instruments.Values) state.ForgetObserved();
            _listener.RecordObservableInstruments();
            return [.. _instruments.Values.Select(s => s.Snapshot()).Where(f => f.Points.Length > 0)];
        }
    }

    public void Dispose() => _listener.Dispose();

    private sealed class InstrumentState
    {
        private readonly Instrument _instrument;
        private readonly MetricKind _kind;
        private readonly bool _adds; // sums what it records; else keeps the last value
        private readonly double[]? _bounds;
        private readonly Dictionary<string, Series> _series = [];
        private readonly Lock _gate = new();

        public InstrumentState(Instrument instrument)
        {
            _instrument = instrument;
            var type = instrument.GetType();
            var definition = type.IsGenericType ? type.GetGenericTypeDefinition() : null;
            _kind = definition == typeof(Histogram<>) ? MetricKind.Histogram
                : definition == typeof(Counter<>) || definition == typeof(ObservableCounter<>) ? MetricKind.Counter
                : MetricKind.Gauge;
            _adds = !instrument.IsObservable && definition != typeof(Gauge<>);
            if (_kind == MetricKind.Histogram) _bounds = AdvisedBounds(instrument) ?? DefaultBounds;
        }

        public void Record(double value, ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            var key = KeyOf(tags);
            lock (_gate)
            {
                if (!_series.TryGetValue(key, out var series) && _series.Count >= MaxSeries)
                {
                    tags = Overflow;
                    key = KeyOf(tags);
                    _series.TryGetValue(key, out series);
                }
                if (series is null)
                {
                    series = new Series(TagsOf(tags), _bounds is null ? null : new long[_bounds.Length + 1]);
                    _series[key] = series;
                }
                if (series.Buckets is { } buckets)
                {
                    int at = Array.BinarySearch(_bounds!, value);
                    buckets[at >= 0 ? at : ~at]++; // le is inclusive: a value equal to a bound is in its bucket
                    series.Sum += value;
                }
                else
                {
                    series.Value = _adds ? series.Value + value : value;
                }
            }
        }

        public void ForgetObserved()
        {
            if (!_instrument.IsObservable) return;
            lock (_gate) _series.Clear();
        }

        public MetricFamily Snapshot()
        {
            lock (_gate)
            {
                return new MetricFamily
                {
                    Name = _instrument.Name, Unit = _instrument.Unit, Description = _instrument.Description, Kind = _kind, Bounds = _bounds,
                    Points = [.. _series.Values.Select(s => new MetricPoint
                    {
                        Tags = s.Tags, Value = s.Value, Buckets = s.Buckets is { } b ? [.. b] : null, Sum = s.Sum,
                    })],
                };
            }
        }

        private static double[]? AdvisedBounds(Instrument instrument) => instrument switch
        {
            Instrument<double> i => i.Advice?.HistogramBucketBoundaries?.ToArray(),
            Instrument<float> i => i.Advice?.HistogramBucketBoundaries?.Select(b => (double)b).ToArray(),
            Instrument<long> i => i.Advice?.HistogramBucketBoundaries?.Select(b => (double)b).ToArray(),
            Instrument<int> i => i.Advice?.HistogramBucketBoundaries?.Select(b => (double)b).ToArray(),
            Instrument<short> i => i.Advice?.HistogramBucketBoundaries?.Select(b => (double)b).ToArray(),
            Instrument<byte> i => i.Advice?.HistogramBucketBoundaries?.Select(b => (double)b).ToArray(),
            Instrument<decimal> i => i.Advice?.HistogramBucketBoundaries?.Select(b => (double)b).ToArray(),
            _ => null,
        } is { Length: > 0 } bounds ? bounds : null; // ascending: InstrumentAdvice checks

        // The same tags in any order are one series.
        private static string KeyOf(ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            if (tags.IsEmpty) return "";
            var pairs = new string[tags.Length];
            for (int i = 0; i < tags.Length; i++) pairs[i] = $"{tags[i].Key}\u0000{TextOf(tags[i].Value)}";
            Array.Sort(pairs, StringComparer.Ordinal);
            return string.Join('\u0001', pairs);
        }

        private static Dictionary<string, string> TagsOf(ReadOnlySpan<KeyValuePair<string, object?>> tags)
        {
            var map = new Dictionary<string, string>(tags.Length);
            foreach (var (key, value) in tags) map[key] = TextOf(value);
            return map;
        }

        private static string TextOf(object? value) => Convert.ToString(value, CultureInfo.InvariantCulture) ?? "";
    }

    private sealed class Series(Dictionary<string, string> tags, long[]? buckets)
    {
        public Dictionary<string, string> Tags { get; } = tags;
        public long[]? Buckets { get; } = buckets;
        public double Value { get; set; }
        public double Sum { get; set; }
    }
}
