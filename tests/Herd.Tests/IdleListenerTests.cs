using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text.Json;
using static Herd.Tests.CliTests;

namespace Herd.Tests;

/// <summary>A listener nobody uses is closed, as in Node: its port refuses connections rather than queueing them for no one.</summary>
public sealed class IdleListenerTests
{
    [Fact]
    public async Task Under_herd_run_a_port_left_behind_by_a_reload_or_a_replacement_refuses_connections()
    {
        var portFile = Path.GetTempFileName();
        try
        {
            int first = Ports.Free();
            await File.WriteAllTextAsync(portFile, first.ToString(CultureInfo.InvariantCulture));
            await using var herd = await HerdRun.StartAsync(1, null, _ => ["dotnet", TestCluster.WorkerDll, "serve", "--port-file", portFile]);
            int worker = (await herd.LsAsync())[0];
            Assert.Equal(worker, await Client.PidOfAsync(Loopback(first)));

            // A reload onto a new port: the old one closes once the old worker has left.
            int second = Ports.Free();
            await File.WriteAllTextAsync(portFile, second.ToString(CultureInfo.InvariantCulture));
            Assert.Equal(0, (await HerdRun.CliAsync("reload", "--name", herd.Name)).Code);
            int reloaded = (await herd.LsAsync())[0];
            Assert.Equal(reloaded, await Client.PidOfAsync(Loopback(second)));
            await RefusedAsync(first);

            // A worker that dies keeps its port for its replacement; once the replacement is ready elsewhere, nobody is coming for it.
            int third = Ports.Free();
            await File.WriteAllTextAsync(portFile, third.ToString(CultureInfo.InvariantCulture));
            Assert.True(Native.Fd.Kill(reloaded, (int)UnixSignal.SIGKILL));
            await herd.WaitForReplacementAsync(reloaded, workers: 1);
            Assert.Equal((await herd.LsAsync())[0], await Client.PidOfAsync(Loopback(third)));
            await RefusedAsync(second);
        }
        finally
        {
            File.Delete(portFile);
        }
    }

    [Fact]
    public async Task A_server_its_worker_closes_is_closed_though_supervised()
    {
        await using var cluster = new TestCluster(["serve"]);
        await using var supervisor = new Supervisor(cluster.Primary, SupervisorTests.Quick with { Workers = 1 });
        await supervisor.StartAsync();
        var worker = supervisor.Workers.Single();
        var address = await cluster.ListeningAsync(worker);
        Assert.Equal(worker.Process.Id, await Client.PidOfAsync(address.EndPoint));

        Assert.True(worker.Send(TestCluster.Json("""{ "cmd": "close" }"""))); // as Kestrel does when its endpoints change
        await RefusedAsync(address.Port);
    }

    [Fact]
    public async Task Under_herd_run_an_app_that_calls_UseHerd_counts_each_request_once()
    {
        await using var herd = await HerdRun.StartAsync(1, """{ "heartbeatInterval": 100 }""", port => ["dotnet", TestCluster.TestWebAppDll, "--urls", $"http://127.0.0.1:{port}"]);
        using var http = new HttpClient { Timeout = TestCluster.Timeout };
        for (int i = 0; i < 10; i++) await http.GetStringAsync(herd.Uri);
        long requests = 0;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (requests < 10 && clock.Elapsed < TestCluster.Timeout)
        {
            var (_, output) = await HerdRun.CliAsync("ls", "--json", "--name", herd.Name);
            requests = JsonDocument.Parse(output).RootElement.EnumerateArray().Sum(w => w.GetProperty("requests").GetInt64());
        }
        Assert.Equal(10, requests);
    }

    private static IPEndPoint Loopback(int port) => new(IPAddress.Loopback, port);

    // The primary closes the listener a moment after the last worker lets go: wait for a refusal, never a connection that hangs.
    private static async Task RefusedAsync(int port)
    {
        var refused = false;
        await TestCluster.UntilAsync(() =>
        {
            using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                probe.Connect(Loopback(port));
                return false;
            }
            catch (SocketException ex) when (ex.SocketErrorCode == SocketError.ConnectionRefused)
            {
                return refused = true;
            }
        }, $"port {port} to refuse connections");
        Assert.True(refused);
    }
}
