using System.Diagnostics;
using System.Globalization;
using Xunit.Abstractions;
using HerdRun = Herd.Tests.CliTests.HerdRun;
using Tally = Herd.Tests.DrainTests.Tally;

namespace Herd.Tests;

/// <summary>
/// <c>herd upgrade</c> and SIGUSR2: a new primary takes the listening sockets and the control socket over, the old one
/// drains and exits, and clients see nothing of it.
/// </summary>
[Collection(nameof(UpgradeTests))]
public sealed class UpgradeTests(ITestOutputHelper output)
{
    // The issue's five in CI; bench/chaos.sh runs 20.
    private static int Upgrades => ChaosReport.Setting("UPGRADES", 5);

    [Fact]
    public async Task Upgrades_in_a_row_under_close_and_keep_alive_load_fail_nothing_and_leave_no_old_process()
    {
        await using var herd = await HerdRun.StartAsync(workers: 2);
        int primary = herd.Pid;
        var close = new Tally();
        var keepAlive = new Tally();
        using var stop = new CancellationTokenSource();
        var clients = Enumerable.Range(0, 4).SelectMany(_ => new[]
        {
            Task.Run(() => DrainTests.HammerAsync(herd.Port, keepAlive: false, TimeSpan.FromMilliseconds(5), close, stop.Token)),
            Task.Run(() => DrainTests.HammerAsync(herd.Port, keepAlive: true, TimeSpan.FromMilliseconds(1), keepAlive, stop.Token)),
        }).ToArray();
        var primaries = new List<int> { primary };
        var clock = Stopwatch.StartNew();
        try
        {
            await close.AnsweredAtLeastAsync(50);
            await keepAlive.AnsweredAtLeastAsync(50);
            for (int i = 0; i < Upgrades; i++)
            {
                var old = await herd.LsAsync();
                if (i == 0)
                {
                    // A second upgrade while the first runs is refused, and says so.
                    var both = await Task.WhenAll(HerdRun.CliAsync("upgrade", "--name", herd.Name), HerdRun.CliAsync("upgrade", "--name", herd.Name));
                    Assert.Single(both, r => r.Code == 0);
                    Assert.Contains(both, r => r.Code == 1 && (r.Output.Contains("already under way", StringComparison.Ordinal) || r.Output.Contains("still draining", StringComparison.Ordinal)));
                }
                else if (i == Upgrades - 1)
                {
                    Assert.True(Native.Fd.Kill(primary, (int)UnixSignal.SIGUSR2));
                }
                else
                {
                    var (code, text) = await HerdRun.CliAsync("upgrade", "--name", herd.Name);
                    Assert.True(code == 0, text);
                }
                int next = await NewPrimaryAsync(herd, primary);
                await GoneAsync([primary, .. old]);
                primaries.Add(primary = next);
                Assert.Equal(2, (await herd.LsAsync()).Count);
                await close.AnsweredAtLeastAsync(close.Answered + 50);
                await keepAlive.AnsweredAtLeastAsync(keepAlive.Answered + 50);
            }
        }
        finally
        {
            await stop.CancelAsync();
            await Task.WhenAll(clients).WaitAsync(TestCluster.Timeout);
            await StopSuccessorAsync(herd.Name, herd.Pid);
        }
        ChaosReport.Append(output, "herd upgrade under load", $"{Upgrades} upgrades in {clock.Elapsed.TotalSeconds:0} s, {primaries.Distinct().Count()} distinct primary pids, old ones all gone; " +
            $"Connection: close {close.Sent} sent, {close.Lost} lost, {close.Refused} refused; keep-alive {keepAlive.Sent} sent, {keepAlive.Lost} lost, {keepAlive.Refused} refused");
        Assert.Equal(Upgrades + 1, primaries.Distinct().Count());
        Assert.True(close.Lost + keepAlive.Lost == 0, string.Join("; ", close.Notes.Concat(keepAlive.Notes).Take(5)));
        Assert.Equal(0, close.Refused + keepAlive.Refused);
    }

    [Fact]
    public async Task An_upgrade_whose_new_workers_fail_leaves_the_old_primary_serving_and_says_why()
    {
        int port = Ports.Free();
        await using var herd = await HerdRun.StartAsync(workers: 2,
            $$"""{ "command": ["dotnet", "{{TestCluster.PlainWebAppDll}}", "--urls", "http://127.0.0.1:{{port}}"] }""", command: _ => []);
        using var http = new HttpClient { Timeout = TestCluster.Timeout };
        var uri = new Uri($"http://127.0.0.1:{port}/pid");
        var before = await herd.LsAsync();
        await File.WriteAllTextAsync(herd.ConfigPath!, """{ "command": ["sh", "-c", "echo the new build is broken >&2; exit 3"] }""");

        var (code, text) = await HerdRun.CliAsync("upgrade", "--name", herd.Name);

        Assert.Equal(1, code);
        Assert.Contains("the new build is broken", text, StringComparison.Ordinal);
        Assert.Contains("serves on", text, StringComparison.Ordinal);
        Assert.Equal(before.Order(), (await herd.LsAsync()).Order());
        Assert.Contains(int.Parse(await http.GetStringAsync(uri), CultureInfo.InvariantCulture), before);
        Assert.All(await herd.LsAsync(), pid => Assert.Equal(herd.Pid, ParentOf(pid)));
    }

