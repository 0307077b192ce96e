using Herd.Supervision;

namespace Herd;

public sealed partial class Supervisor
{
    /// <summary>
    /// A start, reload, restart or scale: begun by the loop when its turn comes, then moved on by the events of the
    /// workers it forked or retired, until it succeeds or fails. Only the loop calls it.
    /// </summary>
    private abstract class Operation(Supervisor supervisor)
    {
        protected Supervisor S { get; } = supervisor;

        public TaskCompletionSource Done { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public abstract void Begin();

        /// <summary>A worker is ready.</summary>
        public virtual void OnReady(Worker worker)
        {
        }

        /// <summary>A worker died before it was ready, or was not ready in time (<paramref name="exit"/> null). True: this operation took care of its slot.</summary>
        public virtual bool OnNotReady(Worker worker, WorkerExit? exit, bool connected) => false;

        /// <summary>A worker asked to leave has exited.</summary>
        public virtual void OnLeft(Worker worker)
        {
        }

        /// <summary>A stop pre-empts this operation: it gives up the workers it forked that are not serving yet.</summary>
        public virtual void Cancel()
        {
        }

        public void Succeed()
        {
            Finish(null);
            S._settle.Add(() => Done.TrySetResult());
        }

        public void Fail(Exception error)
        {
            Finish(error);
            S._settle.Add(() => Done.TrySetException(error));
        }

        protected virtual void Finish(Exception? error)
        {
            if (S._active == this) S._active = null;
        }
    }

    /// <summary>Forks the first workers; done when every one is ready. A worker that fails fails the start, and its slot restarts as after any crash.</summary>
    private sealed class Start(Supervisor supervisor) : Operation(supervisor)
    {
        private readonly HashSet<Worker> _waiting = [];

        public override void Begin()
        {
            if (S._state != SupervisorState.Idle)
            {
                Fail(new InvalidOperationException($"The supervisor is {S._state}."));
                return;
            }
            S._state = SupervisorState.Running;
            S._primary.HoldServers(true); // a worker that dies is replaced: its servers wait for the replacement
            S._target = S._options.Workers;
            for (int index = 0; index < S._options.Workers; index++)
            {
                var worker = S.Fork(index);
                S._slots[index] = new Slot(index, S._options.RestartDelay) { Current = worker };
                _waiting.Add(worker);
            }
            if (_waiting.Count == 0) Succeed();
        }

        public override void OnReady(Worker worker)
        {
            if (_waiting.Remove(worker) && _waiting.Count == 0) Succeed();
        }

        public override bool OnNotReady(Worker worker, WorkerExit? exit, bool connected)
        {
            if (_waiting.Contains(worker)) Fail(new WorkerNotReadyException(S.NotReadyMessage(worker, exit, connected), worker, exit, connected));
            return false;
        }
    }

    /// <summary>
    /// A reload (every slot) or a restart or recycle (one worker's slot): for each batch, forks the replacements, and once
    /// all are ready makes them the slots' workers and retires the old ones; the next batch begins once those have exited.
    /// A replacement that dies or is not ready in time ends it: the batch's replacements leave, the slots keep their workers.
    /// </summary>
    private sealed class Replace(Supervisor supervisor, Worker? target, bool recycle) : Operation(supervisor)
    {
        private readonly Queue<int> _todo = new();
        private readonly List<Slot> _batch = [];
        private readonly HashSet<Worker> _retiring = [];
        private Exception? _failure;

        /// <summary>The worker a restart or recycle replaces; null for a reload.</summary>
        public Worker? Target => target;

        public override void Begin()
        {
            if (S.NotRunning() is { } why)
            {
                Fail(new InvalidOperationException(why));
                return;
            }
            if (target is null)
            {
                foreach (int index in S._slots.Keys) _todo.Enqueue(index);
            }
            else if (S._slots.TryGetValue(target.Slot, out var slot) && slot.Current == target && slot.State is SlotState.Running or SlotState.Starting)
            {
                _todo.Enqueue(slot.Index);
            }
            else
            {
                Fail(new InvalidOperationException($"{Name(target)} is no longer running: it exited or was replaced before the restart's turn came."));
                return;
            }
            NextBatch();
        }

        private void NextBatch()
        {
            while (_todo.Count > 0 && _batch.Count < S._options.ReloadBatchSize)
            {
                if (!S._slots.TryGetValue(_todo.Dequeue(), out var slot)) continue;
                slot.Prior = slot.State;
                slot.Generation++; // a pending restart's timer is stale: the replacement takes its place
                slot.Incoming = S.Fork(slot.Index);
                slot.State = SlotState.Replacing;
                _batch.Add(slot);
            }
            if (_batch.Count == 0) Succeed();
        }

