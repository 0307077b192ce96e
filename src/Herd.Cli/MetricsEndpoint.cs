using System.Net;
using System.Net.Sockets;
using System.Text;
using Herd.Metrics;

namespace Herd.Cli;

/// <summary>
/// <c>herd run --metrics</c>: one Prometheus scrape for the whole cluster, <c>GET /metrics</c> on a small HTTP/1.1
/// responder (herd has no ASP.NET Core, and stays small): Herd's own meters from the primary, and every live worker's
/// meters, asked for over the channel at each scrape and labelled with the worker's id and slot. A worker that does
/// not answer within <see cref="WorkerWait"/> is left out of that scrape, and <c>herd_scrape_workers_missing</c> counts it.
/// </summary>
internal sealed class MetricsEndpoint : IAsyncDisposable
{
    private static readonly TimeSpan WorkerWait = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan RequestWait = TimeSpan.FromSeconds(10); // a whole exchange, the workers' wait included
    private static readonly TimeSpan RetryEvery = TimeSpan.FromSeconds(1);
    private const int MaxRequest = 8 * 1024;
    private const int MaxExchanges = 8;

    private readonly ClusterPrimary _primary;
    private readonly IPEndPoint _endPoint;
    private readonly MeterCollector _own = new(static meter => meter.Name == HerdMetrics.MeterName);
    private readonly CancellationTokenSource _stop = new();
    private readonly SemaphoreSlim _exchanges = new(MaxExchanges);
    private readonly Task _serving;

    private MetricsEndpoint(ClusterPrimary primary, IPEndPoint endPoint)
    {
        _primary = primary;
        _endPoint = endPoint;
        _serving = ServeAsync();
    }

    /// <summary>Serves the address in HERD_METRICS, if set (by <c>--metrics</c> or herd.json's <c>metrics</c>); else null.</summary>
    public static MetricsEndpoint? Start(ClusterPrimary primary) =>
        Environment.GetEnvironmentVariable(MeterCollector.Variable) is { Length: > 0 } address ? new MetricsEndpoint(primary, Parse(address)) : null;

    /// <summary><c>HOST:PORT</c> or <c>http://HOST:PORT[/metrics]</c>; HOST an address, localhost, or * for every interface.</summary>
    public static IPEndPoint Parse(string address)
    {
        var text = address.Contains("://", StringComparison.Ordinal) ? address : "http://" + address.Replace("*", "0.0.0.0", StringComparison.Ordinal);
        if (!Uri.TryCreate(text, UriKind.Absolute, out var uri) || uri.Scheme != Uri.UriSchemeHttp
            || uri.AbsolutePath is not ("/" or "/metrics") || uri.Query.Length > 0)
            throw new ConfigException($"metrics must be HOST:PORT or http://HOST:PORT, not '{address}'.");
        var host = uri.Host.Trim('[', ']');
        if (IPAddress.TryParse(host, out var ip)) return new IPEndPoint(ip, uri.Port);
        if (host == "localhost") return new IPEndPoint(IPAddress.Loopback, uri.Port);
        try
        {
            return new IPEndPoint(Dns.GetHostAddresses(host)[0], uri.Port);
        }
        catch (Exception ex) when (ex is SocketException or IndexOutOfRangeException)
        {
            throw new ConfigException($"metrics: cannot resolve '{host}'.");
        }
    }

    /// <summary>Herd's meters and every worker's, as one exposition.</summary>
    public async Task<string> ScrapeAsync(CancellationToken cancellationToken)
    {
        var workers = _primary.Workers.Values.Where(w => !w.Channelless).ToArray();
        var answers = await _primary.MetricsPoll.AskAsync(workers, WorkerWait, cancellationToken);
        var missing = new MetricFamily
        {
            Name = "herd.scrape.workers.missing", Unit = "{worker}", Kind = MetricKind.Gauge,
            Description = "Live workers that did not answer this scrape in time: their series are missing from it.",
            Points = [new MetricPoint { Value = workers.Length - answers.Length }],
        };
        return PrometheusText.Render([
            ([], [.. _own.Collect(), missing]),
            .. answers.Select(a => (Labels(a.Worker), (IEnumerable<MetricFamily>)a.Families)),
        ]);
    }

