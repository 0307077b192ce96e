using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Herd.Tests;

/// <summary>
/// Continuous load on the test worker's echo server, a new connection per request: connect, read the serving
/// worker's pid, echo a line, close. Each outcome is counted, so a test can tell a connection that a dying worker
/// had taken from one that was lost.
/// </summary>
internal sealed class EchoLoad
{
    private readonly IPEndPoint _endPoint;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task[] _clients;
    private long _ok;
    private long _refused;
    private long _failedBeforePid;
    private long _stuck;

    private EchoLoad(IPEndPoint endPoint, int concurrency, long limit)
    {
        _endPoint = endPoint;
        Limit = limit;
        _clients = [.. Enumerable.Range(0, concurrency).Select(_ => Task.Run(ClientAsync))];
    }

    /// <summary>Starts <paramref name="concurrency"/> clients that run until stopped, or until at least <paramref name="limit"/> requests succeeded.</summary>
    public static EchoLoad Start(int port, int concurrency = 8, long limit = long.MaxValue) => new(new IPEndPoint(IPAddress.Loopback, port), concurrency, limit);

    public long Limit { get; }

    public long Ok => Interlocked.Read(ref _ok);

    /// <summary>Connections the kernel refused: the port was not listening.</summary>
    public long Refused => Interlocked.Read(ref _refused);

    /// <summary>Connections that ended before any worker said who it was.</summary>
    public long FailedBeforePid => Interlocked.Read(ref _failedBeforePid);

    /// <summary>Connections that ended after a worker answered, by that worker's pid.</summary>
    public ConcurrentDictionary<int, int> FailedAfterPid { get; } = new();

    /// <summary>Requests that neither finished nor failed within the test timeout: the worst kind of loss.</summary>
    public long Stuck => Interlocked.Read(ref _stuck);

    public ConcurrentDictionary<int, int> ServedBy { get; } = new();

    /// <summary>Stuck requests by the pid that had answered them (0: none had).</summary>
    public ConcurrentDictionary<int, int> StuckOn { get; } = new();

    public long Failed => Refused + FailedBeforePid + FailedAfterPid.Values.Sum() + Stuck;

    /// <summary>Stops the clients and waits for the requests under way.</summary>
    public async Task StopAsync()
    {
        await _stop.CancelAsync();
        await Task.WhenAll(_clients).WaitAsync(TestCluster.Timeout + TestCluster.Timeout);
        _stop.Dispose();
    }

    /// <summary>Completes once every client has finished (a limited load).</summary>
    public Task Completion => Task.WhenAll(_clients);

    public override string ToString() =>
        $"{Ok} ok, {Refused} refused, {FailedBeforePid} failed before the pid, {FailedAfterPid.Values.Sum()} failed after it, {Stuck} stuck";

    private async Task ClientAsync()
    {
        var buffer = new byte[64];
        while (!_stop.IsCancellationRequested && Interlocked.Read(ref _ok) < Limit)
        {
            int pid = 0;
            using var timeout = new CancellationTokenSource(TestCluster.Timeout);
            using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                await socket.ConnectAsync(_endPoint, timeout.Token);
                pid = await ReadLineAsync(socket, buffer, timeout.Token) is { } line ? int.Parse(line, System.Globalization.CultureInfo.InvariantCulture) : 0;
                if (pid == 0)
                {
                    Interlocked.Increment(ref _failedBeforePid);
                    continue;
                }
                await socket.SendAsync("ping\n"u8.ToArray(), timeout.Token);
                if (await ReadLineAsync(socket, buffer, timeout.Token) != "ping") throw new SocketException((int)SocketError.ConnectionReset);
                Interlocked.Increment(ref _ok);
                ServedBy.AddOrUpdate(pid, 1, (_, n) => n + 1);
            }
            catch (SocketException ex) when (ex.SocketErrorCode == SocketError.ConnectionRefused)
            {
                Interlocked.Increment(ref _refused);
            }
            catch (SocketException)
            {
                Count(pid);
            }
            catch (OperationCanceledException)
            {
                Interlocked.Increment(ref _stuck);
                StuckOn.AddOrUpdate(pid, 1, (_, n) => n + 1);
            }
        }
    }

    private void Count(int pid)
    {
        if (pid == 0) Interlocked.Increment(ref _failedBeforePid);
        else FailedAfterPid.AddOrUpdate(pid, 1, (_, n) => n + 1);
    }

    // One short line; null at end of stream. Lines here are a few bytes and come in one segment on loopback.
    private static async Task<string?> ReadLineAsync(Socket socket, byte[] buffer, CancellationToken cancellationToken)
    {
        int length = 0;
        while (true)
        {
            int n = await socket.ReceiveAsync(buffer.AsMemory(length), cancellationToken);
            if (n == 0) return null;
            length += n;
            int newline = Array.IndexOf(buffer, (byte)'\n', 0, length);
            if (newline >= 0) return Encoding.ASCII.GetString(buffer, 0, newline);
            if (length == buffer.Length) throw new InvalidDataException("line too long");
        }
    }
}
