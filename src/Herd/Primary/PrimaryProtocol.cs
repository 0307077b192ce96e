using System.Net.Sockets;
using Herd.Ipc;
using Herd.Metrics;
using Herd.Net;

namespace Herd.Primary;

/// <summary>
/// The primary's half of the cluster protocol (Node's primary.js <c>onmessage</c> and <c>queryServer</c>): what the
/// primary does with each frame a worker sends, as <see cref="Child.ChildCluster"/> is the worker's half. Answers
/// queryServer by binding each address once, in a handle kept in the primary's <see cref="ServerHandles"/>.
/// </summary>
/// <remarks>
/// Takes the primary's lock (<paramref name="gate"/>) as the primary does: before a handle's own lock, and before a
/// channel's send lock.
/// </remarks>
internal sealed class PrimaryProtocol(Lock gate, ServerHandles handles, IProtocolHost host)
{
    // How long a worker's word of a SIGTERM or SIGINT waits for this process's own (see DisconnectUnlessStoppingAsync).
    private static readonly TimeSpan SignalGrace = TimeSpan.FromSeconds(1);

    private int _lastHandleId;

    /// <summary>The listening sockets this process inherited (systemd's, or a predecessor's), which queryServer takes before it binds.</summary>
    public InheritedSockets Inherited { get; } = new();

    /// <summary>What became of the connections the round-robin handles accepted.</summary>
    public ConnectionCounters Connections { get; } = new();

    /// <summary>Which worker issued each SignalR connection token (act sticky).</summary>
    public StickyRouter Tokens { get; } = new();

    /// <summary>The primary's side of act metrics.</summary>
    public MetricsPoll MetricsPoll { get; } = new();

    // A frame that breaks the protocol returns why, and the channel cuts the worker off. An unknown act is only
    // logged: during a rolling reload the workers may run a newer Herd than the primary.
    public string? OnFrame(Worker worker, FrameKind kind, ReadOnlySpan<byte> frame)
    {
        switch (kind)
        {
            case FrameKind.Accepted:
                if (!Accepted.TryRead(frame, out var accepted)) return $"a malformed accepted frame of {frame.Length} bytes";
                return handles.RoundRobin(accepted.HandleId) is { } handle && handle.OnAccepted(worker, accepted.ConnectionId, accepted.Ok)
                    ? null
                    : $"an answer for connection {accepted.ConnectionId} it was never given";
            case FrameKind.Load:
                if (!Load.TryRead(frame, out var load)) return $"a malformed load frame of {frame.Length} bytes";
                worker.Busy = load.Busy;
                return null;
            case FrameKind.Relay:
                Relay(worker, frame);
                return null;
            default:
                return Frames.Unexpected(kind, frame);
        }
    }

    public void OnMessage(Worker worker, ClusterMessage message, int size) => host.PostMessage(worker, message, size);

    public void OnInternal(Worker worker, InternalMessage message)
    {
        switch (message.Act)
        {
            case Acts.Online:
                host.PostOnline(worker);
                break;
            case Acts.QueryServer:
                QueryServer(worker, message);
                break;
            case Acts.Listening when ListeningOf(message) is { } address:
                host.PostListening(worker, address);
                break;
            case Acts.Close:
                lock (gate)
                {
                    if (message.Key is { } key && handles.TryGet(key, out var handle)) handles.Update(handle, h => h.Remove(worker));
                }
                break;
            case Acts.ExitedAfterDisconnect:
                worker.ExitedAfterDisconnect = true;
                worker.Channel.SendInternal(new InternalMessage { Ack = message.Seq });
                host.Reelect();
                break;
            case Acts.Ready:
                worker.LastHeartbeat = System.Diagnostics.Stopwatch.GetTimestamp();
                worker.SetReady();
                // Round robin skipped it until now; a server its slot's replacement did not come back to closes.
                lock (gate) handles.UpdateAll(handle => handle.WorkerReady(worker));
                host.Reelect();
                break;
            case Acts.Signal:
                OnSignal(worker, (UnixSignal)message.Signal);
                break;
            case Acts.Heartbeat:
                worker.LastHeartbeat = System.Diagnostics.Stopwatch.GetTimestamp();
                worker.Requests = message.Requests;
                worker.Connections = message.Connections;
                break;
            case Acts.Sticky when message.Token is { } token:
                Tokens.Add(token, worker);
                worker.Channel.SendInternal(new InternalMessage { Ack = message.Seq });
                break;
            case Acts.Metrics:
                MetricsPoll.Answer(worker, message);
                break;
            default:
                HerdLog.DroppedMessage(Cluster.Logger, worker.ToString(), $"an unknown or incomplete act '{message.Act}'");
                break;
        }
    }

