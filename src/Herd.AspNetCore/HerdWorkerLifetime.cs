using System.Diagnostics;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Herd.AspNetCore;

/// <summary>
/// Ties the worker to the host: Herd logs through the app's logging; the worker is ready once the app has started and
/// its health checks report Healthy; a disconnect stops the app, after a drain (<see cref="WorkerDrain"/>) that lets
/// its clients go without racing them.
/// </summary>
internal sealed partial class HerdWorkerLifetime(IHostApplicationLifetime lifetime, ILoggerFactory loggerFactory, IServiceProvider services, WorkerDrain drain)
    : IHostedLifecycleService
{
    /// <summary>The tag that marks the health checks readiness waits for (as Kubernetes' readiness probes are usually mapped); with none tagged, all count.</summary>
    internal const string ReadyTag = "ready";

    private static readonly TimeSpan FirstPoll = TimeSpan.FromMilliseconds(50);
    private static readonly TimeSpan LongestPoll = TimeSpan.FromSeconds(1);

    // Kept from the kill timeout for what follows the drain: Kestrel's stop, the host's, the process's exit.
    private static readonly TimeSpan StopMargin = TimeSpan.FromSeconds(1);

    private ILogger _logger = NullLogger.Instance;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        Cluster.LogThroughHost(_logger = loggerFactory.CreateLogger("Herd"));
        Cluster.Worker.Disconnect += OnDisconnect;
        lifetime.ApplicationStarted.Register(() => _ = BecomeReadyAsync(lifetime.ApplicationStopping));
        if (Cluster.Worker.ExitedAfterDisconnect) OnDisconnect(); // asked before the host was up
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        Cluster.Worker.Disconnect -= OnDisconnect;
        return Task.CompletedTask;
    }

    /// <summary>Before any hosted service stops, Kestrel included: a worker that was disconnected drains first.</summary>
    public async Task StoppingAsync(CancellationToken cancellationToken)
    {
        // Only a disconnect closed the listeners; a stop of another kind has nothing that would let the drain end.
        if (!Cluster.Worker.ExitedAfterDisconnect) return;
        var killTimeout = Cluster.Worker.KillTimeout;
        var bound = killTimeout - TimeSpan.FromTicks(Math.Min(StopMargin.Ticks, killTimeout.Ticks / 2));
        var clock = Stopwatch.StartNew();
        int left = await drain.DrainAsync(bound, cancellationToken).ConfigureAwait(false);
        if (left > 0) LogDrainCut(_logger, Cluster.Worker.Id, left, clock.Elapsed.TotalSeconds);
    }

    public Task StartingAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StartedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public Task StoppedAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    // Kestrel stops only after the drain: see StoppingAsync.
    private void OnDisconnect() => lifetime.StopApplication();

    // The checks run here, in the worker, through HealthCheckService: no endpoint need be mapped, and none is reached
    // over HTTP, which a worker that is not ready yet gets no traffic on.
    private async Task BecomeReadyAsync(CancellationToken stopping)
    {
        if (services.GetService<HealthCheckService>() is { } health)
        {
            bool anyTagged = services.GetRequiredService<IOptions<HealthCheckServiceOptions>>().Value.Registrations.Any(r => r.Tags.Contains(ReadyTag));
            Func<HealthCheckRegistration, bool>? predicate = anyTagged ? r => r.Tags.Contains(ReadyTag) : null;
            var clock = Stopwatch.StartNew();
            var interval = FirstPoll;
            bool waited = false;
            try
            {
                HealthReport report;
                while ((report = await health.CheckHealthAsync(predicate, stopping).ConfigureAwait(false)).Status != HealthStatus.Healthy)
                {
                    if (!waited) LogWaitingForHealth(_logger, Cluster.Worker.Id, anyTagged ? $"tagged '{ReadyTag}'" : "all", Describe(report));
                    waited = true;
                    await Task.Delay(interval, stopping).ConfigureAwait(false);
                    interval = TimeSpan.FromTicks(Math.Min(interval.Ticks * 2, LongestPoll.Ticks));
                }
            }
            catch (OperationCanceledException)
            {
                return; // stopping before it was ever ready
            }
            if (waited) LogHealthy(_logger, Cluster.Worker.Id, clock.Elapsed.TotalSeconds);
        }
        Cluster.Worker.SignalHostReady();
    }

    private static string Describe(HealthReport report) => string.Join(", ", report.Entries
        .Where(e => e.Value.Status != HealthStatus.Healthy)
        .Select(e => $"{e.Key}: {e.Value.Status}{(e.Value.Description is { } why ? $" ({why})" : "")}"));

    [LoggerMessage(Level = LogLevel.Information, Message = "Worker {Id} is not ready until its health checks ({Which}) report Healthy: {Failing}")]
    private static partial void LogWaitingForHealth(ILogger logger, int id, string which, string failing);

    [LoggerMessage(Level = LogLevel.Information, Message = "Worker {Id}'s health checks report Healthy after {Seconds:0.0} s; it is ready")]
    private static partial void LogHealthy(ILogger logger, int id, double seconds);

    [LoggerMessage(Level = LogLevel.Information, Message = "Worker {Id} drained for {Seconds:0.0} s; its {Open} connection(s) still open close now")]
    private static partial void LogDrainCut(ILogger logger, int id, int open, double seconds);
}
