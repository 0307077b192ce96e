using Herd.AspNetCore;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Microsoft.AspNetCore.Hosting;

/// <summary>Clusters Kestrel with Herd.</summary>
public static class HerdWebHostBuilderExtensions
{
    /// <summary>
    /// In a Herd worker, every Kestrel endpoint (<c>app.Run(url)</c>, <c>Listen*</c>, <c>ASPNETCORE_URLS</c>) listens
    /// through the primary, and a disconnect from the primary stops the app gracefully. Outside a worker it changes nothing.
    /// </summary>
    /// <param name="builder">The app's web host.</param>
    /// <param name="options">How the endpoints listen (exclusive, reuse-port); by default shared through the primary, with Kestrel's backlog.</param>
    public static IWebHostBuilder UseHerd(this IWebHostBuilder builder, Herd.ListenOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        if (!Herd.Cluster.IsWorker) return builder;
        Herd.Cluster.Worker.DeferReady(); // ready once the app has started, every endpoint bound
        Herd.Cluster.Worker.Load.AppCounts(); // requests in progress, not open connections, say how busy Kestrel is
        // Registered after UseKestrel's socket transport, so Kestrel asks this factory first.
        return builder.ConfigureServices(services =>
        {
            // Under herd run, an app that calls UseHerd() itself gets it twice (the startup hook's hosting startup calls
            // it too): the later call's factory is asked first, so its options win; the rest is registered once, or
            // every request would count twice.
            if (!services.Any(d => d.ImplementationType == typeof(HerdWorkerLifetime)))
            {
                // From a hosting startup this runs before UseKestrel, whose TryAdd would then skip the socket transport:
                // keep it, as the fallback for endpoints Herd does not take (named pipes, inherited handles).
                if (!services.Any(d => d.ServiceType == typeof(IConnectionListenerFactory)))
                    services.AddSingleton<IConnectionListenerFactory, SocketTransportFactory>();
                services.AddHostedService<HerdWorkerLifetime>();
                services.AddSingleton<IHostLifetime, HerdHostLifetime>();
                services.AddTransient<IStartupFilter, RequestCounter>();
            }
            services.AddSingleton<IConnectionListenerFactory>(provider => new HerdConnectionListenerFactory(
                provider.GetRequiredService<IOptions<SocketTransportOptions>>(), provider.GetRequiredService<ILoggerFactory>(), options));
        });
    }
}