    // A backplane message: every other connected worker gets the same frame, in the order this worker sent them.
    private void Relay(Worker from, ReadOnlySpan<byte> frame)
    {
        foreach (var worker in host.ConnectedBut(from)) worker.Channel.Send(frame);
    }

    // The worker got SIGTERM or SIGINT and left it to us (ChildCluster.OnTerminationSignal).
    private void OnSignal(Worker worker, UnixSignal signal)
    {
        if (worker.KilledBy == signal)
        {
            worker.Channel.SendInternal(new InternalMessage { Act = Acts.Kill, Signal = (int)signal });
            return;
        }
        _ = DisconnectUnlessStoppingAsync(worker);
    }

    // Sent to a process group or control group, the signal reaches this process too, a moment before or after the
    // worker's word of it: if it makes us stop, the drain retires the worker. Sent to the worker alone, it asks it
    // to leave, gracefully.
    private async Task DisconnectUnlessStoppingAsync(Worker worker)
    {
        await Task.Delay(SignalGrace).ConfigureAwait(false);
        if (!host.Stopping && !worker.IsDead) host.BeginDisconnect(worker);
    }

    private void QueryServer(Worker worker, InternalMessage query)
    {
        var reply = new InternalMessage { Ack = query.Seq };
        if (worker.ExitedAfterDisconnect == true)
        {
            // Node drops this query silently, leaving the worker's listen hanging; Herd answers.
            reply.SocketError = SocketError.Shutdown;
            worker.Channel.SendInternal(reply);
            return;
        }
        if (!IsValid(query))
        {
            reply.SocketError = SocketError.InvalidArgument;
            worker.Channel.SendInternal(reply);
            return;
        }
        var address = new AddressKey(query.Address!, query.Port, query.AddressType!);
        var key = $"{address}:{query.Index}" + (query.ReusePort ? ":reuseport" : "");
        reply.Key = key;
        lock (gate)
        {
            if (!handles.TryGet(key, out var handle))
            {
                int id = ++_lastHandleId;
                if (query.ReusePort)
                {
                    handle = new ReusePortHandle(key, id, address, query.Backlog);
                }
                else if (host.SchedulingPolicy == SchedulingPolicy.None || address.IsUdp)
                {
                    handle = new SharedHandle(key, id, address, Inherited.Take(address));
                }
                else
                {
                    handle = new RoundRobinHandle(key, id, address, query.Backlog, Inherited.Take(address), Connections,
                        PolicyFor(query), Tokens, handles.Done);
                }
                handle.Held = host.HoldsServers;
                handles.Add(handle);
            }
            // A failed bind is closed from the start: the key is forgotten, so a later query tries again.
            handles.Update(handle, h => h.Add(worker, reply));
        }
        if (reply.SocketError != SocketError.Success) host.OnBindFailed(address.Port < 0 ? address.Address : address.Address.Contains(':', StringComparison.Ordinal) ? $"[{address.Address}]:{address.Port}" : $"{address.Address}:{address.Port}", reply.SocketError);
    }

    private static bool IsValid(InternalMessage query) => query.AddressType switch
    {
        "4" or "6" or "udp4" or "udp6" => System.Net.IPAddress.TryParse(query.Address, out _) && query.Port is >= 0 and <= 65535 && query.Backlog > 0,
        AddressKey.Unix => !string.IsNullOrEmpty(query.Address) && Path.IsPathFullyQualified(query.Address) && query.Port == -1 && query.Backlog > 0,
        _ => false,
    };

    private static ListeningAddress? ListeningOf(InternalMessage message)
    {
        AddressType? type = message.AddressType switch
        {
            "4" => AddressType.IPv4,
            "6" => AddressType.IPv6,
            "udp4" => AddressType.Udp4,
            "udp6" => AddressType.Udp6,
            AddressKey.Unix => AddressType.Unix,
            _ => null,
        };
        return type is null || message.Address is null ? null : new ListeningAddress(type.Value, message.Address, message.Port);
    }

    // An app that keeps clients' state in one process (SignalR) works only if they come back to it: the default round
    // robin gives way to sticky routing for it, unless someone chose a policy.
    private SchedulingPolicy PolicyFor(InternalMessage query) =>
        query.PrefersSticky && !host.PolicyChosen && host.SchedulingPolicy == SchedulingPolicy.RoundRobin ? SchedulingPolicy.Sticky : host.SchedulingPolicy;
}
