using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using static Herd.Tests.CliTests;

namespace Herd.Tests;

/// <summary>The control socket and the command line: bad input is refused in one line, and names stay in their folder.</summary>
public sealed class ControlSocketTests
{
    [Fact]
    public async Task A_request_without_a_newline_is_cut_off_and_the_primary_stays_small()
    {
        await using var herd = await HerdRun.StartAsync(workers: 1);
        var path = Path.Combine($"/tmp/herd-{Native.Libc.GetUid()}", herd.Name + ".sock");
        long before = RssKb(herd.Pid);
        long sent = 0;
        using (var flood = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified))
        {
            await flood.ConnectAsync(new UnixDomainSocketEndPoint(path));
            var chunk = Encoding.ASCII.GetBytes(new string('x', 1 << 20));
            try
            {
                while (sent < 200L << 20) sent += await flood.SendAsync(chunk).WaitAsync(TestCluster.Timeout);
            }
            catch (SocketException)
            {
                // cut off: what the test wants
            }
        }
        long after = RssKb(herd.Pid);
        Console.WriteLine($"a request of no newline: cut off after {sent / 1024} KB; primary {before / 1024} MB -> {after / 1024} MB");
        Assert.True(sent < 200L << 20, "the primary read 200 MB of one request");
        Assert.InRange(after - before, long.MinValue, 50 * 1024);

