// A web app written for Herd: it calls UseHerd() itself, with the full WebApplication builder (whose hosting startups
// run), so that under herd run the startup hook's UseHerd() comes on top of its own.
using System.Globalization;
using Herd.SignalRApp;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;

var builder = WebApplication.CreateBuilder(args);
builder.WebHost.UseHerd();
builder.Services.AddSignalR().AddHerd();
if (args.Contains("--nagle")) builder.Services.Configure<SocketTransportOptions>(sockets => sockets.NoDelay = false);
var app = builder.Build();
app.MapGet("/pid", () => Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
app.MapGet("/nodelay", (HttpContext context) => context.Features.Get<IConnectionSocketFeature>()?.Socket.NoDelay.ToString());
app.MapHub<TestHub>("/hub");
app.Run();
