using Herd.Ipc;

namespace Herd.Primary;

/// <summary>
/// Which one worker runs the cluster's one-worker jobs (PM2 users test <c>NODE_APP_INSTANCE === '0'</c>): the ready
/// worker in the lowest slot when one is chosen, kept until it leaves (asked to disconnect, cut off or dead), so that
/// a reload or a restart moves the jobs once, not back and forth. The old leader hears it is no longer one at the
/// same moment the new one hears it is: jobs overlap at most for the time the old one takes to stop them.
/// </summary>
internal sealed class Leadership
{
    private readonly Lock _gate = new();
    private Worker? _leader;

    /// <summary>
    /// Keeps the leader if it is among the candidates, else makes the one in the lowest slot leader, and tells both.
    /// The candidates are read under this lock, so that a late caller's older view cannot undo a newer election.
    /// </summary>
    public void Elect(Func<Worker[]> readCandidates)
    {
        lock (_gate)
        {
            var candidates = readCandidates();
            if (_leader is not null && candidates.Contains(_leader)) return;
            var old = _leader;
            _leader = candidates.OrderBy(w => w.Slot).ThenBy(w => w.Id).FirstOrDefault();
            if (old == _leader) return;
            old?.Channel.SendInternal(new InternalMessage { Act = Acts.Leader, Leader = false });
            _leader?.Channel.SendInternal(new InternalMessage { Act = Acts.Leader, Leader = true });
        }
    }

    /// <summary>Whether <paramref name="worker"/> may lead: ready, connected, and not on its way out.</summary>
    public static bool CanLead(Worker worker) =>
        !worker.Channelless && worker.Ready.IsCompleted && worker.IsConnected && !worker.IsDead && worker.ExitedAfterDisconnect != true;
}
