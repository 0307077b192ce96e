using System.Diagnostics.CodeAnalysis;
using Herd.AspNetCore;
using Microsoft.Extensions.Hosting;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>Services for an app clustered with Herd.</summary>
public static class HerdServiceCollectionExtensions
{
    /// <summary>
    /// Adds a hosted service that runs in exactly one worker of the cluster (PM2's <c>NODE_APP_INSTANCE === '0'</c>):
    /// the leader, which the primary picks as the ready worker in the lowest slot, and replaces when that worker leaves
    /// (reload, scale-down, crash). The service starts in the new leader once the old one is told to stop it, so two
    /// run at once at most for the time the old one's <see cref="IHostedService.StopAsync"/> takes. Each term as leader
    /// gets a new instance of <typeparamref name="T"/>. Outside a cluster it runs as any hosted service does.
    /// </summary>
    /// <typeparam name="T">The service; created with the app's services (<c>ActivatorUtilities</c>), not registered itself.</typeparam>
    public static IServiceCollection AddHostedServiceInOneWorker<[DynamicallyAccessedMembers(DynamicallyAccessedMemberTypes.PublicConstructors)] T>(this IServiceCollection services)
        where T : class, IHostedService
    {
        ArgumentNullException.ThrowIfNull(services);
        return services.AddHostedService(provider => new OneWorkerHostedService<T>(provider));
    }
}
