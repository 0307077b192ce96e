using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Herd.Child;
using Herd.Ipc;

namespace Herd;

/// <summary>This process, seen from inside a worker (Node's <c>cluster.worker</c>): its id, its messages, its way out.</summary>
public sealed class CurrentWorker
{
    private readonly ChildCluster _child;
    private readonly Lock _gate = new();
    private Action<ClusterMessage>? _message;
    private Queue<ClusterMessage>? _held = new();

    internal CurrentWorker(ChildCluster child, int id, int slot)
    {
        _child = child;
        Id = id;
        Slot = slot;
    }

    /// <summary>The worker's id, the same number the primary knows it by.</summary>
    public int Id { get; }

    /// <summary>
    /// The worker's slot, 0 to N-1 among N workers (<see cref="Herd.Worker.Slot"/>; PM2's NODE_APP_INSTANCE): a replacement
    /// has the slot of the worker it replaces. Also in the environment as <c>HERD_APP_INSTANCE</c>, for code that knows nothing of Herd.
    /// </summary>
    public int Slot { get; }

    /// <summary>True once this worker is leaving on purpose, asked by the primary or by itself.</summary>
    public bool ExitedAfterDisconnect => _child.ExitedAfterDisconnect;

    /// <summary>
    /// A message from the primary. Handlers run one at a time, in arrival order. Messages that arrive before the
    /// first handler is attached are held for it, so a worker that subscribes late in its startup misses nothing.
    /// </summary>
    public event Action<ClusterMessage>? Message
    {
        add
        {
            bool first;
            lock (_gate)
            {
                first = _message is null && _held is not null;
                _message += value;
            }
            if (first) _child.Post(ReleaseHeld);
        }
        remove
        {
            lock (_gate) _message -= value;
        }
    }

    /// <summary>
    /// The worker is leaving: the primary asked it to disconnect (its servers are already closed: finish the work in
    /// hand and return from Main), or the channel to the primary closed, after which the process exits at once.
    /// </summary>
    public event Action? Disconnect;

    /// <summary>Sends a JSON message to the primary, with a socket if given (the caller keeps its own copy). False when the channel is closed.</summary>
    public bool Send(JsonElement message, Socket? socket = null) => Send(message, JsonContext.Default.JsonElement, socket);

    /// <summary>Sends a message to the primary as JSON, with a socket if given. False when the channel is closed.</summary>
    public bool Send<T>(T message, JsonTypeInfo<T> typeInfo, Socket? socket = null) =>
        _child.Channel.SendUser(message, typeInfo, socket?.SafeHandle);

    /// <summary>
    /// Leaves the cluster gracefully (Node's <c>cluster.worker.disconnect()</c>): closes this worker's servers, tells
    /// the primary, then closes the channel. The process itself exits when Main returns.
    /// </summary>
    public Task DisconnectAsync(CancellationToken cancellationToken = default) =>
        _child.DisconnectAsync(primaryInitiated: false, cancellationToken);

    /// <summary>
    /// Says this worker will call <see cref="SignalReady"/> itself, once it is ready for traffic, instead of being
    /// ready as soon as its first server listens (PM2's <c>wait_ready</c>; herd.json's <c>waitReady</c> does the same
    /// from outside). Call it before listening. A rolling reload retires an old worker only once its replacement is
    /// ready, and a round-robin primary hands a worker no connection before.
    /// </summary>
    /// <remarks>
    /// Under Herd.AspNetCore (<c>UseHerd()</c>, or <c>herd run</c>'s startup hook) a worker is ready once the app has
    /// started, and its health checks (<c>AddHealthChecks()</c>) report Healthy: those tagged <c>ready</c> if any are,
    /// else all of them. This adds the app's own say: it is ready when all of these hold.
    /// </remarks>
    public void DeferReady() => _child.DeferReady(ChildCluster.ReadyWaits.App);

