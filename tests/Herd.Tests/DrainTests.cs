using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Text;
using Xunit.Abstractions;
using HerdRun = Herd.Tests.CliTests.HerdRun;

namespace Herd.Tests;

/// <summary>
/// A worker that leaves (reload, stop, scale-down) answers every request its clients sent: raw-socket clients that
/// retry nothing count each request sent and each one that got no response.
/// </summary>
public sealed class DrainTests(ITestOutputHelper output)
{
    [Fact]
    public async Task Keep_alive_clients_lose_no_request_across_reloads_and_a_stop()
    {
        await using var herd = await HerdRun.StartAsync(workers: 2);
        var tally = new Tally();
        using var stop = new CancellationTokenSource();
        // A pause between requests leaves each connection idle most of the time, as a worker starts to leave.
        var clients = Enumerable.Range(0, 8).Select(_ => Task.Run(() => HammerAsync(herd.Uri.Port, keepAlive: true, TimeSpan.FromMilliseconds(1), tally, stop.Token))).ToArray();
        await tally.AnsweredAtLeastAsync(100);
        for (int i = 0; i < 6; i++)
        {
            Assert.Equal(0, (await HerdRun.CliAsync("reload", "--name", herd.Name)).Code);
            await tally.AnsweredAtLeastAsync(tally.Answered + 100);
        }
        int refusedBeforeStop = tally.Refused;
        Assert.Equal(0, (await HerdRun.CliAsync("stop", "--name", herd.Name)).Code);
        await herd.WaitForExitAsync(); // the workers drained, every client's last request answered
        await stop.CancelAsync();
        await Task.WhenAll(clients).WaitAsync(TestCluster.Timeout);
        output.WriteLine($"8 keep-alive clients, 6 reloads and a stop: {tally.Sent} requests sent, {tally.Lost} lost");

        Assert.True(tally.Lost == 0, $"{tally.Lost} of {tally.Sent} requests got no response: {string.Join("; ", tally.Notes.Take(5))}");
        Assert.Equal(0, refusedBeforeStop);
    }

    [Theory]
    [InlineData("rr")]
    [InlineData("none")]
    public async Task Scale_downs_under_connection_close_load_leave_no_request_unanswered(string policy)
    {
        await using var herd = await HerdRun.StartAsync(workers: 2, ("HERD_SCHED_POLICY", policy));
        var tally = new Tally();
        using var stop = new CancellationTokenSource();
        // Each request leaves up to 50 ms after its connect, as over a slow link: a worker that took the connection
        // and then leaves must still read it, not close the connection before its request comes.
        var clients = Enumerable.Range(0, 8).Select(_ => Task.Run(() => HammerAsync(herd.Uri.Port, keepAlive: false, TimeSpan.FromMilliseconds(50), tally, stop.Token))).ToArray();
        await tally.AnsweredAtLeastAsync(50);
        for (int i = 0; i < 3; i++)
        {
            Assert.Equal(0, (await HerdRun.CliAsync("scale", "4", "--name", herd.Name)).Code);
            await tally.AnsweredAtLeastAsync(tally.Answered + 50);
            Assert.Equal(0, (await HerdRun.CliAsync("scale", "2", "--name", herd.Name)).Code);
            await tally.AnsweredAtLeastAsync(tally.Answered + 50);
        }
        await stop.CancelAsync();
        await Task.WhenAll(clients).WaitAsync(TestCluster.Timeout);
        output.WriteLine($"8 Connection: close clients ({policy}), 3 scale-ups and scale-downs: {tally.Sent} requests sent, {tally.Lost} lost");

        Assert.True(tally.Lost == 0, $"{tally.Lost} of {tally.Sent} requests got no response: {string.Join("; ", tally.Notes.Take(5))}");
        Assert.Equal(0, tally.Refused);
    }

