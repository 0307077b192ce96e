using System.Collections.Concurrent;
using System.Text.Json;
using System.Threading.Channels;
using Herd.Child;
using Microsoft.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR.Protocol;
using Microsoft.Extensions.Logging;

namespace Herd.AspNetCore.SignalR;

/// <summary>
/// A SignalR backplane over Herd's channels, for the workers of one machine (Node's <c>@socket.io/cluster-adapter</c>):
/// what a hub sends to all, to groups, users or connections reaches the clients of every worker. Each invocation is
/// serialized once per hub protocol where it is sent, the primary passes it to every other worker, and each delivers it
/// to its own clients; a group change for a connection elsewhere goes to the worker that holds it. One worker's
/// messages reach another in the order it sent them. Client results (<c>InvokeAsync</c> on a client) reach only the
/// worker's own connections. Outside a worker it is SignalR's default, in-process manager.
/// </summary>
internal sealed partial class HerdHubLifetimeManager<THub> : HubLifetimeManager<THub>, IDisposable
    where THub : Hub
{
    private static readonly string s_hub = typeof(THub).FullName!;
    private static readonly object s_groupsKey = new(); // a connection's groups, in its Items

    private readonly HubConnectionStore _connections = new();
    private readonly ConcurrentDictionary<string, HubConnectionStore> _groups = new(StringComparer.Ordinal);
    private readonly Lock _groupsGate = new();
    private readonly IReadOnlyList<IHubProtocol> _protocols;
    private readonly DefaultHubLifetimeManager<THub> _local; // client results, which only the worker holding the connection can wait for
    private readonly ChildCluster? _child;
    private readonly Channel<ReadOnlyMemory<byte>> _inbox = Channel.CreateUnbounded<ReadOnlyMemory<byte>>(new UnboundedChannelOptions { SingleReader = true });
    private readonly ILogger _logger;

    public HerdHubLifetimeManager(IHubProtocolResolver protocols, ILoggerFactory loggers)
    {
        _protocols = protocols.AllProtocols;
        _local = new DefaultHubLifetimeManager<THub>(loggers.CreateLogger<DefaultHubLifetimeManager<THub>>());
        _logger = loggers.CreateLogger<HerdHubLifetimeManager<THub>>();
        _child = Cluster.Child;
        if (_child is null) return;
        _child.Relayed += OnRelayed;
        _ = ReceiveAsync();
    }

    public void Dispose()
    {
        if (_child is not null) _child.Relayed -= OnRelayed;
        _inbox.Writer.TryComplete();
    }

    public override async Task OnConnectedAsync(HubConnectionContext connection)
    {
        _connections.Add(connection);
        await _local.OnConnectedAsync(connection).ConfigureAwait(false);
    }

    public override async Task OnDisconnectedAsync(HubConnectionContext connection)
    {
        _connections.Remove(connection);
        lock (_groupsGate)
        {
            foreach (var group in GroupsOf(connection)) Leave(connection, group);
        }
        await _local.OnDisconnectedAsync(connection).ConfigureAwait(false);
    }

    public override Task SendAllAsync(string methodName, object?[] args, CancellationToken cancellationToken = default) =>
        SendAsync(RelayKind.All, null, null, methodName, args, cancellationToken);

    public override Task SendAllExceptAsync(string methodName, object?[] args, IReadOnlyList<string> excludedConnectionIds, CancellationToken cancellationToken = default) =>
        SendAsync(RelayKind.All, null, excludedConnectionIds, methodName, args, cancellationToken);

    public override Task SendConnectionAsync(string connectionId, string methodName, object?[] args, CancellationToken cancellationToken = default) =>
        SendAsync(RelayKind.Connections, [connectionId], null, methodName, args, cancellationToken);

    public override Task SendConnectionsAsync(IReadOnlyList<string> connectionIds, string methodName, object?[] args, CancellationToken cancellationToken = default) =>
        SendAsync(RelayKind.Connections, connectionIds, null, methodName, args, cancellationToken);

    public override Task SendGroupAsync(string groupName, string methodName, object?[] args, CancellationToken cancellationToken = default) =>
        SendAsync(RelayKind.Groups, [groupName], null, methodName, args, cancellationToken);

    public override Task SendGroupsAsync(IReadOnlyList<string> groupNames, string methodName, object?[] args, CancellationToken cancellationToken = default) =>
        SendAsync(RelayKind.Groups, groupNames, null, methodName, args, cancellationToken);

    public override Task SendGroupExceptAsync(string groupName, string methodName, object?[] args, IReadOnlyList<string> excludedConnectionIds, CancellationToken cancellationToken = default) =>
        SendAsync(RelayKind.Groups, [groupName], excludedConnectionIds, methodName, args, cancellationToken);

    public override Task SendUserAsync(string userId, string methodName, object?[] args, CancellationToken cancellationToken = default) =>
        SendAsync(RelayKind.Users, [userId], null, methodName, args, cancellationToken);

    public override Task SendUsersAsync(IReadOnlyList<string> userIds, string methodName, object?[] args, CancellationToken cancellationToken = default) =>
        SendAsync(RelayKind.Users, userIds, null, methodName, args, cancellationToken);

    public override Task AddToGroupAsync(string connectionId, string groupName, CancellationToken cancellationToken = default) =>
        ChangeGroup(RelayKind.AddToGroup, connectionId, groupName);

    public override Task RemoveFromGroupAsync(string connectionId, string groupName, CancellationToken cancellationToken = default) =>
        ChangeGroup(RelayKind.RemoveFromGroup, connectionId, groupName);

    public override Task<T> InvokeConnectionAsync<T>(string connectionId, string methodName, object?[] args, CancellationToken cancellationToken) =>
        _local.InvokeConnectionAsync<T>(connectionId, methodName, args, cancellationToken);

    public override Task SetConnectionResultAsync(string connectionId, CompletionMessage result) => _local.SetConnectionResultAsync(connectionId, result);

    public override bool TryGetReturnType(string invocationId, [System.Diagnostics.CodeAnalysis.NotNullWhen(true)] out Type? type) =>
        _local.TryGetReturnType(invocationId, out type);

    private Task SendAsync(RelayKind kind, IReadOnlyList<string>? names, IReadOnlyList<string>? excluded, string methodName, object?[] args, CancellationToken cancellationToken)
    {
        var invocation = new InvocationMessage(methodName, args);
        var serialized = _protocols.Select(protocol => new SerializedMessage(protocol.Name, protocol.GetMessageBytes(invocation))).ToList();
        var envelope = new RelayEnvelope { Hub = s_hub, Kind = kind, Names = names?.ToArray(), Excluded = excluded?.ToArray() };
        // Connections this worker holds need no other worker.
        if (_child is not null && !(kind == RelayKind.Connections && names!.All(id => _connections[id] is not null)))
        {
            envelope.Payloads = serialized.ToDictionary(message => message.ProtocolName, message => message.Serialized.ToArray(), StringComparer.Ordinal);
            Publish(envelope);
        }
        return DeliverAsync(envelope, new SerializedHubMessage(serialized), cancellationToken);
    }

    private Task ChangeGroup(RelayKind kind, string connectionId, string group)
    {
        ArgumentNullException.ThrowIfNull(connectionId);
        ArgumentNullException.ThrowIfNull(group);
        if (_connections[connectionId] is { } connection) ChangeLocalGroup(kind, connection, group);
        else if (_child is not null) Publish(new RelayEnvelope { Hub = s_hub, Kind = kind, Names = [connectionId, group] });
        return Task.CompletedTask;
    }

    private void ChangeLocalGroup(RelayKind kind, HubConnectionContext connection, string group)
    {
        lock (_groupsGate)
        {
            if (kind == RelayKind.RemoveFromGroup)
            {
                Leave(connection, group);
                return;
            }
            if (GroupsOf(connection).Add(group)) _groups.GetOrAdd(group, _ => new HubConnectionStore()).Add(connection);
        }
    }

    // Under _groupsGate.
    private void Leave(HubConnectionContext connection, string group)
    {
        GroupsOf(connection).Remove(group);
        if (!_groups.TryGetValue(group, out var members)) return;
        members.Remove(connection);
        if (members.Count == 0) _groups.TryRemove(group, out _);
    }

    // Under _groupsGate.
    private static HashSet<string> GroupsOf(HubConnectionContext connection)
    {
        if (connection.Items.TryGetValue(s_groupsKey, out var groups)) return (HashSet<string>)groups!;
        var created = new HashSet<string>(StringComparer.Ordinal);
        connection.Items[s_groupsKey] = created;
        return created;
    }

    private void Publish(RelayEnvelope envelope) => _child!.Relay(JsonSerializer.SerializeToUtf8Bytes(envelope, RelayJsonContext.Default.RelayEnvelope));

    // This worker's clients among those the envelope names.
    private Task DeliverAsync(RelayEnvelope envelope, SerializedHubMessage message, CancellationToken cancellationToken)
    {
        var writes = new List<Task>();
        var excluded = envelope.Excluded is { Length: > 0 } ids ? ids.ToHashSet(StringComparer.Ordinal) : null;
        var names = envelope.Names ?? [];
        void Write(HubConnectionContext connection)
        {
            if (excluded?.Contains(connection.ConnectionId) != true) writes.Add(connection.WriteAsync(message, cancellationToken).AsTask());
        }
        switch (envelope.Kind)
        {
            case RelayKind.All:
                foreach (var connection in _connections) Write(connection);
                break;
            case RelayKind.Connections:
                foreach (var id in names)
                {
                    if (_connections[id] is { } connection) Write(connection);
                }
                break;
            case RelayKind.Groups:
                var seen = new HashSet<string>(StringComparer.Ordinal);
                foreach (var group in names)
                {
                    if (!_groups.TryGetValue(group, out var members)) continue;
                    foreach (var connection in members)
                    {
                        if (seen.Add(connection.ConnectionId)) Write(connection);
                    }
                }
                break;
            case RelayKind.Users:
                foreach (var connection in _connections)
                {
                    if (connection.UserIdentifier is { } user && names.Contains(user, StringComparer.Ordinal)) Write(connection);
                }
                break;
        }
        return Task.WhenAll(writes);
    }

    // On the channel's thread: queued, so that a slow client never holds up the channel.
    private void OnRelayed(ReadOnlyMemory<byte> payload) => _inbox.Writer.TryWrite(payload);

    private async Task ReceiveAsync()
    {
        await foreach (var payload in _inbox.Reader.ReadAllAsync().ConfigureAwait(false))
        {
            try
            {
                var envelope = JsonSerializer.Deserialize(payload.Span, RelayJsonContext.Default.RelayEnvelope);
                if (envelope is null || envelope.Hub != s_hub) continue;
                if (envelope.Kind is RelayKind.AddToGroup or RelayKind.RemoveFromGroup)
                {
                    if (envelope.Names is [var id, var group] && _connections[id] is { } connection) ChangeLocalGroup(envelope.Kind, connection, group);
                    continue;
                }
                if (envelope.Payloads is not { } payloads) continue;
                var message = new SerializedHubMessage([.. payloads.Select(p => new SerializedMessage(p.Key, p.Value))]);
                await DeliverAsync(envelope, message, CancellationToken.None).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is JsonException or IOException or InvalidOperationException)
            {
                LogDropped(_logger, ex);
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "A SignalR message from another worker was not delivered")]
    private static partial void LogDropped(ILogger logger, Exception exception);
}