    /// <summary>
    /// Tells the primary this worker is ready for traffic (PM2's <c>process.send('ready')</c>), or, under
    /// Herd.AspNetCore, that the app is, which makes the worker ready once its host has started and its health
    /// checks are Healthy. Later calls do nothing.
    /// </summary>
    public void SignalReady() => _child.SignalReady(ChildCluster.ReadyWaits.App | ChildCluster.ReadyWaits.Listening);

    /// <summary>Completes once this worker has told the primary it is ready.</summary>
    internal Task WhenReady => _child.WhenReady;

    /// <summary>How long the primary waits for this worker to leave before it kills it.</summary>
    internal TimeSpan KillTimeout => _child.KillTimeout;

    /// <summary>Herd.AspNetCore holds readiness until the host has started and its health checks are Healthy.</summary>
    internal void DeferHostReady() => _child.DeferReady(ChildCluster.ReadyWaits.Host);

    internal void SignalHostReady() => _child.SignalReady(ChildCluster.ReadyWaits.Host);

    /// <summary>Counts one request served, for <c>herd ls</c> and recycling by <see cref="SupervisorOptions.MaxRequests"/>. Herd.AspNetCore counts every HTTP request.</summary>
    public void CountRequest() => _child.CountRequest();

    /// <summary>This worker's busy units, which it reports to a primary that dispatches by least busy.</summary>
    internal LoadReporter Load => _child.Load;

    /// <summary>
    /// Whether the primary dispatches this worker's connections by <see cref="SchedulingPolicy.LeastBusy"/> and so
    /// hears how busy it is. While false, <see cref="AddLoad"/> counts but sends nothing: skip it if counting costs.
    /// </summary>
    public bool ReportsLoad => _child.Load.IsReporting;

    /// <summary>
    /// Says the app counts its own busy units with <see cref="AddLoad"/> (Herd.AspNetCore counts HTTP requests in
    /// progress), so its open connections no longer count. Call before listening.
    /// </summary>
    public void CountLoadInApp() => _child.Load.AppCounts();

    /// <summary>
    /// Adds busy units as work starts (1 for a request, say) and takes them away, negative, as it ends: every unit added
    /// must be taken away once. Under <see cref="SchedulingPolicy.LeastBusy"/> the primary sends new connections to the
    /// worker with the fewest.
    /// </summary>
    public void AddLoad(int units) => _child.Load.Add(units);

    // On the event queue, like every raise: held messages go out before any that arrived after them.
    internal void RaiseMessage(ClusterMessage message)
    {
        Action<ClusterMessage>? handlers;
        lock (_gate)
        {
            if (_held is not null)
            {
                _held.Enqueue(message);
                return;
            }
            handlers = _message;
        }
        handlers?.Invoke(message);
    }

    private void ReleaseHeld()
    {
        Queue<ClusterMessage>? held;
        Action<ClusterMessage>? handlers;
        lock (_gate)
        {
            (held, _held) = (_held, null);
            handlers = _message;
        }
        while (held?.TryDequeue(out var message) == true) handlers?.Invoke(message);
    }

    internal void RaiseDisconnect() => Disconnect?.Invoke();

    /// <summary>
    /// True while this worker is the one that runs the cluster's one-worker jobs: the primary picks the ready worker in
    /// the lowest slot, and moves the jobs to another when it leaves (reload, scale-down, death). At most one worker
    /// is leader at a time, apart from the moment a leaving one takes to stop its jobs.
    /// </summary>
    public bool IsLeader => _leader;

    private volatile bool _leader;

    /// <summary><see cref="IsLeader"/> changed. Handlers run one at a time, in order, as <see cref="Message"/>'s do.</summary>
    public event Action<bool>? LeaderChanged;

    internal void SetLeader(bool leader)
    {
        if (_leader == leader) return;
        _leader = leader;
        LeaderChanged?.Invoke(leader);
    }
}
