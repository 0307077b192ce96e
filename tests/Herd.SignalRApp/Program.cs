// A SignalR app that knows nothing of Herd: herd run clusters it through the startup hook alone.
using System.Globalization;
using Herd.SignalRApp;

var builder = WebApplication.CreateBuilder(args);
builder.Services.AddSignalR();
builder.Services.AddResponseCompression(); // negotiate responses come gzipped to a client that asks
var app = builder.Build();
app.UseResponseCompression();
app.MapGet("/pid", () => Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
app.MapHub<TestHub>("/hub");
app.Run();
