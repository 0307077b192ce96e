using Herd;
using Herd.AspNetCore;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Transport.Sockets;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
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
    /// <remarks>
    /// <para>
    /// The worker is ready for traffic (a reload retires the worker it replaces only then) once the app has started and
    /// its health checks (<c>AddHealthChecks()</c>) report Healthy, those tagged <c>ready</c> if any are, else all of
    /// them; they are polled in the process, no endpoint needed. An app that must say itself when it is ready calls
    /// <see cref="Herd.CurrentWorker.DeferReady"/> before it runs, then <see cref="Herd.CurrentWorker.SignalReady"/>.
    /// </para>
    /// <para>
    /// A worker that leaves (reload, scale-down, stop) first drains: no new connection comes, every response closes its
    /// connection, open WebSockets are closed with 1001 (going away), and Kestrel stops once no connection is left, or
    /// shortly before the primary's kill timeout; only connections idle all that time are closed under their clients.
    /// </para>
    /// <para>
    /// SignalR hubs send to the clients of every worker (Herd's backplane), when SignalR is registered after this call;
    /// <c>services.AddSignalR().AddHerd()</c> says so in any order. Under <see cref="Herd.SchedulingPolicy.Sticky"/> the
    /// worker tells the primary each SignalR connection token it issues, so that the client's next connections come back.
    /// </para>
    /// </remarks>
    /// <param name="builder">The app's web host.</param>
    /// <param name="options">How the endpoints listen (exclusive, reuse-port); by default shared through the primary, with Kestrel's backlog.</param>
    public static IWebHostBuilder UseHerd(this IWebHostBuilder builder, ClusterListenOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(builder);
        if (!Herd.Cluster.IsWorker) return builder;
        Herd.Cluster.Worker.DeferHostReady(); // ready once the app has started, every endpoint bound, and is healthy
        Herd.Cluster.Worker.CountLoadInApp(); // requests in progress, not open connections, say how busy Kestrel is
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
                services.AddSingleton<WorkerDrain>();
                services.AddHostedService<HerdWorkerLifetime>();
                services.AddSingleton<IHostLifetime, HerdHostLifetime>();
                services.AddTransient<IStartupFilter, WorkerMiddleware>();
                services.AddTransient<IStartupFilter, Herd.AspNetCore.SignalR.NegotiateRouting>();
                // SignalR's own registration (AddSignalR) tries its default after this; an app's chosen backplane (Redis) replaces it.
                services.TryAddSingleton(typeof(Microsoft.AspNetCore.SignalR.HubLifetimeManager<>), typeof(Herd.AspNetCore.SignalR.HerdHubLifetimeManager<>));
            }
            services.AddSingleton<IConnectionListenerFactory>(provider => new HerdConnectionListenerFactory(
                provider.GetRequiredService<IOptions<SocketTransportOptions>>(), provider.GetRequiredService<ILoggerFactory>(),
                provider.GetRequiredService<WorkerDrain>(), provider.GetRequiredService<IServiceProviderIsService>(), options));
        });
    }
}
