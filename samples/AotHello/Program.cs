// An app published with Native AOT, clustered: `herd run -i 2 -- ./AotHello --urls http://127.0.0.1:8000` runs two of
// it on one port (there is no JIT to load herd's startup hook into, so it calls UseHerd itself), and
// `./AotHello --workers 2 --urls ...` is its own primary, forking two copies of the same executable.
using System.Globalization;
using System.Runtime.InteropServices;
using Herd;

if (Cluster.IsPrimary && args.SkipWhile(arg => arg != "--workers").Skip(1).FirstOrDefault() is { } count)
{
    for (int i = 0; i < int.Parse(count, CultureInfo.InvariantCulture); i++) Cluster.Fork();
    var stop = new TaskCompletionSource();
    using var onTerminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, context =>
    {
        context.Cancel = true;
        stop.TrySetResult();
    });
    await stop.Task;
    await Cluster.DisconnectAsync();
    return;
}

var builder = WebApplication.CreateSlimBuilder(args);
builder.WebHost.UseHerd();
var app = builder.Build();
app.MapGet("/", () => "hello from a native worker\n");
app.MapGet("/pid", () => Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
await app.RunAsync();
