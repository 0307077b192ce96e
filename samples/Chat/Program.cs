// A SignalR chat that knows nothing of Herd. Clustered with `herd run --policy sticky -i 2 -- dotnet Chat.dll`:
// each browser stays on the worker it negotiated with, and what one says reaches every browser, whichever worker holds it.
using Microsoft.AspNetCore.SignalR;

// The page is served from beside Chat.dll (wwwroot is copied there), whatever folder herd runs it from.
var builder = WebApplication.CreateBuilder(new WebApplicationOptions { Args = args, ContentRootPath = AppContext.BaseDirectory });
builder.Services.AddSignalR();
var app = builder.Build();
app.UseDefaultFiles();
app.UseStaticFiles();
app.MapHub<ChatHub>("/chat");
app.Run();

/// <summary>Says which worker holds a browser, and sends what one browser says to all.</summary>
internal sealed class ChatHub : Hub
{
    public int Worker() => Environment.ProcessId;

    public Task Send(string name, string text) => Clients.All.SendAsync("message", name, text, Environment.ProcessId);
}