        // A client that starts a request and never ends it gets an answer, within seconds, and is let go.
        using var slow = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        await slow.ConnectAsync(new UnixDomainSocketEndPoint(path));
        await slow.SendAsync(Encoding.ASCII.GetBytes("{\"comm"));
        var clock = Stopwatch.StartNew();
        using var reader = new StreamReader(new NetworkStream(slow));
        var answer = await reader.ReadLineAsync().WaitAsync(TestCluster.Timeout);
        Assert.Contains("\"ok\":false", answer, StringComparison.Ordinal);
        Assert.Null(await reader.ReadLineAsync().WaitAsync(TestCluster.Timeout));
        Assert.InRange(clock.Elapsed, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(15));
        Assert.Single(await herd.LsAsync()); // and it still answers everyone else
    }

    [Theory]
    [InlineData("../../victim")]
    [InlineData("/tmp/victim")]
    [InlineData("a/b")]
    [InlineData("..")]
    [InlineData("with space")]
    [InlineData("a-name-of-sixty-five-characters-is-one-more-than-sixty-four-xxxxx")]
    public async Task A_name_that_is_not_plain_is_refused_and_nothing_is_touched(string name)
    {
        using var runtime = new RuntimeDir();
        var victim = Path.Combine(runtime.Path, "victim.sock"); // where ../../victim would land: two folders up from the socket's, XDG_RUNTIME_DIR/herd
        File.WriteAllText(victim, "precious");
        var (code, output) = await TestProcess.RunAsync(["dotnet", TestCluster.HerdCliDll, "run", "-i", "1", "--name", name, "--", "dotnet", TestCluster.PlainWebAppDll],
            new Dictionary<string, string?> { ["XDG_RUNTIME_DIR"] = Path.Combine(runtime.Path, "xdg") });
        Assert.Equal(2, code);
        Assert.Contains("--name", output, StringComparison.Ordinal);
        OneLine(output);
        Assert.Equal("precious", File.ReadAllText(victim));
    }

    [Fact]
    public async Task Herd_leaves_alone_a_file_that_is_not_its_socket_but_replaces_its_stale_one()
    {
        using var runtime = new RuntimeDir();
        Directory.CreateDirectory(Path.Combine(runtime.Path, "herd"));
        var file = Path.Combine(runtime.Path, "herd", "app.sock");
        File.WriteAllText(file, "not a socket");
        var (code, output) = await runtime.HerdAsync("run", "-i", "1", "--name", "app", "--", "dotnet", TestCluster.PlainWebAppDll);
        Assert.NotEqual(0, code);
        Assert.Contains("not a socket", output, StringComparison.Ordinal);
        OneLine(output);
        Assert.Equal("not a socket", File.ReadAllText(file));
        File.Delete(file);

        // A primary killed with SIGKILL leaves its socket behind: the next command says the app is not running, and the next run takes its place.
        await using (var killed = runtime.StartHerd("run", "-i", "1", "--name", "app", "--", "dotnet", TestCluster.PlainWebAppDll, "--urls", $"http://127.0.0.1:{Ports.Free()}"))
        {
            await LogTests.WorkerPidsAsync("app", 1, runtimeDir: runtime.Path);
            killed.Kill();
            await killed.WaitForExitAsync();
        }
        Assert.True(File.Exists(file));
        (code, output) = await runtime.HerdAsync("ls", "--name", "app");
        Assert.Equal(1, code);
        Assert.Contains("app is not running", output, StringComparison.Ordinal);
        Assert.DoesNotContain("(no ", output, StringComparison.Ordinal);
        OneLine(output);

        await using var again = runtime.StartHerd("run", "-i", "1", "--name", "app", "--", "dotnet", TestCluster.PlainWebAppDll, "--urls", $"http://127.0.0.1:{Ports.Free()}");
        await LogTests.WorkerPidsAsync("app", 1, runtimeDir: runtime.Path);
        Assert.Equal(0, (await runtime.HerdAsync("stop", "--name", "app")).Code);
        await again.WaitForExitAsync();
    }

    [Fact]
    public async Task The_default_name_comes_from_the_command_and_a_lone_app_needs_no_name()
    {
        using var runtime = new RuntimeDir();
        await using var plain = runtime.StartHerd("run", "-i", "1", "--", "dotnet", TestCluster.PlainWebAppDll, "--urls", $"http://127.0.0.1:{Ports.Free()}");
        await LogTests.WorkerPidsAsync("PlainWebApp", 1, runtimeDir: runtime.Path);
        var (code, output) = await runtime.HerdAsync("ls", "--json");
        Assert.Equal(0, code);
        Assert.Single(System.Text.Json.JsonDocument.Parse(output).RootElement.EnumerateArray());

        await using var other = await HerdRun.StartAsync(1, null, null, ("XDG_RUNTIME_DIR", runtime.Path));
        (code, output) = await runtime.HerdAsync("ls");
        Assert.Equal(2, code);
        Assert.Contains("PlainWebApp", output, StringComparison.Ordinal);
        Assert.Contains(other.Name, output, StringComparison.Ordinal);
        OneLine(output);

        Assert.Equal(0, (await runtime.HerdAsync("stop", "--name", other.Name)).Code);
        Assert.Equal(0, (await runtime.HerdAsync("stop")).Code); // the one left
        await plain.WaitForExitAsync();
    }

    [Fact]
    public async Task No_app_running_is_one_line()
    {
        using var runtime = new RuntimeDir();
        var (code, output) = await runtime.HerdAsync("ls");
        Assert.Equal(1, code);
        Assert.Contains("No app is running", output, StringComparison.Ordinal);
        OneLine(output);
    }

    [Theory]
    [InlineData("missing")]
    [InlineData("directory")]
    [InlineData("""{ "maxMemoryMb": 9223372036854775807 }""")]
    public async Task A_config_herd_cannot_use_is_one_line(string config)
    {
        using var runtime = new RuntimeDir();
        var path = Path.Combine(runtime.Path, "herd.json");
        if (config == "directory") Directory.CreateDirectory(path);
        else if (config != "missing") File.WriteAllText(path, config);
        var (code, output) = await runtime.HerdAsync("run", "--config", path, "--", "dotnet", TestCluster.PlainWebAppDll);
        Assert.Equal(2, code);
        Assert.Contains(config.StartsWith('{') ? "maxMemoryMb is too large" : path, output, StringComparison.Ordinal);
        OneLine(output);
    }

    [Fact]
    public async Task A_second_run_of_a_running_name_is_one_line()
    {
        using var runtime = new RuntimeDir();
        await using var first = await HerdRun.StartAsync(1, null, null, ("XDG_RUNTIME_DIR", runtime.Path));
        var (code, output) = await runtime.HerdAsync("run", "-i", "1", "--name", first.Name, "--", "dotnet", TestCluster.PlainWebAppDll, "--urls", $"http://127.0.0.1:{Ports.Free()}");
        Assert.Equal(1, code);
        Assert.Contains("already running", output, StringComparison.Ordinal);
        OneLine(output);
    }

    [Fact]
    public async Task A_name_too_long_for_a_socket_path_is_one_line()
    {
        using var runtime = new RuntimeDir();
        var deep = Path.Combine(runtime.Path, new string('d', 60));
        Directory.CreateDirectory(deep);
        var (code, output) = await TestProcess.RunAsync(["dotnet", TestCluster.HerdCliDll, "run", "-i", "1", "--name", new string('n', 60), "--", "dotnet", TestCluster.PlainWebAppDll],
            new Dictionary<string, string?> { ["XDG_RUNTIME_DIR"] = deep });
        Assert.Equal(2, code);
        Assert.Contains("108", output, StringComparison.Ordinal);
        OneLine(output);
    }

    // herd's own say: one line, and no stack trace.
    private static void OneLine(string output)
    {
        Assert.DoesNotContain("   at ", output, StringComparison.Ordinal);
        Assert.Single(output.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    private static long RssKb(int pid) => long.Parse(File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal))
        .Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);

    /// <summary>An XDG_RUNTIME_DIR of the test's own: herd's sockets go to its herd folder, away from every other test's apps.</summary>
    private sealed class RuntimeDir : IDisposable
    {
        private readonly DirectoryInfo _folder = Directory.CreateTempSubdirectory("herd-xdg-");

        public string Path => _folder.FullName;

        public Task<(int Code, string Output)> HerdAsync(params string[] args) => TestProcess.RunAsync(["dotnet", TestCluster.HerdCliDll, .. args], Environment);

        public TestProcess StartHerd(params string[] args) => TestProcess.Start(["dotnet", TestCluster.HerdCliDll, .. args], Environment);

        private Dictionary<string, string?> Environment => new() { ["XDG_RUNTIME_DIR"] = Path };

        public void Dispose() => _folder.Delete(recursive: true);
    }
}
