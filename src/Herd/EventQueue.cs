using System.Threading.Channels;
using Microsoft.Extensions.Logging;

namespace Herd;

/// <summary>
/// Runs user event handlers one at a time, in the order their causes happened, off the threads that serve the
/// channels: a slow handler delays events, never connections. A handler that throws is logged, not fatal.
/// </summary>
internal sealed class EventQueue
{
    private readonly Channel<Action> _queue = Channel.CreateUnbounded<Action>(new UnboundedChannelOptions { SingleReader = true });

    public EventQueue() => _ = Task.Run(RunAsync);

    public void Post(Action raise) => _queue.Writer.TryWrite(raise);

    private async Task RunAsync()
    {
        await foreach (var raise in _queue.Reader.ReadAllAsync().ConfigureAwait(false))
        {
            try
            {
                raise();
            }
#pragma warning disable CA1031 // a user's handler must not take the cluster down with it
            catch (Exception ex)
#pragma warning restore CA1031
            {
                HerdLog.HandlerFailed(Cluster.Logger, ex);
            }
        }
    }
}