    [Fact]
    public async Task Under_systemd_the_activated_socket_passes_on_and_the_new_primary_says_MAINPID_and_the_old_one_never_STOPPING()
    {
        if (!File.Exists("/usr/bin/systemd-socket-activate")) return; // Debian's systemd package has it; CI's machine does
        var folder = Directory.CreateTempSubdirectory("herd-notify-");
        int port = Ports.Free();
        var name = "test-" + Guid.NewGuid().ToString("N")[..8];
        using var systemd = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Dgram, System.Net.Sockets.ProtocolType.Unspecified);
        systemd.Bind(new System.Net.Sockets.UnixDomainSocketEndPoint(Path.Combine(folder.FullName, "notify")));
        // it execs herd: the first primary's pid is its own
        var activator = TestProcess.Start(["systemd-socket-activate", "-l", $"127.0.0.1:{port}", "-E", "NOTIFY_SOCKET", "dotnet", TestCluster.HerdCliDll,
            "run", "-i", "2", "--name", name, "--", "dotnet", TestCluster.PlainWebAppDll, "--urls", $"http://127.0.0.1:{port}"],
            new Dictionary<string, string?> { ["XDG_RUNTIME_DIR"] = null, ["NOTIFY_SOCKET"] = Path.Combine(folder.FullName, "notify") });
        var buffer = new byte[512];
        async Task<string> HeardAsync() => System.Text.Encoding.UTF8.GetString(buffer, 0, await systemd.ReceiveAsync(buffer).WaitAsync(TestCluster.Timeout));
        try
        {
            using var http = new HttpClient { Timeout = TestCluster.Timeout };
            http.DefaultRequestHeaders.ConnectionClose = true;
            var uri = new Uri($"http://127.0.0.1:{port}/pid");
            await KestrelTests.GetWhenUpAsync(http, uri, () => "systemd-socket-activate never listened");
            Assert.StartsWith("READY=1", await HeardAsync(), StringComparison.Ordinal);
            var old = await WorkersAsync(name);

            var (code, text) = await HerdRun.CliAsync("upgrade", "--name", name);
            Assert.True(code == 0, text);
            var mainPid = await HeardAsync();
            Assert.StartsWith("MAINPID=", mainPid, StringComparison.Ordinal);
            int primary = int.Parse(mainPid["MAINPID=".Length..], CultureInfo.InvariantCulture);
            Assert.NotEqual(activator.Pid, primary);
            Assert.StartsWith("READY=1", await HeardAsync(), StringComparison.Ordinal);
            Assert.Equal(0, await activator.WaitForExitAsync(untilOutputEnds: false)); // the new primary has its outputs
            await GoneAsync(old);

            // The activated socket, now the new primary's alone, still serves; systemd heard nothing more.
            Assert.Equal(primary, ParentOf(int.Parse(await http.GetStringAsync(uri), CultureInfo.InvariantCulture)));
            Assert.Equal(0, systemd.Available);
        }
        finally
        {
            await StopSuccessorAsync(name, activator.Pid);
            await activator.DisposeAsync();
            folder.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task As_a_containers_pid_1_an_upgrade_is_refused_and_says_why()
    {
        if (await ProcessTests.NewPidNamespaceAsync() is not { } newPidNamespace) return;
        await using var herd = await HerdRun.StartAsync(1, newPidNamespace, shell: null);
        var workers = await herd.LsAsync();

        var (code, text) = await HerdRun.CliAsync("upgrade", "--name", herd.Name);

        Assert.Equal(1, code);
        Assert.Contains("pid 1", text, StringComparison.Ordinal);
        Assert.Equal(workers, await herd.LsAsync());
        // herd at pid 1 (inside the namespace) drains on SIGTERM, and unshare exits as it did.
        Assert.True(Native.Fd.Kill(Assert.Single(ProcessTests.ChildrenOf(herd.Pid)), (int)UnixSignal.SIGTERM));
        Assert.Equal(0, await herd.ExitCodeAsync());
    }

    // Whichever primary answers, if not the first (a new one, even if the test failed before it learned its pid), stops with its workers.
    private static async Task StopSuccessorAsync(string name, int first)
    {
        if (await WorkersAsync(name) is [var worker, ..] workers && ParentOf(worker) is var answering && answering != first)
        {
            Native.Fd.Kill(answering, (int)UnixSignal.SIGTERM);
            await GoneAsync([answering, .. workers]);
        }
    }

    // The workers' pids, as herd ls --json lists them; none when the app does not answer.
    private static async Task<List<int>> WorkersAsync(string name)
    {
        var (code, output) = await HerdRun.CliAsync("ls", "--json", "--name", name);
        return code != 0 ? [] : [.. System.Text.Json.JsonDocument.Parse(output).RootElement.EnumerateArray().Select(w => w.GetProperty("pid").GetInt32())];
    }

    // herd ls answers from the new primary once the old one has handed over: the parent of the workers it lists.
    private static async Task<int> NewPrimaryAsync(HerdRun herd, int old)
    {
        int parent = 0;
        await TestCluster.UntilAsync(async () => await herd.LsAsync() is [var worker, ..] && (parent = ParentOf(worker)) != old && parent > 0, $"primary {old} to be replaced");
        return parent;
    }

    // Gone, or a zombie nobody reaped yet (the old primary's parent may not be this process).
    private static async Task GoneAsync(IEnumerable<int> pids)
    {
        var all = pids.ToList();
        await TestCluster.UntilAsync(() => all.All(pid => State(pid) is null or 'Z'), $"processes {string.Join(", ", all)} to be gone");
    }

    private static char? State(int pid) => Stat(pid) is { } fields ? fields[0][0] : null;

    private static int ParentOf(int pid) => Stat(pid) is { } fields ? int.Parse(fields[1], CultureInfo.InvariantCulture) : 0;

    // /proc/PID/stat after the command's name: state, ppid, ...
    private static string[]? Stat(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        }
        catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException or IOException)
        {
            return null;
        }
    }
}

// Two primaries, four workers and eight clients at once during each upgrade: alone, as the process tests run.
[CollectionDefinition(nameof(UpgradeTests), DisableParallelization = true)]
public sealed class UpgradeTestsCollection;
