// An ordinary minimal-API app that has never heard of Herd: `herd run -i 2 -- dotnet PlainWebApp.dll` clusters it.
// Its health check tagged "ready" (served at /ready) fails for READY_AFTER_MS milliseconds after it starts, as an app
// warming a cache would: herd counts a worker ready, and sends it traffic, only once that check reports Healthy.
// /ws echoes WebSocket messages; a worker that leaves closes it with 1001 (going away).
using System.Diagnostics;
using System.Globalization;
using System.Net.WebSockets;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.Extensions.Diagnostics.HealthChecks;

var warmup = TimeSpan.FromMilliseconds(int.TryParse(Environment.GetEnvironmentVariable("READY_AFTER_MS"), CultureInfo.InvariantCulture, out int ms) ? ms : 0);
var started = Stopwatch.StartNew();
var builder = WebApplication.CreateBuilder(args);
builder.Services.AddHealthChecks().AddCheck("warm", () => started.Elapsed >= warmup ? HealthCheckResult.Healthy() : HealthCheckResult.Unhealthy("warming up"), tags: ["ready"]);
var app = builder.Build();
app.UseWebSockets();
app.MapGet("/", () => "hello world\n");
app.MapGet("/pid", () => Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
app.MapHealthChecks("/ready", new HealthCheckOptions { Predicate = check => check.Tags.Contains("ready") });
app.Map("/ws", async context =>
{
    if (!context.WebSockets.IsWebSocketRequest)
    {
        context.Response.StatusCode = StatusCodes.Status400BadRequest;
        return;
    }
    using var socket = await context.WebSockets.AcceptWebSocketAsync();
    var buffer = new byte[4096];
    while (true)
    {
        var received = await socket.ReceiveAsync(buffer, context.RequestAborted);
        if (received.MessageType == WebSocketMessageType.Close)
        {
            if (socket.State == WebSocketState.CloseReceived) await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, context.RequestAborted);
            return;
        }
        await socket.SendAsync(buffer.AsMemory(0, received.Count), received.MessageType, received.EndOfMessage, context.RequestAborted);
    }
});
app.Run();
