using System.Text.Json;
using Herd.Ipc;
using Herd.Metrics;

namespace Herd.Child;

/// <summary>A worker's answer to the primary's <see cref="Acts.Metrics"/>.</summary>
internal static class MetricsReply
{
    /// <summary>
    /// The meters' state; without it when it would not fit one frame, which would cut this worker off the cluster:
    /// the primary then counts the worker missing from the scrape rather than losing it.
    /// </summary>
    public static InternalMessage To(int seq, MeterCollector? meters)
    {
        var reply = new InternalMessage { Act = Acts.Metrics, Ack = seq, Metrics = meters?.Collect() ?? [] };
        if (JsonSerializer.SerializeToUtf8Bytes(reply, IpcJsonContext.Default.InternalMessage).Length >= WorkerChannel.MaxFrame) reply.Metrics = null;
        return reply;
    }
}
