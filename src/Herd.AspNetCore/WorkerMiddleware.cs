using Herd.Child;
using Microsoft.AspNetCore.Builder;
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
        var load = worker.Load;
        app.Use((context, nextMiddleware) =>
        {
            worker.CountRequest();
            // When the response starts, not now: an error handler that clears the headers would drop it.
            if (drain.IsDraining) context.Response.OnStarting(s_closeAfter, context.Response);
            if (GoingAwayUpgrade.TryAttach(context, drain) is { } webSocket) return WebSocketAsync(context, nextMiddleware, load, webSocket);
            return load.IsReporting ? InProgressAsync(context, nextMiddleware, load) : nextMiddleware(context);
        });
        next(app);
    };

    private async Task WebSocketAsync(HttpContext context, RequestDelegate next, LoadReporter load, GoingAwayUpgrade webSocket)
    {
        try
        {
            await (load.IsReporting ? InProgressAsync(context, next, load) : next(context)).ConfigureAwait(false);
        }
        finally
        {
            drain.Remove(webSocket);
        }
    }

    private static async Task InProgressAsync(HttpContext context, RequestDelegate next, LoadReporter load)
    {
        load.Add(1);
        try
        {
            await next(context).ConfigureAwait(false);
        }
        finally
        {
            load.Add(-1);
        }
    }
}
