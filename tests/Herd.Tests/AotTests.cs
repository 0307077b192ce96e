using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;

namespace Herd.Tests;

/// <summary>
/// Native AOT both ways: herd published as one native executable (build/publish-aot.sh), and samples/AotHello, an app
/// published with Native AOT that calls UseHerd(), clustered by that herd and by its own primary.
/// </summary>
[Collection(nameof(PackageTests))]
public sealed class AotTests(AotTests.Published published) : IClassFixture<AotTests.Published>
{
    [Fact]
    public async Task Native_herd_runs_two_native_workers_of_an_app_published_with_native_aot_and_both_serve()
    {
        int port = Ports.Free();
        await AssertBothServeAsync([published.Herd, "run", "-i", "2", "--name", "aot-" + Guid.NewGuid().ToString("N")[..8], "--",
            published.App, "--urls", $"http://127.0.0.1:{port}"], port, ready: " running, ", count: 1);
    }

    // The JIT'd workers load the startup hook from the native herd's folder: the publish put it there.
    [Fact]
    public async Task Native_herd_clusters_an_app_that_knows_nothing_of_herd_and_both_workers_serve()
    {
        int port = Ports.Free();
        await AssertBothServeAsync([published.Herd, "run", "-i", "2", "--name", "aot-" + Guid.NewGuid().ToString("N")[..8], "--",
            "dotnet", TestCluster.PlainWebAppDll, "--urls", $"http://127.0.0.1:{port}"], port, ready: " running, ", count: 1);
    }

    [Fact]
    public async Task An_app_published_with_native_aot_is_its_own_primary_and_both_forked_workers_serve()
    {
        int port = Ports.Free();
        await AssertBothServeAsync([published.App, "--workers", "2", "--urls", $"http://127.0.0.1:{port}"], port, ready: "Now listening on", count: 2);
    }

    // Starts the primary, waits for `count` lines containing `ready` (on either stream), then asks /pid until two
    // workers have answered; SIGTERM stops it, and the primary takes its workers down with it.
    internal static async Task AssertBothServeAsync(IReadOnlyList<string> command, int port, string ready, int count, IReadOnlyDictionary<string, string?>? environment = null)
    {
        await using var primary = TestProcess.Start(command, environment ?? new Dictionary<string, string?> { ["XDG_RUNTIME_DIR"] = null });
        try
        {
            await TestCluster.UntilAsync(() => primary.Output.Lines.Concat(primary.Errors.Lines).Count(l => l.Contains(ready, StringComparison.Ordinal)) >= count || primary.HasExited,
                $"{count} line(s) saying '{ready}'");
            Assert.False(primary.HasExited, string.Join('\n', primary.Output.Lines.Concat(primary.Errors.Lines)));
            using var http = new HttpClient { Timeout = TestCluster.Timeout };
            http.DefaultRequestHeaders.ConnectionClose = true;
            var pids = new HashSet<int>();
            for (int i = 0; i < 20 && pids.Count < 2; i++)
                pids.Add(int.Parse(await http.GetStringAsync(new Uri($"http://127.0.0.1:{port}/pid")), CultureInfo.InvariantCulture));
            Assert.Equal(2, pids.Count);
        }
        finally
        {
            Native.Fd.Kill(primary.Pid, (int)UnixSignal.SIGTERM);
            await primary.WaitForExitAsync();
        }
    }

    /// <summary>herd and AotHello, published with Native AOT once for the class, into a folder removed afterwards.</summary>
    public sealed class Published : IAsyncLifetime
    {
        // Native AOT compiles the framework with the app: a minute or more each on a busy 2-core machine.
        private static readonly TimeSpan PublishTimeout = TimeSpan.FromMinutes(10);

        private readonly DirectoryInfo _temp = Directory.CreateTempSubdirectory("herd-aot-");

        public string Herd => Path.Combine(_temp.FullName, "herd", "herd");

        public string App => Path.Combine(_temp.FullName, "app", "AotHello");

        public async Task InitializeAsync()
        {
            var root = PackageTests.RepositoryRoot;
            var results = await Task.WhenAll(
                TestProcess.RunAsync([Path.Combine(root, "build/publish-aot.sh"), "--output", Path.Combine(_temp.FullName, "herd")], timeout: PublishTimeout),
                TestProcess.RunAsync(["dotnet", "publish", Path.Combine(root, "samples/AotHello/AotHello.csproj"), "-c", "Release", "-r", "linux-x64",
                    "-o", Path.Combine(_temp.FullName, "app"), "--artifacts-path", Path.Combine(_temp.FullName, "app-build"), "-nologo"], timeout: PublishTimeout));
            foreach (var (code, output) in results) Assert.True(code == 0, output);
        }

        public Task DisposeAsync()
        {
            _temp.Delete(recursive: true);
            return Task.CompletedTask;
        }
    }
}
