using Herd.Child;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;

namespace Herd.AspNetCore;

/// <summary>
/// Counts each HTTP request for the primary (herd ls, recycling after MaxRequests), first in the pipeline; under
/// least-busy dispatch, also the requests in progress, which are then the worker's busy units.
/// </summary>
internal sealed class RequestCounter : IStartupFilter
{
    public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
    {
        var worker = Cluster.Worker;
        var load = worker.Load;
        app.Use((context, nextMiddleware) =>
        {
            worker.CountRequest();
            return load.IsReporting ? InProgressAsync(context, nextMiddleware, load) : nextMiddleware(context);
        });
        next(app);
    };

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
