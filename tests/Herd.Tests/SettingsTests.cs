using System.Net;
using System.Net.Sockets;

namespace Herd.Tests;

/// <summary>Node's setup-primary tests and fork(env), plus uid: a root primary binds a privileged port for an unprivileged worker.</summary>
public sealed class SettingsTests
{
    [Fact]
    public async Task Fork_env_reaches_the_worker_and_nothing_of_the_channel_reaches_grandchildren()
    {
        await using var cluster = new TestCluster(["serve"]);
        var (worker, address) = await cluster.ForkListeningAsync(new Dictionary<string, string?> { ["HERD_TEST_VAR"] = "from fork" });
        using var connection = await Client.ConnectAsync(address.EndPoint); // a received fd is open while it looks
        Assert.Equal(worker.Process.Id, await connection.ReadPidAsync());
        worker.Send(TestCluster.Json("""{"cmd":"env"}"""));
        var env = await cluster.NextMessageAsync(worker);
        Assert.Equal("from fork", env.GetProperty("custom").GetString());
        // A process the worker starts is not a worker, and inherits neither the channel nor a received connection.
        Assert.Equal(System.Text.Json.JsonValueKind.Null, env.GetProperty("id").ValueKind);
        Assert.Equal(System.Text.Json.JsonValueKind.Null, env.GetProperty("channel").ValueKind);
        Assert.Empty(env.GetProperty("inheritable").EnumerateArray());
    }

    [Fact]
    public async Task A_worker_starts_with_the_thread_pool_not_spinning_unless_its_environment_says_otherwise()
    {
        await using var cluster = new TestCluster(["serve"]);
        const string Spin = "DOTNET_ThreadPool_UnfairSemaphoreSpinLimit";
        foreach (var (env, expected) in new[] { (new Dictionary<string, string?>(), "0"), (new Dictionary<string, string?> { [Spin] = "70" }, "70") })
        {
            var (worker, _) = await cluster.ForkListeningAsync(env);
            worker.Send(TestCluster.Json("""{"cmd":"env"}"""));
            Assert.Equal(expected, (await cluster.NextMessageAsync(worker)).GetProperty("spin").GetString());
        }
    }

    [Fact]
    public async Task SetupPrimary_settings_add_up_and_reach_the_worker()
    {
        var cwd = Directory.CreateTempSubdirectory("herd-cwd-");
        try
        {
            await using var cluster = new TestCluster(["serve"]);
            var setups = new List<ClusterSettings>();
            cluster.Primary.Setup += setups.Add;
            cluster.Primary.SetupPrimary(new ClusterSettings { Args = ["serve", "--port", "0", "--extra"] });
            cluster.Primary.SetupPrimary(new ClusterSettings { WorkingDirectory = cwd.FullName });
            Assert.Equal(["serve", "--port", "0", "--extra"], cluster.Primary.Settings.Args!);
            Assert.Equal(cwd.FullName, cluster.Primary.Settings.WorkingDirectory);
            Assert.Throws<InvalidOperationException>(() => cluster.Primary.SchedulingPolicy = SchedulingPolicy.None);

            var (worker, _) = await cluster.ForkListeningAsync();
            worker.Send(TestCluster.Json("""{"cmd":"env"}"""));
            var env = await cluster.NextMessageAsync(worker);
            Assert.Equal(cwd.FullName, env.GetProperty("cwd").GetString());
            Assert.Equal(["serve", "--port", "0", "--extra"], env.GetProperty("args").EnumerateArray().Select(a => a.GetString()!));
            Assert.Equal(3, setups.Count); // two SetupPrimary calls and the one inside Fork
        }
        finally
        {
            cwd.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task A_worker_running_as_nobody_serves_a_privileged_port_the_root_primary_bound()
    {
        if (Native.Libc.GetUid() != 0) return; // needs root, as CI has; the assertion below is what matters there
        int port = Enumerable.Range(800, 200).First(IsFree);
        var nobody = new ClusterSettings { Uid = 65534, Gid = 65534, Exec = TestCluster.WorkerDllNobodyCanRead() };
        await using var cluster = new TestCluster(["serve", "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture)], settings: nobody);
        var (worker, address) = await cluster.ForkListeningAsync();
        Assert.Equal(port, address.Port);
        Assert.Equal(worker.Process.Id, await Client.PidOfAsync(address.EndPoint));
        var uid = File.ReadLines($"/proc/{worker.Process.Id}/status").First(l => l.StartsWith("Uid:", StringComparison.Ordinal));
        Assert.Equal(["65534", "65534", "65534", "65534"], uid.Split('\t', StringSplitOptions.RemoveEmptyEntries)[1..]);

        // Unprivileged, the same worker could not have bound it itself.
        await using var exclusive = new TestCluster(["serve", "--exclusive", "--port", (port + 1).ToString(System.Globalization.CultureInfo.InvariantCulture)],
            settings: nobody);
        var refused = exclusive.Primary.Fork();
        Assert.Equal(nameof(SocketError.AccessDenied), (await exclusive.NextMessageAsync(refused)).GetProperty("error").GetString());
    }

    private static bool IsFree(int port)
    {
        try
        {
            using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            probe.Bind(new IPEndPoint(IPAddress.Loopback, port));
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
