using Microsoft.AspNetCore.Hosting;

[assembly: HostingStartup(typeof(Herd.StartupHook.HerdHostingStartup))]

namespace Herd.StartupHook;

/// <summary>The hosting startup the hook adds: <c>UseHerd()</c>, in an app that never heard of Herd.</summary>
public sealed class HerdHostingStartup : IHostingStartup
{
    /// <inheritdoc />
    public void Configure(IWebHostBuilder builder) => builder.UseHerd();
}
