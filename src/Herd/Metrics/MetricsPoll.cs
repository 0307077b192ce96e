using System.Collections.Concurrent;
using Herd.Ipc;

namespace Herd.Metrics;

/// <summary>
/// The primary's side of <see cref="Acts.Metrics"/>: asks each live worker for its meters' state and waits a bounded
/// time for the answers; a worker that does not answer in time is left out of that scrape.
/// </summary>
internal sealed class MetricsPoll
{
    private readonly ConcurrentDictionary<int, (Worker Worker, TaskCompletionSource<MetricFamily[]?> Answer)> _asked = new();
    private int _seq;

    /// <summary>Every worker that answered within <paramref name="timeout"/>, with its families.</summary>
    public async Task<(Worker Worker, MetricFamily[] Families)[]> AskAsync(IEnumerable<Worker> workers, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var answers = await Task.WhenAll(workers.Where(w => !w.Channelless).Select(w => AskAsync(w, timeout, cancellationToken))).ConfigureAwait(false);
        return [.. answers.OfType<(Worker, MetricFamily[])>()];
    }

    private async Task<(Worker, MetricFamily[])?> AskAsync(Worker worker, TimeSpan timeout, CancellationToken cancellationToken)
    {
        int seq = Interlocked.Increment(ref _seq);
        var answer = new TaskCompletionSource<MetricFamily[]?>(TaskCreationOptions.RunContinuationsAsynchronously);
        _asked[seq] = (worker, answer);
        try
        {
            if (!worker.Channel.SendInternal(new InternalMessage { Act = Acts.Metrics, Seq = seq })) return null;
            return await answer.Task.WaitAsync(timeout, cancellationToken).ConfigureAwait(false) is { } families ? (worker, families) : null;
        }
        catch (TimeoutException)
        {
            return null;
        }
        finally
        {
            _asked.TryRemove(seq, out _);
        }
    }

    /// <summary>A worker's answer (without families when they would not fit a frame); one to a question it was not asked is dropped.</summary>
    public void Answer(Worker worker, InternalMessage message)
    {
        if (message.Ack is { } ack && _asked.TryGetValue(ack, out var asked) && asked.Worker == worker && _asked.TryRemove(ack, out _))
            asked.Answer.TrySetResult(message.Metrics);
    }
}
