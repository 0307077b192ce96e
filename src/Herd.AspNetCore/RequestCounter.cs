using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;

namespace Herd.AspNetCore;

/// <summary>Counts each HTTP request for the primary (herd ls, recycling after MaxRequests), first in the pipeline.</summary>
internal sealed class RequestCounter : IStartupFilter
{
    public Action<IApplicationBuilder> Configure(Action<IApplicationBuilder> next) => app =>
    {
        var worker = Cluster.Worker;
        app.Use((context, nextMiddleware) =>
        {
            worker.CountRequest();
            return nextMiddleware(context);
        });
        next(app);
    };
}
