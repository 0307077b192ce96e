using Herd.AspNetCore;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.DependencyInjection;

namespace Microsoft.AspNetCore.Hosting;

/// <summary>Clusters Kestrel with Herd.</summary>
public static class HerdWebHostBuilderExtensions
{
    /// <summary>
    /// In a Herd worker, every Kestrel endpoint (<c>app.Run(url)</c>, <c>Listen*</c>, <c>ASPNETCORE_URLS</c>) listens
    /// through the primary, and a disconnect from the primary stops the app gracefully. Outside a worker it changes nothing.
    /// </summary>
    public static IWebHostBuilder UseHerd(this IWebHostBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        if (!Herd.Cluster.IsWorker) return builder;
        // Registered after UseKestrel's socket transport, so Kestrel asks this factory first.
        return builder.ConfigureServices(services =>
        {
            services.AddSingleton<IConnectionListenerFactory, HerdConnectionListenerFactory>();
            services.AddHostedService<HerdWorkerLifetime>();
        });
    }
}
