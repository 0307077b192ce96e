using System.IO.Compression;
using System.Text.Json;
using Herd.Child;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;

namespace Herd.AspNetCore.SignalR;

/// <summary>
/// Under <see cref="SchedulingPolicy.Sticky"/>: tells the primary the connection token in each SignalR negotiate
/// response this worker gives, before the response leaves, so that the client's next connections (<c>?id=token</c>:
/// the WebSocket, the server-sent events stream, each long poll) come back here whichever connection carries them. No
/// cookie and no change to the app or the client: the token is SignalR's own.
/// </summary>
internal sealed class NegotiateRouting : IStartupFilter
{
    // A negotiate response is a few hundred bytes; anything larger is not SignalR's, and passes untouched.
    private const int MaxNegotiateResponse = 64 * 1024;

    // Past this the response goes anyway (a primary too busy to answer in time): the client then may land elsewhere and retry.
    private static readonly TimeSpan StickTimeout = TimeSpan.FromSeconds(5);

    public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
    {
        if (Cluster.Child is { } child) app.Use((context, following) => IsNegotiate(child, context.Request) ? ReportAsync(child, context, following) : following(context));
        next(app);
    };

    private static bool IsNegotiate(ChildCluster child, HttpRequest request) =>
        child.ReportsTokens && HttpMethods.IsPost(request.Method) && request.Path.Value?.EndsWith("/negotiate", StringComparison.OrdinalIgnoreCase) == true;

    private static async Task ReportAsync(ChildCluster child, HttpContext context, RequestDelegate next)
    {
        var original = context.Response.Body;
        using var buffer = new MemoryStream();
        context.Response.Body = buffer;
        try
        {
            await next(context).ConfigureAwait(false);
        }
        finally
        {
            context.Response.Body = original;
        }
        if (context.Response.StatusCode == StatusCodes.Status200OK && TokenOf(buffer, context.Response.Headers.ContentEncoding.ToString()) is { } token)
        {
            try
            {
                await child.StickAsync(token, context.RequestAborted).WaitAsync(StickTimeout).ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is TimeoutException or InvalidOperationException)
            {
                // The primary is gone or slow: the answer goes anyway, as without Herd.
            }
        }
        buffer.Position = 0;
        await buffer.CopyToAsync(original, context.RequestAborted).ConfigureAwait(false);
    }

    // negotiateVersion 1 names the token the client sends as id; version 0 sends the connection id itself. The app's
    // response compression, if any, came inside this middleware.
    private static string? TokenOf(MemoryStream buffer, string encoding)
    {
        if (buffer.Length is 0 or > MaxNegotiateResponse) return null;
        try
        {
            using var body = new MemoryStream(buffer.GetBuffer(), 0, (int)buffer.Length, writable: false);
            using Stream plain = encoding switch
            {
                "" => body,
                "gzip" => new GZipStream(body, CompressionMode.Decompress, leaveOpen: true),
                "br" => new BrotliStream(body, CompressionMode.Decompress, leaveOpen: true),
                "deflate" => new ZLibStream(body, CompressionMode.Decompress, leaveOpen: true),
                _ => Stream.Null,
            };
            using var json = JsonDocument.Parse(plain);
            if (json.RootElement.ValueKind != JsonValueKind.Object) return null;
            return json.RootElement.TryGetProperty("connectionToken", out var token) && token.ValueKind == JsonValueKind.String ? token.GetString()
                : json.RootElement.TryGetProperty("connectionId", out var id) && id.ValueKind == JsonValueKind.String ? id.GetString()
                : null;
        }
        catch (Exception ex) when (ex is JsonException or InvalidDataException)
        {
            return null;
        }
    }
}