        public override void OnReady(Worker worker)
        {
            if (!_batch.Any(slot => slot.Incoming == worker) || !_batch.All(slot => slot.Incoming!.Ready.IsCompleted)) return;
            foreach (var slot in _batch)
            {
                var old = slot.Current;
                slot.Current = slot.Incoming;
                slot.Incoming = null;
                slot.State = SlotState.Running;
                if (old is not null && S._alive.ContainsKey(old))
                {
                    S.Retire(old);
                    _retiring.Add(old);
                }
            }
            _batch.Clear();
            if (_retiring.Count == 0) NextBatch();
        }

        public override void OnLeft(Worker worker)
        {
            if (!_retiring.Remove(worker) || _retiring.Count > 0) return;
            if (_failure is not null) Fail(_failure);
            else NextBatch();
        }

        public override bool OnNotReady(Worker worker, WorkerExit? exit, bool connected)
        {
            if (!_batch.Any(slot => slot.Incoming == worker)) return false;
            var kept = target is null ? "the old workers serve on" : $"{Name(target)} serves on";
            _failure = new ReloadFailedException($"{S.NotReadyMessage(worker, exit, connected)}; it was stopped, not restarted, and {kept}.", worker, exit, connected);
            Abandon(kill: false);
            if (_retiring.Count == 0) Fail(_failure);
            return true;
        }

        public override void Cancel() => Abandon(kill: true);

        // The batch's replacements leave; each slot goes back to what it was.
        private void Abandon(bool kill)
        {
            foreach (var slot in _batch)
            {
                var fresh = slot.Incoming!;
                slot.Incoming = null;
                if (S._alive.ContainsKey(fresh))
                {
                    S.Retire(fresh);
                    if (kill) fresh.Kill(UnixSignal.SIGKILL);
                    _retiring.Add(fresh);
                }
                S.Restore(slot);
            }
            _batch.Clear();
            _todo.Clear();
        }

        protected override void Finish(Exception? error)
        {
            base.Finish(error);
            if (target is null)
            {
                S._lastReloadFailure = error?.Message;
                if (error is ReloadFailedException) HerdLog.ReloadFailed(Cluster.Logger, error.Message);
            }
            if (recycle && S._recycling.Remove(target!) && error is not null) HerdLog.RecycleFailed(Cluster.Logger, target!.Id, error.Message);
        }
    }

    /// <summary>
    /// Sets the number of slots: adds the lowest free ones and waits until their workers are ready (undone if one is
    /// not), or retires the highest ones, whatever their state, and waits until their workers have exited.
    /// </summary>
    private sealed class Scale(Supervisor supervisor, Func<int, long> workers) : Operation(supervisor)
    {
        private readonly HashSet<Worker> _waiting = [];
        private readonly HashSet<Worker> _retiring = [];
        private readonly List<Slot> _added = [];
        private Exception? _failure;
        private int _before;

        public override void Begin()
        {
            if (S.NotRunning() is { } why)
            {
                Fail(new InvalidOperationException(why));
                return;
            }
            _before = S._slots.Count;
            long target = workers(_before);
            if (target > S._options.MaxWorkers)
            {
                Fail(S.TooMany(target));
                return;
            }
            S._target = (int)target;
            for (int index = 0; _before + _added.Count < target; index++)
            {
                if (S._slots.ContainsKey(index)) continue;
                var worker = S.Fork(index);
                var slot = new Slot(index, S._options.RestartDelay) { Current = worker };
                S._slots[index] = slot;
                _added.Add(slot);
                _waiting.Add(worker);
            }
            foreach (var slot in S._slots.Values.Reverse().Take(_before - (int)target).ToList()) S.RemoveSlot(slot, _retiring);
            Check();
        }

        private void Check()
        {
            if (_waiting.Count > 0 || _retiring.Count > 0) return;
            if (_failure is null) Succeed();
            else Fail(_failure);
        }

        public override void OnReady(Worker worker)
        {
            if (_waiting.Remove(worker)) Check();
        }

        public override void OnLeft(Worker worker)
        {
            if (_retiring.Remove(worker)) Check();
        }

        public override bool OnNotReady(Worker worker, WorkerExit? exit, bool connected)
        {
            if (!_waiting.Contains(worker)) return false;
            _failure = new WorkerNotReadyException($"{S.NotReadyMessage(worker, exit, connected)}; the scale was undone.", worker, exit, connected);
            _waiting.Clear();
            S._target = _before;
            foreach (var slot in _added.Where(slot => S._slots.TryGetValue(slot.Index, out var now) && now == slot)) S.RemoveSlot(slot, _retiring);
            Check();
            return true;
        }
    }
}
