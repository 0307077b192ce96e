using Herd.AspNetCore.SignalR;
using Microsoft.AspNetCore.SignalR;

namespace Microsoft.Extensions.DependencyInjection;

/// <summary>SignalR across the workers of a Herd cluster.</summary>
public static class HerdSignalRExtensions
{
    /// <summary>
    /// Sends what hubs send to all clients, groups, users and connections to the clients of every worker, through the
    /// primary. <c>UseHerd()</c> and <c>herd run</c> add it already unless SignalR was registered before them; this call
    /// says so whatever the order. One machine only: past it, use a backplane such as Redis (<c>AddStackExchangeRedis</c>).
    /// Outside a Herd worker it changes nothing.
    /// </summary>
    /// <param name="builder">The app's SignalR registration (<c>services.AddSignalR()</c>).</param>
    public static ISignalRServerBuilder AddHerd(this ISignalRServerBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        builder.Services.AddSingleton(typeof(HubLifetimeManager<>), typeof(HerdHubLifetimeManager<>));
        return builder;
    }
}
