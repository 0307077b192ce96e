using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;

namespace Herd.AspNetCore;

/// <summary>
/// First in the pipeline: counts each HTTP request for the primary (herd ls, recycling after MaxRequests), and under
/// least-busy dispatch the requests in progress, which are then the worker's busy units. While the worker drains
/// (<see cref="WorkerDrain"/>), each response closes its connection; WebSocket upgrades are seen through, so that a
/// leaving worker can close them with 1001.
/// </summary>
internal sealed class WorkerMiddleware(WorkerDrain drain) : IStartupFilter
{
    private static readonly Func<object, Task> s_closeAfter = static response =>
    {
        ((HttpResponse)response).Headers.Connection = "close";
        return Task.CompletedTask;
    };

    public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
    {
        var worker = Cluster.Worker;
        app.Use((context, nextMiddleware) =>
        {
            worker.CountRequest();
            if (drain.IsDraining) CloseAfter(context);
            if (GoingAwayUpgrade.TryAttach(context, drain) is { } webSocket) return WebSocketAsync(context, nextMiddleware, worker, webSocket);
            return worker.ReportsLoad ? InProgressAsync(context, nextMiddleware, worker) : nextMiddleware(context);
        });
        next(app);
    };

    // HTTP/1.x: Connection: close, set as the response starts, not now, or an error handler that clears the headers
    // would drop it. HTTP/2 and 3 have no such header, and need none: Kestrel's GOAWAY tells their clients which
    // requests were taken, so asking for it now races nobody.
    private static void CloseAfter(HttpContext context)
    {
        if (HttpProtocol.IsHttp11(context.Request.Protocol) || HttpProtocol.IsHttp10(context.Request.Protocol))
            context.Response.OnStarting(s_closeAfter, context.Response);
        else
            context.Features.Get<IConnectionLifetimeNotificationFeature>()?.RequestClose();
    }

    private async Task WebSocketAsync(HttpContext context, RequestDelegate next, CurrentWorker worker, GoingAwayUpgrade webSocket)
    {
        try
        {
            await (worker.ReportsLoad ? InProgressAsync(context, next, worker) : next(context)).ConfigureAwait(false);
        }
        finally
        {
            drain.Remove(webSocket);
        }
    }

    private static async Task InProgressAsync(HttpContext context, RequestDelegate next, CurrentWorker worker)
    {
        worker.AddLoad(1);
        try
        {
            await next(context).ConfigureAwait(false);
        }
        finally
        {
            worker.AddLoad(-1);
        }
    }
}
