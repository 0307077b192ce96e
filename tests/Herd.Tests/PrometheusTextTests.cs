using Herd.Metrics;

namespace Herd.Tests;

/// <summary>The exposition writer on its own: names, escaping, histograms, one HELP and TYPE per family.</summary>
public sealed class PrometheusTextTests
{
    private static readonly KeyValuePair<string, string>[] Worker1 = [new("worker", "1"), new("slot", "0")];
    private static readonly KeyValuePair<string, string>[] Worker2 = [new("worker", "2"), new("slot", "1")];

    [Theory]
    [InlineData("http.server.request.duration", "s", "Histogram", "http_server_request_duration_seconds")]
    [InlineData("kestrel.active_connections", "{connection}", "Gauge", "kestrel_active_connections")]
    [InlineData("herd.worker.restarts", "{restart}", "Counter", "herd_worker_restarts_total")]
    [InlineData("requests_total", null, "Counter", "requests_total")]
    [InlineData("dotnet.gc.heap.total_allocated", "By", "Counter", "dotnet_gc_heap_total_allocated_bytes_total")]
    [InlineData("dotnet.assembly.count", "{assembly}", "Gauge", "dotnet_assembly_count_value")]
    [InlineData("9lives-app/queue depth", "1", "Gauge", "_9lives_app_queue_depth")]
    [InlineData("job.duration_seconds", "s", "Histogram", "job_duration_seconds")]
    public void Names_follow_OpenTelemetrys_mapping(string name, string? unit, string kind, string expected) =>
        Assert.Equal(expected, PrometheusText.NameOf(new MetricFamily { Name = name, Unit = unit, Kind = Enum.Parse<MetricKind>(kind) }));

    [Fact]
    public void Label_values_and_help_are_escaped_and_tag_names_sanitised()
    {
        var family = new MetricFamily
        {
            Name = "app.jobs", Kind = MetricKind.Gauge, Description = "back\\slash\nnew line",
            Points = [new MetricPoint { Tags = new() { ["job.name"] = "a \"quoted\"\\path\nnext", ["worker"] = "spoofed" }, Value = 1.5 }],
        };
        var text = PrometheusText.Render([(Worker1, [family])]);
        Assert.Equal("""
            # HELP app_jobs back\\slash\nnew line
            # TYPE app_jobs gauge
            app_jobs{worker="1",slot="0",job_name="a \"quoted\"\\path\nnext"} 1.5

            """.Replace("\r\n", "\n", StringComparison.Ordinal), text);
    }

    [Fact]
    public void Histograms_are_cumulative_with_an_infinite_bucket_and_families_merge_across_workers()
    {
        MetricFamily Histogram(long[] buckets, double sum) => new()
        {
            Name = "work.duration", Unit = "s", Kind = MetricKind.Histogram, Description = "Work.", Bounds = [0.1, 1],
            Points = [new MetricPoint { Buckets = buckets, Sum = sum }],
        };
        var text = PrometheusText.Render([(Worker1, [Histogram([1, 2, 3], 9.5)]), (Worker2, [Histogram([0, 0, 1], 20)])]);
        Assert.Equal("""
            # HELP work_duration_seconds Work.
            # TYPE work_duration_seconds histogram
            work_duration_seconds_bucket{worker="1",slot="0",le="0.1"} 1
            work_duration_seconds_bucket{worker="1",slot="0",le="1"} 3
            work_duration_seconds_bucket{worker="1",slot="0",le="+Inf"} 6
            work_duration_seconds_sum{worker="1",slot="0"} 9.5
            work_duration_seconds_count{worker="1",slot="0"} 6
            work_duration_seconds_bucket{worker="2",slot="1",le="0.1"} 0
            work_duration_seconds_bucket{worker="2",slot="1",le="1"} 0
            work_duration_seconds_bucket{worker="2",slot="1",le="+Inf"} 1
            work_duration_seconds_sum{worker="2",slot="1"} 20
            work_duration_seconds_count{worker="2",slot="1"} 1

            """.Replace("\r\n", "\n", StringComparison.Ordinal), text);
    }

    [Fact]
    public void A_second_type_under_one_name_a_label_set_twice_and_a_malformed_histogram_point_are_dropped()
    {
        var counter = new MetricFamily { Name = "x", Kind = MetricKind.Counter, Points = [new MetricPoint { Value = 1 }] };
        var gauge = new MetricFamily { Name = "x_total", Kind = MetricKind.Gauge, Points = [new MetricPoint { Value = 2 }] };
        var broken = new MetricFamily { Name = "h", Kind = MetricKind.Histogram, Bounds = [1], Points = [new MetricPoint { Buckets = [1] }] };
        var twice = new MetricFamily
        {
            Name = "y", Kind = MetricKind.Gauge,
            Points = [new MetricPoint { Tags = new() { ["a.b"] = "1" }, Value = 1 }, new MetricPoint { Tags = new() { ["a_b"] = "1" }, Value = 2 }],
        };
        var text = PrometheusText.Render([(Worker1, [counter, broken, twice]), (Worker2, [gauge])]);
        Assert.Equal("# HELP h h\n# TYPE h histogram\n# HELP x_total x\n# TYPE x_total counter\nx_total{worker=\"1\",slot=\"0\"} 1\n# HELP y y\n# TYPE y gauge\ny{worker=\"1\",slot=\"0\",a_b=\"1\"} 1\n", text);
    }
}
