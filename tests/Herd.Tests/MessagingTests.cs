using System.Net;
using System.Net.Sockets;
using System.Text.Json;

namespace Herd.Tests;

/// <summary>Messages both ways, large payloads, sockets passed with a message, and hostile frames.</summary>
public sealed class MessagingTests
{
    [Fact]
    public async Task Messages_go_both_ways()
    {
        await using var cluster = new TestCluster(["serve"]);
        var (worker, _) = await cluster.ForkListeningAsync();
        Assert.True(worker.Send(TestCluster.Json("""{"cmd":"echo","n":[1,2,3]}""")));
        var echoed = await cluster.NextMessageAsync(worker);
        Assert.Equal("""{"cmd":"echo","n":[1,2,3]}""", echoed.GetRawText());
    }

    [Fact]
    public async Task A_one_megabyte_message_round_trips()
    {
        await using var cluster = new TestCluster(["serve"]);
        var (worker, _) = await cluster.ForkListeningAsync();
        var payload = string.Create(1024 * 1024, 0, (span, _) =>
        {
            for (int i = 0; i < span.Length; i++) span[i] = (char)('a' + (i % 26));
        });
        Assert.True(worker.Send(JsonSerializer.SerializeToElement(new Dictionary<string, string> { ["cmd"] = "echo", ["payload"] = payload })));
        var echoed = await cluster.NextMessageAsync(worker);
        Assert.Equal(payload, echoed.GetProperty("payload").GetString());
    }

    [Fact]
    public async Task A_socket_travels_with_a_message()
    {
        await using var cluster = new TestCluster(["serve"]);
        var (worker, _) = await cluster.ForkListeningAsync();
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen();
        using var client = await Client.ConnectAsync(listener.LocalEndPoint!);
        using (var accepted = await listener.AcceptAsync())
            Assert.True(worker.Send(TestCluster.Json("""{"cmd":"socket"}"""), accepted));
        Assert.Equal($"from worker {worker.Process.Id}", await client.ReadLineAsync());
    }

    [Fact]
    public async Task A_worker_leaves_when_the_primary_breaks_the_protocol()
    {
        await using var cluster = new TestCluster(["serve"]);
        var (worker, _) = await cluster.ForkListeningAsync();

        Assert.True(worker.Channel.Send("\u0001{\"act\":\"noSuchAct\"}"u8)); // an unknown act is ignored: versions may differ
        Assert.True(worker.Send(TestCluster.Json("""{"cmd":"echo"}""")));
        Assert.Equal("echo", (await cluster.NextMessageAsync(worker)).GetProperty("cmd").GetString());

        Assert.True(worker.Channel.Send([3, 1, 2])); // a newconn without its connection
        Assert.Equal(new WorkerExit(0, null), await worker.Exited.WaitAsync(TestCluster.Timeout));
    }
}