    [Fact]
    public async Task An_idle_keep_alive_connection_stays_open_through_the_drain_and_its_next_request_is_answered_with_close()
    {
        // A kill timeout long enough for the polling below: the drain lasts until shortly before it.
        await using var herd = await HerdRun.StartAsync(workers: 1, config: """{ "killTimeout": 10000 }""");
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, herd.Uri.Port)).WaitAsync(TestCluster.Timeout);
        var request = Encoding.ASCII.GetBytes("GET /pid HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        var buffer = new byte[4096];
        var (answered, close, note) = await ExchangeAsync(socket, request, buffer);
        Assert.True(answered && !close, note);
        var old = (await herd.LsAsync()).Single();

        var reload = HerdRun.CliAsync("reload", "--name", herd.Name);
        var clock = Stopwatch.StartNew();
        while ((await herd.LsAsync()).Contains(old)) Assert.True(clock.Elapsed < TestCluster.Timeout, "the old worker never left"); // retired: it drains
        // The connection was idle as the old worker was told to leave. Each request on it is answered; once the drain
        // has begun, with Connection: close, after which the worker closes it.
        do
        {
            (answered, close, note) = await ExchangeAsync(socket, request, buffer);
            Assert.True(answered, note);
        }
        while (!close && clock.Elapsed < TestCluster.Timeout);
        Assert.True(close);
        Assert.Equal(0, await socket.ReceiveAsync(buffer, SocketFlags.None).WaitAsync(TestCluster.Timeout));
        Assert.Equal(0, (await reload.WaitAsync(TestCluster.Timeout)).Code);
    }

    [Fact]
    public async Task A_reload_closes_an_open_websocket_with_going_away()
    {
        await using var herd = await HerdRun.StartAsync(workers: 1);
        using var timeout = new CancellationTokenSource(TestCluster.Timeout);
        using var socket = await OpenWebSocketAsync(herd, timeout.Token);

        var reload = HerdRun.CliAsync("reload", "--name", herd.Name);
        await GoingAwayAsync(socket, timeout.Token);
        Assert.Equal(0, (await reload.WaitAsync(TestCluster.Timeout)).Code);
    }

    [Fact]
    public async Task A_stop_closes_an_open_websocket_with_going_away_once_the_drain_delay_is_over()
    {
        var drainDelay = TimeSpan.FromSeconds(1.5);
        await using var herd = await HerdRun.StartAsync(workers: 1, config: $$"""{ "drainDelay": {{(int)drainDelay.TotalMilliseconds}} }""");
        using var timeout = new CancellationTokenSource(TestCluster.Timeout);
        using var socket = await OpenWebSocketAsync(herd, timeout.Token);

        var clock = Stopwatch.StartNew();
        var stopping = HerdRun.CliAsync("stop", "--name", herd.Name);
        await GoingAwayAsync(socket, timeout.Token);
        Assert.True(clock.Elapsed >= drainDelay, $"closed {clock.Elapsed.TotalSeconds:0.00} s into a drain delay of {drainDelay.TotalSeconds} s");
        Assert.Equal(0, (await stopping.WaitAsync(TestCluster.Timeout)).Code);
        await herd.WaitForExitAsync();
    }

    // A WebSocket to PlainWebApp's /ws, which echoes one message.
    private static async Task<ClientWebSocket> OpenWebSocketAsync(HerdRun herd, CancellationToken cancellationToken)
    {
        var socket = new ClientWebSocket();
        await socket.ConnectAsync(new Uri($"ws://127.0.0.1:{herd.Uri.Port}/ws"), cancellationToken);
        await socket.SendAsync("hello"u8.ToArray(), WebSocketMessageType.Text, endOfMessage: true, cancellationToken);
        Assert.Equal(5, (await socket.ReceiveAsync(new byte[256], cancellationToken)).Count);
        return socket;
    }

    // The worker leaving closes the WebSocket with a handshake, 1001 (going away), which the client completes.
    private static async Task GoingAwayAsync(ClientWebSocket socket, CancellationToken cancellationToken)
    {
        var closing = await socket.ReceiveAsync(new byte[256], cancellationToken);
        Assert.Equal(WebSocketMessageType.Close, closing.MessageType);
        Assert.Equal(WebSocketCloseStatus.EndpointUnavailable, closing.CloseStatus);
        await socket.CloseOutputAsync(WebSocketCloseStatus.NormalClosure, null, cancellationToken);
    }

    /// <summary>
    /// Sends GET /pid until stopped, on one connection while it stays open (keep-alive) or one per request. A request
    /// whose connection closes before its whole response came is lost: nothing retries it.
    /// </summary>
    internal static async Task HammerAsync(int port, bool keepAlive, TimeSpan pause, Tally tally, CancellationToken stop)
    {
        var request = Encoding.ASCII.GetBytes($"GET /pid HTTP/1.1\r\nHost: 127.0.0.1\r\n{(keepAlive ? "" : "Connection: close\r\n")}\r\n");
        var buffer = new byte[4096];
        Socket? socket = null;
        try
        {
            while (!stop.IsCancellationRequested)
            {
                if (socket is null)
                {
                    socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                    try
                    {
                        await socket.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port));
                    }
                    catch (SocketException)
                    {
                        Interlocked.Increment(ref tally.Refused); // never sent: after a stop, nobody listens
                        socket.Dispose();
                        socket = null;
                        await Task.Delay(10, CancellationToken.None);
                        continue;
                    }
                    if (!keepAlive) await Task.Delay(Random.Shared.Next((int)pause.TotalMilliseconds + 1), CancellationToken.None);
                }
                Interlocked.Increment(ref tally.Sent);
                var (answered, close, note) = await ExchangeAsync(socket, request, buffer);
                if (answered) Interlocked.Increment(ref tally.AnsweredCount);
                else
                {
                    Interlocked.Increment(ref tally.Lost);
                    tally.Notes.Enqueue(note);
                }
                if (!answered || close)
                {
                    socket.Dispose();
                    socket = null;
                }
                else
                {
                    await Task.Delay(pause, CancellationToken.None);
                }
            }
        }
        finally
        {
            socket?.Dispose();
        }
    }

    // One request and its response (Content-Length or chunked). Bounded: a response that never comes fails the test.
    private static async Task<(bool Answered, bool Close, string Note)> ExchangeAsync(Socket socket, byte[] request, byte[] buffer)
    {
        using var timeout = new CancellationTokenSource(TestCluster.Timeout);
        int length = 0;
        try
        {
            await socket.SendAsync(request, SocketFlags.None, timeout.Token);
            while (true)
            {
                int read = await socket.ReceiveAsync(buffer.AsMemory(length), SocketFlags.None, timeout.Token);
                if (read == 0) return (false, true, $"closed after {length} bytes of response");
                length += read;
                var text = Encoding.ASCII.GetString(buffer, 0, length);
                int end = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
                if (end < 0) continue;
                var head = text[..end];
                bool close = head.Contains("\r\nConnection: close", StringComparison.OrdinalIgnoreCase);
                bool complete = head.Contains("Transfer-Encoding: chunked", StringComparison.OrdinalIgnoreCase)
                    ? text.EndsWith("\r\n0\r\n\r\n", StringComparison.Ordinal)
                    : head.Split("\r\n").FirstOrDefault(h => h.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase)) is { } header
                        && length - end - 4 >= int.Parse(header["Content-Length:".Length..], System.Globalization.CultureInfo.InvariantCulture);
                if (!complete) continue;
                if (!head.StartsWith("HTTP/1.1 200", StringComparison.Ordinal)) return (false, true, head.Split("\r\n")[0]);
                return (true, close, "");
            }
        }
        catch (SocketException ex)
        {
            return (false, true, $"{ex.SocketErrorCode} after {length} bytes of response");
        }
    }

    internal sealed class Tally
    {
        public int Sent;
        public int AnsweredCount;
        public int Lost;
        public int Refused;
        public readonly System.Collections.Concurrent.ConcurrentQueue<string> Notes = new();

        public int Answered => Volatile.Read(ref AnsweredCount);

        public Task AnsweredAtLeastAsync(int count) => TestCluster.UntilAsync(() => Answered >= count, $"{count} answers ({Answered} so far, {Lost} lost)");
    }
}
