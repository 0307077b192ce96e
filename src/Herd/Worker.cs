using System.Net.Sockets;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Herd.Ipc;
using Herd.Native;

namespace Herd;

/// <summary>The primary's handle on one worker process (Node's <c>Worker</c>, primary side).</summary>
public sealed class Worker : IChannelHandler
{
    private readonly ClusterPrimary _primary;
    private readonly TaskCompletionSource<WorkerExit> _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _exitedAfterDisconnect; // 0 unknown, 1 false, 2 true: a bool? that reads and writes atomically
    private volatile bool _dead;
    private int _busy;
    private int _killedBy;

    internal Worker(ClusterPrimary primary, int id, int slot, WorkerProcess process, WorkerChannel channel)
    {
        _primary = primary;
        Id = id;
        Slot = slot;
        Process = process;
        Channel = channel;
    }

    /// <summary>The worker's id: 1, 2, 3... in fork order, never reused.</summary>
    public int Id { get; }

    /// <summary>
    /// The worker's slot (PM2's NODE_APP_INSTANCE): 0 to N-1 among N workers, and the worker sees it as
    /// <see cref="CurrentWorker.Slot"/>. <see cref="ClusterPrimary.Fork"/> gives the lowest slot no running worker holds;
    /// a <see cref="Supervisor"/> puts a replacement in the slot of the worker it replaces. In reuse-port mode
    /// (<see cref="ClusterListenOptions.ReusePort"/>) each slot has its own listening socket in the primary.
    /// </summary>
    public int Slot { get; }

    /// <summary>The worker process.</summary>
    public WorkerProcess Process { get; }

    /// <summary>Where the worker is in its life.</summary>
    public WorkerState State { get; internal set; }

    /// <summary>
    /// Null while the worker runs and nobody asked it to leave; true when it left through a disconnect (asked by the
    /// primary or by itself); false when it died any other way: a crash, an exit of its own, or <see cref="Kill"/>.
    /// </summary>
    public bool? ExitedAfterDisconnect
    {
        get => Volatile.Read(ref _exitedAfterDisconnect) switch { 0 => null, 1 => false, _ => true };
        internal set => Volatile.Write(ref _exitedAfterDisconnect, value switch { null => 0, false => 1, true => 2 });
    }

    /// <summary>True while the channel to the worker is open.</summary>
    public bool IsConnected => !Channel.IsClosed;

    /// <summary>True once the process has exited.</summary>
    public bool IsDead => _dead;

    /// <summary>Completes with how the process ended.</summary>
    public Task<WorkerExit> Exited => _exited.Task;

    /// <summary>
    /// Completes when the worker is ready for traffic: after its first server listens, or, in a worker that deferred
    /// readiness (Kestrel through Herd.AspNetCore does), when the app says so. Never completes if the worker dies first.
    /// </summary>
    public Task Ready => _ready.Task;

    internal WorkerChannel Channel { get; }

    /// <summary>A worker given listening sockets rather than a channel (<see cref="ClusterSettings.PassedSockets"/>): it sends no heartbeat, and leaves on SIGTERM.</summary>
    internal bool Channelless { get; init; }

    /// <summary>This worker's messages waiting for the primary's handlers.</summary>
    internal Inbox Inbox { get; } = new("the primary's");

    /// <summary>The worker is up and its channel works.</summary>
    public event Action<Worker>? Online;

    /// <summary>The worker listens on a server; raised once per server.</summary>
    public event Action<Worker, ListeningAddress>? Listening;

    /// <summary>The worker's channel closed.</summary>
    public event Action<Worker>? Disconnect;

    /// <summary>The worker process exited.</summary>
    public event Action<Worker, WorkerExit>? Exit;

    /// <summary>The worker sent a message.</summary>
    public event Action<Worker, ClusterMessage>? Message;

