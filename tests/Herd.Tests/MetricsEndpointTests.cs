using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using Herd.Native;
using static Herd.Tests.CliTests;

namespace Herd.Tests;

/// <summary>Skips a test when Debian's prometheus is not installed (.ci/run installs it).</summary>
public sealed class PrometheusFactAttribute : FactAttribute
{
    public const string Prometheus = "/usr/bin/prometheus";
    public const string Promtool = "/usr/bin/promtool";

    public PrometheusFactAttribute()
    {
        if (!File.Exists(Prometheus) || !File.Exists(Promtool)) Skip = $"{Prometheus} is not installed (apt-get install prometheus; .ci/run does)";
    }
}

/// <summary><c>herd run --metrics</c>: one Prometheus scrape for the whole cluster, each worker's series labelled.</summary>
public sealed partial class MetricsEndpointTests
{
    private const int Requests = 20;
    private const string RequestCount = "http_server_request_duration_seconds_count";

    [Fact]
    public async Task One_scrape_counts_every_workers_requests_under_its_own_worker_label()
    {
        int port = Ports.Free();
        await using var herd = await HerdRun.StartAsync(workers: 2, config: $$"""{ "metrics": "127.0.0.1:{{port}}" }""");
        using var http = new HttpClient { Timeout = TestCluster.Timeout };
        var scrape = new Uri($"http://127.0.0.1:{port}/metrics");
        Assert.Equal(2, (await herd.PidsServingAsync(Requests)).Count);

        // A request is counted once its response is out: the last may be counted a moment after the client has it.
        var exposition = await UntilCountedAsync(() => http.GetStringAsync(scrape), Requests);

        var samples = Parse(exposition);
        var counts = samples.Where(s => s.Name == RequestCount).ToArray();
        Assert.Equal(2, counts.Select(s => s.Labels["worker"]).Distinct().Count());
        Assert.All(counts, s => Assert.True(s.Labels.ContainsKey("slot")));
        Assert.All(counts, s => Assert.True(s.Value > 0)); // round robin sent each worker some
        Assert.Equal(0, samples.Single(s => s.Name == "herd_scrape_workers_missing").Value);
        Assert.Contains(samples, s => s.Name == "herd_connections_accepted_total" && !s.Labels.ContainsKey("worker"));
        Assert.Contains(samples, s => s.Name.StartsWith("kestrel_", StringComparison.Ordinal) && s.Labels.ContainsKey("worker"));
        var buckets = samples.Where(s => s.Name == "http_server_request_duration_seconds_bucket" && s.Labels["le"] == "+Inf").Sum(s => s.Value);
        Assert.Equal(Requests, buckets);

        using var missing = await http.GetAsync(new Uri($"http://127.0.0.1:{port}/nothing"));
        Assert.Equal(System.Net.HttpStatusCode.NotFound, missing.StatusCode);
        if (File.Exists(PrometheusFactAttribute.Promtool)) await AssertPromtoolPassesAsync(exposition);
    }

    [Fact]
    public async Task A_worker_that_does_not_answer_is_left_out_and_counted_missing()
    {
        int port = Ports.Free();
        await using var herd = await HerdRun.StartAsync(workers: 2, config: $$"""{ "metrics": "127.0.0.1:{{port}}", "heartbeatTimeout": 60000 }""");
        using var http = new HttpClient { Timeout = TestCluster.Timeout };
        var scrape = new Uri($"http://127.0.0.1:{port}/metrics");
        Assert.Equal(2, (await herd.PidsServingAsync(Requests)).Count);
        await UntilCountedAsync(() => http.GetStringAsync(scrape), Requests);
        var stopped = (await herd.LsAsync())[0];
        Fd.Kill(stopped, (int)UnixSignal.SIGSTOP);
        try
        {
            var clock = Stopwatch.StartNew();
            var samples = Parse(await http.GetStringAsync(scrape));
            Assert.True(clock.Elapsed >= TimeSpan.FromSeconds(1.5), $"answered in {clock.Elapsed}, before the wait for the stopped worker ran out");
            Assert.Equal(1, samples.Single(s => s.Name == "herd_scrape_workers_missing").Value);
            Assert.Single(samples.Where(s => s.Name == RequestCount).Select(s => s.Labels["worker"]).Distinct());
        }
        finally
        {
            Fd.Kill(stopped, (int)UnixSignal.SIGCONT);
        }
    }

    [Fact]
    public async Task A_bad_metrics_address_is_a_clear_error()
    {
        var (code, output) = await HerdRun.CliAsync("run", "-i", "1", "--name", "test-" + Guid.NewGuid().ToString("N")[..8], "--metrics", "ftp://127.0.0.1:9464", "--", "sleep", "60");
        Assert.Equal(2, code);
        Assert.Contains("metrics must be HOST:PORT or http://HOST:PORT, not 'ftp://127.0.0.1:9464'", output, StringComparison.Ordinal);
    }

