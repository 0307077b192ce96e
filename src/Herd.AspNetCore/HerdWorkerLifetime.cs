using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Herd.AspNetCore;

/// <summary>
/// Ties the worker to the host: Herd logs through the app's logging, the worker is ready once the app has started,
/// and a disconnect stops the app gracefully.
/// </summary>
internal sealed class HerdWorkerLifetime(IHostApplicationLifetime lifetime, ILoggerFactory loggerFactory) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        Cluster.Logger = loggerFactory.CreateLogger("Herd");
        Cluster.Worker.Disconnect += OnDisconnect;
        lifetime.ApplicationStarted.Register(Cluster.Worker.SignalReady);
        if (Cluster.Worker.ExitedAfterDisconnect) OnDisconnect(); // asked before the host was up
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken)
    {
        Cluster.Worker.Disconnect -= OnDisconnect;
        return Task.CompletedTask;
    }

    // Kestrel then stops accepting, finishes in-flight requests and closes idle keep-alive connections; Main returns.
    private void OnDisconnect() => lifetime.StopApplication();
}