    /// <summary>Sends a JSON message, with a socket if given (the caller keeps its own copy). False when the channel is closed.</summary>
    public bool Send(JsonElement message, Socket? socket = null) => Send(message, JsonContext.Default.JsonElement, socket);

    /// <summary>Sends a message as JSON, with a socket if given. False when the channel is closed.</summary>
    public bool Send<T>(T message, JsonTypeInfo<T> typeInfo, Socket? socket = null) =>
        Channel.SendUser(message, typeInfo, socket?.SafeHandle);

    /// <summary>
    /// Disconnects gracefully (Node's <c>worker.disconnect()</c>): no new connection goes to the worker, its servers
    /// close, its open connections finish, and the process exits. Completes when it has exited.
    /// </summary>
    public Task<WorkerExit> DisconnectAsync(CancellationToken cancellationToken = default)
    {
        _primary.BeginDisconnect(this);
        return Exited.WaitAsync(cancellationToken);
    }

    /// <summary>
    /// Sends the process a signal, and nothing else (Node's <c>worker.kill()</c>): <see cref="ExitedAfterDisconnect"/>
    /// stays false. Once the process has exited this does nothing, even if its pid now names another process.
    /// </summary>
    /// <remarks>
    /// A worker leaves the SIGTERM and SIGINT it gets to its primary (a process group's Ctrl-C must drain, not kill);
    /// when it reports this one, the primary tells it to let the signal end it.
    /// </remarks>
    public void Kill(UnixSignal signal = UnixSignal.SIGTERM)
    {
        Volatile.Write(ref _killedBy, (int)signal);
        Process.Signal(signal);
    }

    /// <summary>The signal <see cref="Kill"/> last sent.</summary>
    internal UnixSignal KilledBy => (UnixSignal)Volatile.Read(ref _killedBy);

    /// <inheritdoc />
    public override string ToString() => $"worker {Id} (pid {Process.Id}, slot {Slot}, {State})";

    internal void MarkDead() => _dead = true;

    /// <summary>Requests the worker had served at its last heartbeat (HTTP requests with Herd.AspNetCore; see <see cref="CurrentWorker.CountRequest"/>).</summary>
    public long Requests { get; internal set; }

    /// <summary>Connections the worker had accepted at its last heartbeat.</summary>
    public long Connections { get; internal set; }

    /// <summary>The busy units the worker last reported (least-busy dispatch only); written by its channel's reader.</summary>
    internal int Busy
    {
        get => Volatile.Read(ref _busy);
        set => Volatile.Write(ref _busy, value);
    }

    /// <summary>When the worker last answered a heartbeat, or became ready (a Stopwatch timestamp).</summary>
    internal long LastHeartbeat { get; set; }

    internal void SendHeartbeat() => Channel.SendInternal(new InternalMessage { Act = Acts.Heartbeat });

    internal void SetReady() => _ready.TrySetResult();

    internal void SetExited(WorkerExit exit) => _exited.TrySetResult(exit);

    internal void RaiseOnline() => Online?.Invoke(this);
    internal void RaiseListening(ListeningAddress address) => Listening?.Invoke(this, address);
    internal void RaiseDisconnect() => Disconnect?.Invoke(this);
    internal void RaiseExit(WorkerExit exit) => Exit?.Invoke(this, exit);
    internal void RaiseMessage(ClusterMessage message) => Message?.Invoke(this, message);

    Inbox IChannelHandler.Inbox => Inbox;

    void IChannelHandler.OnInternal(InternalMessage message, ReceivedFds fds) => _primary.Protocol.OnInternal(this, message);

    void IChannelHandler.OnMessage(ClusterMessage message, int size) => _primary.Protocol.OnMessage(this, message, size);

    string? IChannelHandler.OnFrame(FrameKind kind, ReadOnlySpan<byte> frame, ReceivedFds fds) => _primary.Protocol.OnFrame(this, kind, frame);

    void IChannelHandler.OnClosed(string? error) => _primary.OnChannelClosed(this, error);
}
