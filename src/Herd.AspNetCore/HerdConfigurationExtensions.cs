using System.Diagnostics.CodeAnalysis;
using Herd;

namespace Microsoft.Extensions.Configuration;

/// <summary>Reads Herd's settings from the app's configuration (appsettings.json, environment, command line).</summary>
public static class HerdConfigurationExtensions
{
    /// <summary>
    /// The <see cref="SupervisorOptions"/> in the section (by default <c>Herd</c>), durations as <c>hh:mm:ss</c>. An
    /// unknown key or a value out of range throws <see cref="InvalidOperationException"/> naming it.
    /// </summary>
    // The configuration binder reflects over SupervisorOptions; its source generator would not (it leaves init-only
    // properties unset), so an app published with Native AOT is told at build time, and builds SupervisorOptions itself.
    [RequiresUnreferencedCode("Binds SupervisorOptions by reflection.")]
    [RequiresDynamicCode("Binds SupervisorOptions by reflection.")]
    public static SupervisorOptions GetSupervisorOptions(this IConfiguration configuration, string section = "Herd")
    {
        ArgumentNullException.ThrowIfNull(configuration);
        var options = configuration.GetSection(section).Get<SupervisorOptions>(binder => binder.ErrorOnUnknownConfiguration = true) ?? new SupervisorOptions();
        if (options.FirstInvalid() is var (option, _, problem)) throw new InvalidOperationException($"{section}:{option}: {problem}");
        return options;
    }
}
