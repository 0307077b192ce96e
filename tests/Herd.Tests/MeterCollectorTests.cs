using System.Diagnostics.Metrics;
using Herd.Metrics;

namespace Herd.Tests;

/// <summary>What a worker keeps of its meters between scrapes, per instrument and tag set.</summary>
public sealed class MeterCollectorTests
{
    [Fact]
    public void Counters_sum_gauges_keep_the_last_value_and_histograms_count_into_advised_buckets()
    {
        using var meter = new Meter("test." + Guid.NewGuid().ToString("N"));
        using var collector = new MeterCollector(m => m == meter);
        var counter = meter.CreateCounter<long>("jobs.done", "{job}");
        var upDown = meter.CreateUpDownCounter<int>("jobs.running");
        var gauge = meter.CreateGauge<double>("queue.depth");
        var histogram = meter.CreateHistogram<double>("job.duration", "s", advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = [0.1, 1] });
        var defaultBuckets = meter.CreateHistogram<int>("job.size");
        int observed = 7;
        meter.CreateObservableGauge("workers.busy", () => observed);

        counter.Add(2, new KeyValuePair<string, object?>("kind", "a"), new KeyValuePair<string, object?>("queue", "q"));
        counter.Add(3, new KeyValuePair<string, object?>("queue", "q"), new KeyValuePair<string, object?>("kind", "a")); // same tags, other order
        counter.Add(1, new KeyValuePair<string, object?>("kind", "b"));
        upDown.Add(5);
        upDown.Add(-2);
        gauge.Record(4);
        gauge.Record(1.5);
        foreach (var value in new[] { 0.05, 0.1, 0.5, 3 }) histogram.Record(value);
        defaultBuckets.Record(5);
        defaultBuckets.Record(20000);
        var families = collector.Collect().ToDictionary(f => f.Name);
        observed = 9;
        var again = collector.Collect().ToDictionary(f => f.Name);

        Assert.Equal(MetricKind.Counter, families["jobs.done"].Kind);
        Assert.Equal(5, families["jobs.done"].Points.Single(p => p.Tags["kind"] == "a").Value);
        Assert.Equal(1, families["jobs.done"].Points.Single(p => p.Tags["kind"] == "b").Value);
        Assert.Equal((MetricKind.Gauge, 3.0), (families["jobs.running"].Kind, families["jobs.running"].Points.Single().Value));
        Assert.Equal((MetricKind.Gauge, 1.5), (families["queue.depth"].Kind, families["queue.depth"].Points.Single().Value));
        Assert.Equal(7, families["workers.busy"].Points.Single().Value);
        Assert.Equal(9, again["workers.busy"].Points.Single().Value);
        var duration = families["job.duration"];
        Assert.Equal([0.1, 1], duration.Bounds!);
        Assert.Equal([2L, 1, 1], duration.Points.Single().Buckets!); // le is inclusive: 0.1 is in the first bucket
        Assert.Equal(3.65, duration.Points.Single().Sum, 9);
        Assert.Equal([0.0, 5, 10, 25, 50, 75, 100, 250, 500, 750, 1000, 2500, 5000, 7500, 10000], families["job.size"].Bounds!);
        Assert.Equal(1, families["job.size"].Points.Single().Buckets![1]);
        Assert.Equal(1, families["job.size"].Points.Single().Buckets![^1]);
    }

    [Fact]
    public void Tag_sets_past_the_limit_go_to_one_overflow_series()
    {
        using var meter = new Meter("test." + Guid.NewGuid().ToString("N"));
        using var collector = new MeterCollector(m => m == meter);
        var counter = meter.CreateCounter<long>("requests");
        for (int i = 0; i < MeterCollector.MaxSeries + 10; i++) counter.Add(1, new KeyValuePair<string, object?>("user", i));

        var points = collector.Collect().Single().Points;
        Assert.Equal(MeterCollector.MaxSeries + 1, points.Length);
        Assert.Equal(10, points.Single(p => p.Tags.ContainsKey("otel.metric.overflow")).Value);
    }
}
