// A web app written for Herd: it calls UseHerd() itself, with the full WebApplication builder (whose hosting startups
// run), so that under herd run the startup hook's UseHerd() comes on top of its own.
using System.Globalization;
using Herd.SignalRApp;

var builder = WebApplication.CreateBuilder(args);
builder.WebHost.UseHerd();
builder.Services.AddSignalR().AddHerd();
var app = builder.Build();
app.MapGet("/pid", () => Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
app.MapHub<TestHub>("/hub");
app.Run();
