namespace Herd.Tests;

/// <summary>
/// The packages as a user gets them: build/pack.sh packs them into a folder, the herd tool installs from it into a
/// fresh HOME and package cache, and that herd clusters PlainWebApp.
/// </summary>
[Collection(nameof(PackageTests))]
public sealed class PackageTests
{
    // Packing builds the three projects afresh, apart from their bin and obj: minutes on a busy 2-core machine.
    private static readonly TimeSpan PackTimeout = TimeSpan.FromMinutes(10);

    internal static string RepositoryRoot => Path.GetFullPath(Path.Combine(Path.GetDirectoryName(TestCluster.HerdCliDll)!, "../../../../.."));

    [Fact]
    public async Task The_herd_tool_installs_from_the_packed_folder_into_a_fresh_home_and_runs_two_workers()
    {
        var temp = Directory.CreateTempSubdirectory("herd-pack-");
        try
        {
            var packages = Path.Combine(temp.FullName, "packages");
            var (packed, packOutput) = await TestProcess.RunAsync([Path.Combine(RepositoryRoot, "build/pack.sh"), "--output", packages], timeout: PackTimeout);
            Assert.True(packed == 0, packOutput);
            Assert.Contains(Directory.GetFiles(packages), f => Path.GetFileName(f).StartsWith("Herd.AspNetCore.", StringComparison.Ordinal) && f.EndsWith(".snupkg", StringComparison.Ordinal));
            var tool = Directory.GetFiles(packages, "Herd.Cli.*.nupkg").Single();
            var version = Path.GetFileNameWithoutExtension(tool)["Herd.Cli.".Length..];

            var home = Directory.CreateDirectory(Path.Combine(temp.FullName, "home")).FullName;
            var environment = new Dictionary<string, string?>
            {
                ["HOME"] = home,
                ["DOTNET_CLI_HOME"] = home,
                ["NUGET_PACKAGES"] = Path.Combine(temp.FullName, "nuget"),
                ["XDG_RUNTIME_DIR"] = null,
                // The tool's apphost finds the runtime here, as on a machine with dotnet installed where it looks.
                ["DOTNET_ROOT"] = Path.GetDirectoryName(Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") ?? "/usr/share/dotnet/dotnet"),
            };
            var tools = Path.Combine(temp.FullName, "tools");
            var (installed, installOutput) = await TestProcess.RunAsync(
                ["dotnet", "tool", "install", "--tool-path", tools, "--add-source", packages, "Herd.Cli", "--version", version], environment, PackTimeout);
            Assert.True(installed == 0, installOutput);

            int port = Ports.Free();
            var name = "pack-" + Guid.NewGuid().ToString("N")[..8];
            await AotTests.AssertBothServeAsync([Path.Combine(tools, "herd"), "run", "-i", "2", "--name", name, "--", "dotnet", TestCluster.PlainWebAppDll, "--urls", $"http://127.0.0.1:{port}"],
                port, ready: " running, ", count: 1, environment);
        }
        finally
        {
            temp.Delete(recursive: true);
        }
    }
}

// Packing compiles for minutes on both cores: alone, so that it slows no timed test.
[CollectionDefinition(nameof(PackageTests), DisableParallelization = true)]
public sealed class PackageTestsCollection;
