using System.Reflection;
using System.Runtime.Loader;

#pragma warning disable CA1050 // the runtime looks for StartupHook in the global namespace

/// <summary>
/// Runs before the app's Main when named in DOTNET_STARTUP_HOOKS (dotnet-interop.md section 7.1): makes Herd's
/// assemblies resolvable from this folder, adds <see cref="Herd.StartupHook.HerdHostingStartup"/> to the app's
/// hosting startups, and takes itself out of the environment so the app's own children are left alone.
/// </summary>
internal static class StartupHook
{
    private const string HostingStartups = "ASPNETCORE_HOSTINGSTARTUPASSEMBLIES";
    private const string StartupHooks = "DOTNET_STARTUP_HOOKS";

    public static void Initialize()
    {
        var self = typeof(StartupHook).Assembly;
        var folder = Path.GetDirectoryName(self.Location)!;
        AssemblyLoadContext.Default.Resolving += (context, name) =>
        {
            var candidate = Path.Combine(folder, name.Name + ".dll");
            return File.Exists(candidate) ? context.LoadFromAssemblyPath(candidate) : null;
        };
        var current = Environment.GetEnvironmentVariable(HostingStartups);
        var mine = self.GetName().Name!;
        Environment.SetEnvironmentVariable(HostingStartups, string.IsNullOrEmpty(current) ? mine : $"{current};{mine}");
        var hooks = (Environment.GetEnvironmentVariable(StartupHooks) ?? "").Split(Path.PathSeparator)
            .Where(hook => hook.Length > 0 && !string.Equals(Path.GetFullPath(hook), self.Location, StringComparison.Ordinal));
        Environment.SetEnvironmentVariable(StartupHooks, string.Join(Path.PathSeparator, hooks) is { Length: > 0 } rest ? rest : null);
    }
}