    private static KeyValuePair<string, string>[] Labels(Worker worker) =>
        [new("worker", worker.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)), new("slot", worker.Slot.ToString(System.Globalization.CultureInfo.InvariantCulture))];

    private async Task ServeAsync()
    {
        using var listener = await ListenAsync();
        if (listener is null) return;
        while (!_stop.IsCancellationRequested)
        {
            Socket connection;
            try
            {
                connection = await listener.AcceptAsync(_stop.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            catch (SocketException)
            {
                continue; // that client's trouble (reset before accept), not the listener's
            }
            if (!_exchanges.Wait(0))
            {
                connection.Dispose(); // enough scrapes under way: each asks every worker
                continue;
            }
            _ = AnswerAsync(connection);
        }
    }

    // The port can be another's for a while: herd upgrade's old primary serves it until it leaves.
    private async Task<Socket?> ListenAsync()
    {
        bool told = false;
        while (true)
        {
            var socket = new Socket(_endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
            try
            {
                socket.Bind(_endPoint);
                socket.Listen(64);
                return socket;
            }
            catch (SocketException ex)
            {
                socket.Dispose();
                if (!told) Console.Error.WriteLine($"herd: metrics: cannot listen on {_endPoint}: {ex.Message}; trying again every second");
                told = true;
            }
            try
            {
                await Task.Delay(RetryEvery, _stop.Token);
            }
            catch (OperationCanceledException)
            {
                return null;
            }
        }
    }

    private async Task AnswerAsync(Socket connection)
    {
        try
        {
            using var bounded = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
            bounded.CancelAfter(RequestWait);
            var (method, path) = await ReadRequestAsync(connection, bounded.Token);
            var (status, body) = (method, path) switch
            {
                (null, _) => ("400 Bad Request", "bad request\n"),
                ("GET", "/metrics") => ("200 OK", await ScrapeAsync(bounded.Token)),
                ("GET", _) => ("404 Not Found", "not found: metrics are at /metrics\n"),
                _ => ("405 Method Not Allowed", "only GET\n"),
            };
            var content = Encoding.UTF8.GetBytes(body);
            var head = Encoding.ASCII.GetBytes(
                $"HTTP/1.1 {status}\r\nContent-Type: {(status[0] == '2' ? PrometheusText.ContentType : "text/plain; charset=utf-8")}\r\nContent-Length: {content.Length}\r\nConnection: close\r\n\r\n");
            await connection.SendAsync(head, bounded.Token);
            await connection.SendAsync(content, bounded.Token);
            connection.Shutdown(SocketShutdown.Send);
        }
        catch (Exception ex) when (ex is SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // the client left, or took too long
        }
        finally
        {
            connection.Dispose();
            _exchanges.Release();
        }
    }

    // The request line of a request whose head fits MaxRequest; its method and path, or nulls for anything else.
    private static async Task<(string? Method, string? Path)> ReadRequestAsync(Socket connection, CancellationToken cancellationToken)
    {
        var buffer = new byte[MaxRequest];
        int length = 0;
        while (length < buffer.Length)
        {
            int read = await connection.ReceiveAsync(buffer.AsMemory(length), cancellationToken);
            if (read == 0) return (null, null);
            length += read;
            if (buffer.AsSpan(0, length).IndexOf("\r\n\r\n"u8) < 0) continue;
            var line = Encoding.ASCII.GetString(buffer, 0, buffer.AsSpan(0, length).IndexOf("\r\n"u8)).Split(' ');
            if (line.Length != 3 || !line[2].StartsWith("HTTP/1.", StringComparison.Ordinal)) return (null, null);
            return (line[0], line[1].Split('?')[0]);
        }
        return (null, null);
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        await _serving;
        _own.Dispose();
        _stop.Dispose();
    }
}
