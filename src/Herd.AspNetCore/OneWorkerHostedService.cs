using System.Diagnostics.CodeAnalysis;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Herd.AspNetCore;

/// <summary>
/// Runs <typeparamref name="T"/> only while this worker is the cluster's leader (<see cref="CurrentWorker.IsLeader"/>):
/// starts a fresh instance when it becomes leader, stops it when it no longer is or the app stops. Outside a cluster
/// the process is its own leader and the service simply runs.
/// </summary>
internal sealed class OneWorkerHostedService<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] T>(IServiceProvider services) : IHostedService, IAsyncDisposable
    where T : class, IHostedService
{
    private readonly SemaphoreSlim _turn = new(1, 1);
    private T? _running;
    private bool _stopped;

    public async Task StartAsync(CancellationToken cancellationToken)
    {
        if (!Cluster.IsWorker)
        {
            await StartInnerAsync(cancellationToken).ConfigureAwait(false);
            return;
        }
        // Subscribed first, then reconciled: a change that arrives in between is not lost.
        Cluster.Worker.LeaderChanged += OnLeaderChanged;
        await ReconcileAsync(cancellationToken).ConfigureAwait(false);
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        if (Cluster.IsWorker) Cluster.Worker.LeaderChanged -= OnLeaderChanged;
        await _turn.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            _stopped = true;
            await StopInnerAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _turn.Release();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync(CancellationToken.None).ConfigureAwait(false);
        _turn.Dispose();
    }

    private void OnLeaderChanged(bool leader) => _ = ReconcileAsync(CancellationToken.None);

    private async Task ReconcileAsync(CancellationToken cancellationToken)
    {
        await _turn.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            if (_stopped) return;
            if (Cluster.Worker.IsLeader) await StartInnerAsync(cancellationToken).ConfigureAwait(false);
            else await StopInnerAsync(cancellationToken).ConfigureAwait(false);
        }
        finally
        {
            _turn.Release();
        }
    }

    // A stopped BackgroundService cannot start again: each term as leader gets its own instance.
    private async Task StartInnerAsync(CancellationToken cancellationToken)
    {
        if (_running is not null) return;
        var inner = ActivatorUtilities.CreateInstance<T>(services);
        await inner.StartAsync(cancellationToken).ConfigureAwait(false);
        _running = inner;
    }

    private async Task StopInnerAsync(CancellationToken cancellationToken)
    {
        if (_running is not { } inner) return;
        _running = null;
        await inner.StopAsync(cancellationToken).ConfigureAwait(false);
        switch (inner)
        {
            case IAsyncDisposable asyncDisposable:
                await asyncDisposable.DisposeAsync().ConfigureAwait(false);
                break;
            case IDisposable disposable:
                disposable.Dispose();
                break;
        }
    }
}
