using System.Collections.Concurrent;

namespace Herd.Tests;

/// <summary>Clients that send requests one after another until stopped, counting what they sent and what failed.</summary>
internal sealed class RequestLoad : IAsyncDisposable
{
    private readonly CancellationTokenSource _stop = new();
    private readonly Task[] _clients;
    private int _sent;

    public RequestLoad(int clients, Func<Task> request)
    {
        _clients = [.. Enumerable.Range(0, clients).Select(_ => Task.Run(async () =>
        {
            while (!_stop.IsCancellationRequested)
            {
                try
                {
                    await request();
                }
                catch (HttpRequestException ex)
                {
                    Failures.Enqueue(ex);
                }
                Interlocked.Increment(ref _sent);
            }
        }))];
    }

    public ConcurrentQueue<Exception> Failures { get; } = new();

    public int Sent => Volatile.Read(ref _sent);

    /// <summary>Stops the clients and waits for their last requests.</summary>
    public async Task StopAsync()
    {
        await _stop.CancelAsync();
        await Task.WhenAll(_clients).WaitAsync(TestCluster.Timeout);
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _stop.Dispose();
    }
}