    [PrometheusFact]
    public async Task A_real_Prometheus_scrapes_the_cluster_total()
    {
        int port = Ports.Free(), web = Ports.Free();
        await using var herd = await HerdRun.StartAsync(workers: 2, config: null, command: null, ("HERD_METRICS", $"http://127.0.0.1:{port}"));
        Assert.Equal(2, (await herd.PidsServingAsync(Requests)).Count);
        var folder = Directory.CreateTempSubdirectory("herd-prometheus-");
        var config = Path.Combine(folder.FullName, "prometheus.yml");
        await File.WriteAllTextAsync(config, $"""
            global:
              scrape_interval: 1s
            scrape_configs:
              - job_name: herd
                static_configs:
                  - targets: ['127.0.0.1:{port}']
            """);
        var prometheus = TestProcess.Start([PrometheusFactAttribute.Prometheus, $"--config.file={config}",
            $"--storage.tsdb.path={Path.Combine(folder.FullName, "data")}", $"--web.listen-address=127.0.0.1:{web}"]);
        try
        {
            using var http = new HttpClient { Timeout = TestCluster.Timeout };
            var query = new Uri($"http://127.0.0.1:{web}/api/v1/query?query=sum({RequestCount})");
            var clock = Stopwatch.StartNew();
            double total = -1;
            while (total != Requests)
            {
                Assert.True(clock.Elapsed < TestCluster.Timeout, $"Prometheus's total is {total}, not {Requests}:\n{string.Join('\n', prometheus.Errors.Lines.TakeLast(20))}");
                Assert.False(prometheus.HasExited, prometheus.Errors.ToString());
                await Task.Delay(200);
                try
                {
                    using var answer = JsonDocument.Parse(await http.GetStringAsync(query));
                    var result = answer.RootElement.GetProperty("data").GetProperty("result");
                    if (result.GetArrayLength() == 1) total = double.Parse(result[0].GetProperty("value")[1].GetString()!, CultureInfo.InvariantCulture);
                }
                catch (HttpRequestException)
                {
                    // not up yet
                }
            }
            using var scraped = new HttpClient { Timeout = TestCluster.Timeout };
            await AssertPromtoolPassesAsync(await scraped.GetStringAsync(new Uri($"http://127.0.0.1:{port}/metrics")));
        }
        finally
        {
            await prometheus.DisposeAsync();
            folder.Delete(recursive: true);
        }
    }

    private static async Task<string> UntilCountedAsync(Func<Task<string>> scrape, int requests)
    {
        string exposition = "";
        await TestCluster.UntilAsync(async () =>
        {
            exposition = await scrape();
            double counted = Parse(exposition).Where(s => s.Name == RequestCount).Sum(s => s.Value);
            Assert.True(counted <= requests, $"counted {counted} of {requests}:\n{exposition}");
            return counted == requests;
        }, $"{requests} requests counted");
        return exposition;
    }

    private static async Task AssertPromtoolPassesAsync(string exposition)
    {
        var file = Path.GetTempFileName();
        try
        {
            await File.WriteAllTextAsync(file, exposition);
            var (code, output) = await TestProcess.RunAsync(["sh", "-c", $"{PrometheusFactAttribute.Promtool} check metrics < '{file}'"]);
            Assert.True(code == 0, output);
        }
        finally
        {
            File.Delete(file);
        }
    }

    private sealed record Sample(string Name, Dictionary<string, string> Labels, double Value);

    // The text format 0.0.4, strictly: HELP then TYPE once per family before its samples, well-formed labels and values.
    private static List<Sample> Parse(string exposition)
    {
        var samples = new List<Sample>();
        var types = new Dictionary<string, string>(StringComparer.Ordinal);
        var helped = new HashSet<string>(StringComparer.Ordinal);
        Assert.EndsWith("\n", exposition);
        foreach (var line in exposition.TrimEnd('\n').Split('\n'))
        {
            if (line.StartsWith("# HELP ", StringComparison.Ordinal))
            {
                Assert.True(helped.Add(line.Split(' ')[2]), $"a second HELP: {line}");
                continue;
            }
            if (line.StartsWith("# TYPE ", StringComparison.Ordinal))
            {
                var parts = line.Split(' ');
                Assert.Contains(parts[3], new[] { "counter", "gauge", "histogram" });
                Assert.True(types.TryAdd(parts[2], parts[3]), $"a second TYPE: {line}");
                continue;
            }
            var match = SampleLine().Match(line);
            Assert.True(match.Success, $"not a sample: {line}");
            var name = match.Groups["name"].Value;
            var family = Regex.Replace(name, "_(bucket|sum|count)$", "");
            Assert.True(types.ContainsKey(name) || types.GetValueOrDefault(family) == "histogram", $"no TYPE before {line}");
            var labels = new Dictionary<string, string>(StringComparer.Ordinal);
            foreach (Match label in Label().Matches(match.Groups["labels"].Value))
                Assert.True(labels.TryAdd(label.Groups[1].Value, Regex.Unescape(label.Groups[2].Value)), $"a label twice: {line}");
            var value = match.Groups["value"].Value;
            samples.Add(new Sample(name, labels, value switch
            {
                "+Inf" => double.PositiveInfinity,
                "-Inf" => double.NegativeInfinity,
                _ => double.Parse(value, NumberStyles.Float, CultureInfo.InvariantCulture),
            }));
        }
        return samples;
    }

    [GeneratedRegex("""^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?<labels>([a-zA-Z_][a-zA-Z0-9_]*="(\\[\\"n]|[^\\"\n])*")(,[a-zA-Z_][a-zA-Z0-9_]*="(\\[\\"n]|[^\\"\n])*")*)?\})? (?<value>\S+)$""")]
    private static partial Regex SampleLine();

    [GeneratedRegex(@"([a-zA-Z_][a-zA-Z0-9_]*)=""((?:\\[\\""n]|[^\\""\n])*)""")]
    private static partial Regex Label();
}
