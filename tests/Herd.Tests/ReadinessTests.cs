using System.Diagnostics;
using System.Net;
using HerdRun = Herd.Tests.CliTests.HerdRun;

namespace Herd.Tests;

/// <summary>A worker is ready, and gets traffic, only once its app says so: its health checks, or the app itself.</summary>
public sealed class ReadinessTests
{
    private static readonly TimeSpan Warmup = TimeSpan.FromSeconds(3);

    [Theory]
    [InlineData("rr")]
    [InlineData("none")]
    public async Task Reload_waits_for_the_ready_health_check_and_no_request_meets_a_worker_before_it(string policy)
    {
        // PlainWebApp's /ready check fails for its first READY_AFTER_MS; /ready answers 503 until then. Under round
        // robin the primary hands the new worker nothing before; on a shared socket the worker accepts nothing before.
        await using var herd = await HerdRun.StartAsync(workers: 1,
            ("READY_AFTER_MS", ((int)Warmup.TotalMilliseconds).ToString(System.Globalization.CultureInfo.InvariantCulture)), ("HERD_SCHED_POLICY", policy));
        using var http = new HttpClient { Timeout = TestCluster.Timeout };
        http.DefaultRequestHeaders.ConnectionClose = true;
        var ready = new Uri(herd.Uri, "/ready");
        var statuses = new System.Collections.Concurrent.ConcurrentQueue<HttpStatusCode>();
        using var stop = new CancellationTokenSource();
        var clients = Enumerable.Range(0, 2).Select(_ => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                using var response = await http.GetAsync(ready);
                statuses.Enqueue(response.StatusCode);
            }
        })).ToArray();

        var clock = Stopwatch.StartNew();
        var (code, output) = await HerdRun.CliAsync("reload", "--name", herd.Name);
        var took = clock.Elapsed;
        int duringReload = statuses.Count;
        await stop.CancelAsync();
        await Task.WhenAll(clients).WaitAsync(TestCluster.Timeout);

        Assert.True(code == 0, output);
        Assert.True(took >= Warmup, $"the reload returned after {took.TotalSeconds:0.0} s, before the new worker's check was Healthy");
        Assert.True(duringReload > 0);
        Assert.All(statuses, status => Assert.Equal(HttpStatusCode.OK, status));
    }

    [Fact]
    public async Task An_app_that_defers_readiness_is_ready_only_once_it_says_so()
    {
        var port = Ports.Free().ToString(System.Globalization.CultureInfo.InvariantCulture);
        await using var primary = new ClusterPrimary(new ClusterSettings { Exec = TestCluster.SampleDll, Args = ["--port", port, "--ready-after", "2000"], Silent = true });
        var listening = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        primary.Listening += (_, _) => listening.TrySetResult();
        long forked = Stopwatch.GetTimestamp();
        var worker = primary.Fork();
        await worker.Ready.WaitAsync(TestCluster.Timeout);
        var waited = Stopwatch.GetElapsedTime(forked);
        await listening.Task.WaitAsync(TestCluster.Timeout);
        // Listening comes as Kestrel binds, before the app has even started; the app says it is ready 2 s after it
        // started. Timed from the fork, not from the Listening event, which a busy primary may raise late.
        Assert.True(waited >= TimeSpan.FromSeconds(1.95), $"ready {waited.TotalSeconds:0.00} s after the fork");
    }

    [Fact]
    public async Task With_wait_ready_an_app_that_never_says_so_fails_the_start_within_the_ready_timeout()
    {
        // PlainWebApp knows nothing of Herd, so it never says it is ready: herd must not wait forever, nor call it ready.
        var config = Path.GetTempFileName();
        try
        {
            await File.WriteAllTextAsync(config, """{ "waitReady": true, "readyTimeout": 1500, "killTimeout": 500 }""");
            var clock = Stopwatch.StartNew();
            var (code, output) = await HerdRun.CliAsync("run", "-i", "1", "--config", config, "--name", "test-" + Guid.NewGuid().ToString("N")[..8],
                "--", "dotnet", TestCluster.PlainWebAppDll, "--urls", $"http://127.0.0.1:{Ports.Free()}");
            Assert.NotEqual(0, code);
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"exited after {clock.Elapsed}");
            Assert.Contains("not ready within 1.5 s", output, StringComparison.Ordinal);
            Assert.DoesNotContain(" running, ", output, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(config);
        }
    }
}
