// A web app written for Herd: it calls UseHerd() itself, with the full WebApplication builder (whose hosting startups
// run), so that under herd run the startup hook's UseHerd() comes on top of its own.
using System.Globalization;
using Herd.SignalRApp;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.DataProtection;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;

var builder = WebApplication.CreateBuilder(args);
builder.WebHost.UseHerd();
builder.Services.AddSignalR().AddHerd();
if (args.Contains("--nagle")) builder.Services.Configure<SocketTransportOptions>(sockets => sockets.NoDelay = false);
// An endpoint set in code, when a test asks for one.
if (int.TryParse(Environment.GetEnvironmentVariable("HERD_TEST_LISTEN_ANY_IP"), CultureInfo.InvariantCulture, out int anyIpPort))
    builder.WebHost.ConfigureKestrel(kestrel => kestrel.ListenAnyIP(anyIpPort));
// A one-worker job when a test asks for one: it appends "pid ticks" lines to the file named.
if (Environment.GetEnvironmentVariable(TickingJob.FileVariable) is not null) builder.Services.AddHostedServiceInOneWorker<TickingJob>();
// Data Protection keys in a folder the workers share, or in each worker's memory, when a test asks; else the defaults.
var dataProtection = builder.Services.AddDataProtection();
switch (Environment.GetEnvironmentVariable("HERD_TEST_KEYS"))
{
    case "ephemeral":
        dataProtection.UseEphemeralDataProtectionProvider();
        break;
    case { Length: > 0 } folder:
        dataProtection.PersistKeysToFileSystem(new DirectoryInfo(folder)).SetApplicationName("herd-test");
        break;
}
var app = builder.Build();
app.MapGet("/pid", () => Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
app.MapGet("/nodelay", (HttpContext context) => context.Features.Get<IConnectionSocketFeature>()?.Socket.NoDelay.ToString());
app.MapHub<TestHub>("/hub");
// "pid payload", and back: what a cookie or an antiforgery token does with the keys.
app.MapGet("/protect", (IDataProtectionProvider keys) => $"{Environment.ProcessId} {keys.CreateProtector("test").Protect("secret")}");
app.MapGet("/unprotect", (IDataProtectionProvider keys, string payload) =>
{
    try
    {
        return Results.Text($"{Environment.ProcessId} {keys.CreateProtector("test").Unprotect(payload)}");
    }
    catch (System.Security.Cryptography.CryptographicException)
    {
        return Results.Text($"{Environment.ProcessId} unreadable", statusCode: 400);
    }
});
app.Run();

/// <summary>Writes a line with this process's id and the time to <see cref="FileVariable"/>'s file every 50 ms while it runs.</summary>
internal sealed class TickingJob : BackgroundService
{
    public const string FileVariable = "HERD_TEST_JOB_FILE";

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var path = Environment.GetEnvironmentVariable(FileVariable)!;
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(50));
        try
        {
            do await File.AppendAllTextAsync(path, string.Create(CultureInfo.InvariantCulture, $"{Environment.ProcessId} {DateTime.UtcNow.Ticks}\n"), CancellationToken.None);
            while (await timer.WaitForNextTickAsync(stoppingToken));
        }
        catch (OperationCanceledException)
        {
            // no longer the leader, or the app stops
        }
    }
}
