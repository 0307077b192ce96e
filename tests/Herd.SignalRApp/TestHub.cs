using Microsoft.AspNetCore.SignalR;

namespace Herd.SignalRApp;

/// <summary>What the SignalR tests ask of a hub; Herd.TestWebApp (which calls UseHerd) maps the same file.</summary>
public sealed class TestHub : Hub
{
    /// <summary>The worker that holds this connection.</summary>
    public int Pid() => Environment.ProcessId;

    public Task Broadcast(string text) => Clients.All.SendAsync("message", text, Environment.ProcessId);

    public Task Join(string group) => Groups.AddToGroupAsync(Context.ConnectionId, group);

    public Task JoinFor(string connectionId, string group) => Groups.AddToGroupAsync(connectionId, group);

    public Task ToGroup(string group, string text) => Clients.Group(group).SendAsync("message", text, Environment.ProcessId);

    public Task ToConnection(string connectionId, string text) => Clients.Client(connectionId).SendAsync("message", text, Environment.ProcessId);

    public Task ToOthers(string text) => Clients.Others.SendAsync("message", text, Environment.ProcessId);

    public string ConnectionId() => Context.ConnectionId;
}
