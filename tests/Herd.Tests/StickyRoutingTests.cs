using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http;
using System.Net.Sockets;
using System.Text;
using Herd.Ipc;
using Herd.Primary;

namespace Herd.Tests;

/// <summary>The sticky policies under herd run, with PlainWebApp, which knows nothing of Herd.</summary>
public sealed class StickyRoutingTests
{
    [Theory]
    [InlineData("GET /hub?id=abc_-DEF HTTP/1.1\r\nHost: x\r\n\r\n", "Token", "abc_-DEF")]
    [InlineData("POST /hub?foo=1&id=a%2Bb HTTP/1.1\r\n", "Token", "a+b")]
    [InlineData("POST /hub/negotiate?negotiateVersion=1 HTTP/1.1\r\n", "Http", null)]
    [InlineData("GET /pid HTTP/1.1\r\n", "Http", null)]
    [InlineData("GET /hub?uid=x HTTP/1.1\n", "Http", null)]
    [InlineData("GET /hub?id=abc HTT", null, null)]
    [InlineData("GE", null, null)]
    [InlineData("\u0016\u0003\u0001\u0002\u0000", "Other", null)]
    [InlineData("PRI * HTTP/2.0\r\n", "Http", null)]
    [InlineData("hello\r\n", "Other", null)]
    public void A_peek_reads_SignalRs_token_from_the_request_line(string data, string? found, string? token)
    {
        Assert.Equal((found is null ? null : Enum.Parse<Peeked>(found), token), HttpPeek.Parse(Encoding.Latin1.GetBytes(data)));
    }

    [Fact]
    public void A_request_line_longer_than_the_peek_is_not_read()
    {
        Assert.Equal((Peeked.Other, null), HttpPeek.Parse(Encoding.ASCII.GetBytes("GET /" + new string('a', HttpPeek.Limit))));
    }

    [Fact]
    public async Task The_token_map_forgets_its_oldest_past_its_capacity_and_a_leaving_workers_all()
    {
        await using var primary = new ClusterPrimary();
        using var process = new WorkerProcess(Environment.ProcessId, Native.Pidfd.Open(Environment.ProcessId), null, null); // stand-ins: only identity matters
        var (end1, other1) = Native.Fd.SeqPacketPair();
        var (end2, other2) = Native.Fd.SeqPacketPair();
        using var channel1 = new WorkerChannel(end1);
        using var channel2 = new WorkerChannel(end2);
        using (other1)
        using (other2)
        {
            var one = new Worker(primary, 1, 0, process, channel1);
            var two = new Worker(primary, 2, 1, process, channel2);
            var tokens = new StickyRouter(capacity: 3);
            Assert.True(tokens.Add("a", one));
            Assert.True(tokens.Add("b", two));
            Assert.True(tokens.Add("c", one));
            Assert.True(tokens.Add("d", two));
            Assert.False(tokens.Add(new string('x', StickyRouter.MaxTokenLength + 1), one));
            Assert.Null(tokens.Find("a"));
            Assert.Equal(two, tokens.Find("b"));

            tokens.Forget(two);
            Assert.Equal(1, tokens.Count);
            Assert.Equal(one, tokens.Find("c"));
            Assert.Null(tokens.Find("d"));
        }
    }

    [Fact]
    public async Task Clients_that_send_nothing_hold_up_nobody_and_are_served_when_they_speak()
    {
        await using var herd = await CliTests.HerdRun.StartAsync(workers: 2, """{ "policy": "sticky" }""");
        var silent = new List<Socket>();
        try
        {
            for (int i = 0; i < 20; i++)
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
                silent.Add(socket);
                await socket.ConnectAsync(IPAddress.Loopback, herd.Port);
            }
            // Were each silent client peeked in turn on the accept thread, these would wait 20 × HttpPeek.Wait.
            var clock = Stopwatch.StartNew();
            for (int i = 0; i < 5; i++) await herd.GetPidAsync();
            Assert.True(clock.Elapsed < 10 * HttpPeek.Wait, $"5 requests took {clock.Elapsed} behind 20 silent clients");
            // Past the wait they went to a worker by their address, and are answered when they speak at last.
            var workers = await herd.LsAsync();
            foreach (var socket in silent)
            {
                await socket.SendAsync("GET /pid HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"u8.ToArray());
                using var reader = new StreamReader(new NetworkStream(socket));
                var response = await reader.ReadToEndAsync().WaitAsync(TestCluster.Timeout);
                Assert.StartsWith("HTTP/1.1 200", response, StringComparison.Ordinal);
                Assert.Contains(workers, pid => response.Contains(pid.ToString(CultureInfo.InvariantCulture), StringComparison.Ordinal));
            }
        }
        finally
        {
            foreach (var socket in silent) socket.Dispose();
        }
    }

    [Fact]
    public async Task Stickyaddress_keeps_each_source_address_on_one_worker_and_spreads_addresses()
    {
        await using var herd = await CliTests.HerdRun.StartAsync(workers: 2, """{ "policy": "stickyaddress" }""");
        var served = new Dictionary<int, HashSet<int>>();
        for (int source = 2; source < 22; source++)
        {
            using var http = From(source);
            var pids = served[source] = [];
            for (int i = 0; i < 3; i++) pids.Add(int.Parse(await http.GetStringAsync(herd.Uri), CultureInfo.InvariantCulture));
        }
        Assert.All(served.Values, pids => Assert.Single(pids));
        Assert.Equal(2, served.Values.SelectMany(p => p).Distinct().Count());
    }

    [Fact]
    public async Task A_policy_herd_does_not_know_is_refused_by_name()
    {
        var (code, output) = await CliTests.HerdRun.CliAsync("run", "-i", "1", "--policy", "random", "--name", "test-" + Guid.NewGuid().ToString("N")[..8], "--", "sleep", "60");
        Assert.NotEqual(0, code);
        Assert.Contains("policy must be rr, none, leastbusy, sticky or stickyaddress, not 'random'", output, StringComparison.Ordinal);
    }

    // A new connection per request, each from 127.0.0.<source>.
    private static HttpClient From(int source)
    {
        var handler = new SocketsHttpHandler { ConnectCallback = SignalRClients.ConnectFrom(new IPAddress([127, 0, 0, (byte)source])) };
        var http = new HttpClient(handler) { Timeout = TestCluster.Timeout };
        http.DefaultRequestHeaders.ConnectionClose = true;
        return http;
    }
}
