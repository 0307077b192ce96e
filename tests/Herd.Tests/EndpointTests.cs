using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace Herd.Tests;

/// <summary>
/// Under <c>herd run -i 2</c>, every way an app names its endpoints is clustered, and real clients get what they ask
/// for: HTTP/2 over TLS on a certificate made here, a WebSocket echo through it, a Unix socket. One run per app
/// serves several assertions.
/// </summary>
public sealed class EndpointTests
{
    [Fact]
    public async Task An_app_that_knows_nothing_of_Herd_serves_every_endpoint_of_ASPNETCORE_URLS_from_both_workers()
    {
        var certificate = Path.GetTempFileName();
        var unixSocket = Path.Combine(Path.GetTempPath(), $"herd-ep-{Guid.NewGuid():N}.sock");
        using var cert = SelfSigned();
        await File.WriteAllBytesAsync(certificate, cert.Export(X509ContentType.Pfx, "pw"));
        int http = Ports.Free(), https = Ports.Free();
        try
        {
            await using var herd = await CliTests.HerdRun.StartAsync(2, null, _ => ["dotnet", TestCluster.PlainWebAppDll],
                ("ASPNETCORE_URLS", $"http://127.0.0.1:{http};https://127.0.0.1:{https};http://unix:{unixSocket}"),
                ("Kestrel__Certificates__Default__Path", certificate), ("Kestrel__Certificates__Default__Password", "pw"));
            var workers = (await herd.LsAsync()).ToHashSet();

            Assert.Equal(workers, await PidsAsync(() => new SocketsHttpHandler(), new Uri($"http://127.0.0.1:{http}/pid"), HttpVersion.Version11));
            Assert.Equal(workers, await PidsAsync(() => Trusting(cert), new Uri($"https://127.0.0.1:{https}/pid"), HttpVersion.Version20));
            Assert.Equal(workers, await PidsAsync(() => OverUnixSocket(unixSocket), new Uri("http://localhost/pid"), HttpVersion.Version11));

            using var ws = new ClientWebSocket();
            ws.Options.RemoteCertificateValidationCallback = (_, presented, _, _) => presented?.GetCertHashString() == cert.GetCertHashString();
            await ws.ConnectAsync(new Uri($"wss://127.0.0.1:{https}/ws"), CancellationToken.None).WaitAsync(TestCluster.Timeout);
            var hello = Encoding.UTF8.GetBytes("hello over TLS");
            await ws.SendAsync(hello, WebSocketMessageType.Text, endOfMessage: true, CancellationToken.None).WaitAsync(TestCluster.Timeout);
            var buffer = new byte[64];
            var echo = await ws.ReceiveAsync(buffer, CancellationToken.None).WaitAsync(TestCluster.Timeout);
            Assert.Equal(hello, buffer[..echo.Count]);
            await ws.CloseAsync(WebSocketCloseStatus.NormalClosure, null, CancellationToken.None).WaitAsync(TestCluster.Timeout);
        }
        finally
        {
            File.Delete(certificate);
            File.Delete(unixSocket);
        }
    }

    [Fact]
    public async Task An_app_with_UseHerd_serves_its_Kestrel_Endpoints_config_and_ListenAnyIP_from_both_workers()
    {
        int configured = Ports.Free(), inCode = Ports.Free();
        await using var herd = await CliTests.HerdRun.StartAsync(2, null, _ => ["dotnet", TestCluster.TestWebAppDll],
            ("Kestrel__Endpoints__Main__Url", $"http://127.0.0.1:{configured}"), ("HERD_TEST_LISTEN_ANY_IP", inCode.ToString(CultureInfo.InvariantCulture)));
        var workers = (await herd.LsAsync()).ToHashSet();
        Assert.Equal(workers, await PidsAsync(() => new SocketsHttpHandler(), new Uri($"http://127.0.0.1:{configured}/pid"), HttpVersion.Version11));
        Assert.Equal(workers, await PidsAsync(() => new SocketsHttpHandler(), new Uri($"http://127.0.0.1:{inCode}/pid"), HttpVersion.Version11));
    }

    [Fact]
    public async Task Port_0_is_one_port_the_primary_picks_and_both_workers_serve()
    {
        await using var herd = await CliTests.HerdRun.StartAsync(2, null, _ => ["dotnet", TestCluster.PlainWebAppDll, "--urls", "http://127.0.0.1:0"]);
        var workers = (await herd.LsAsync()).ToHashSet();
        var (code, logs) = await CliTests.HerdRun.CliAsync("logs", "--name", herd.Name);
        Assert.Equal(0, code);
        var ports = System.Text.RegularExpressions.Regex.Matches(logs, @"Now listening on: http://127\.0\.0\.1:(\d+)").Select(m => int.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture)).ToList();
        Assert.Equal(2, ports.Count); // each worker says where it listens: the same port, not 0
        int port = Assert.Single(ports.Distinct());
        Assert.NotEqual(0, port);
        Assert.Equal(workers, await PidsAsync(() => new SocketsHttpHandler(), new Uri($"http://127.0.0.1:{port}/pid"), HttpVersion.Version11));
    }

    // Asks on new connections until every worker has answered (round robin may start anywhere), within the timeout.
    private static async Task<HashSet<int>> PidsAsync(Func<SocketsHttpHandler> handler, Uri uri, Version version)
    {
        var pids = new HashSet<int>();
        var clock = Stopwatch.StartNew();
        for (int i = 0; i < 10 || (pids.Count < 2 && clock.Elapsed < TestCluster.Timeout); i++)
        {
            using var client = new HttpClient(handler()) { Timeout = TestCluster.Timeout, DefaultRequestVersion = version, DefaultVersionPolicy = HttpVersionPolicy.RequestVersionExact };
            using var response = await client.GetAsync(uri);
            response.EnsureSuccessStatusCode();
            Assert.Equal(version, response.Version);
            pids.Add(int.Parse(await response.Content.ReadAsStringAsync(), CultureInfo.InvariantCulture));
        }
        return pids;
    }

    // Issue 12 item 7: gRPC (HTTP/2) through Grpc.Net.Client, unary and server streaming, over h2c and over TLS, for an
    // app that knows nothing of Herd. A channel is one connection: new channels land on both workers.
    [Fact]
    public async Task A_grpc_app_serves_unary_and_streaming_calls_from_both_workers_over_h2c_and_tls()
    {
        var certificate = Path.GetTempFileName();
        using var cert = SelfSigned();
        await File.WriteAllBytesAsync(certificate, cert.Export(X509ContentType.Pfx, "pw"));
        int h2c = Ports.Free(), tls = Ports.Free();
        try
        {
            await using var herd = await CliTests.HerdRun.StartAsync(2, null, _ => ["dotnet", TestCluster.GrpcAppDll],
                ("Kestrel__Endpoints__Plain__Url", $"http://127.0.0.1:{h2c}"), ("Kestrel__Endpoints__Plain__Protocols", "Http2"),
                ("Kestrel__Endpoints__Secure__Url", $"https://127.0.0.1:{tls}"),
                ("Kestrel__Certificates__Default__Path", certificate), ("Kestrel__Certificates__Default__Password", "pw"));
            var workers = (await herd.LsAsync()).ToHashSet();
            foreach (var (address, handler) in new (string, Func<SocketsHttpHandler>)[]
            {
                ($"http://127.0.0.1:{h2c}", () => new SocketsHttpHandler()),
                ($"https://127.0.0.1:{tls}", () => Trusting(cert)),
            })
            {
                var pids = new HashSet<int>();
                var clock = Stopwatch.StartNew();
                while (!pids.SetEquals(workers) && clock.Elapsed < TestCluster.Timeout)
                {
                    using var channel = Grpc.Net.Client.GrpcChannel.ForAddress(address, new Grpc.Net.Client.GrpcChannelOptions { HttpHandler = handler() });
                    var calls = channel.CreateCallInvoker();
                    var deadline = new Grpc.Core.CallOptions(deadline: DateTime.UtcNow + TestCluster.Timeout);
                    int pid = int.Parse(await calls.AsyncUnaryCall(Herd.GrpcApp.PidService.UnaryMethod, null, deadline, "pid"), CultureInfo.InvariantCulture);
                    using var stream = calls.AsyncServerStreamingCall(Herd.GrpcApp.PidService.CountMethod, null, deadline, "3");
                    var streamed = new List<string>();
                    while (await stream.ResponseStream.MoveNext(CancellationToken.None)) streamed.Add(stream.ResponseStream.Current);
                    Assert.Equal(Enumerable.Repeat(pid.ToString(CultureInfo.InvariantCulture), 3), streamed); // one connection, one worker
                    pids.Add(pid);
                }
                Assert.Equal(workers, pids);
            }
        }
        finally
        {
            File.Delete(certificate);
        }
    }

    private static SocketsHttpHandler Trusting(X509Certificate2 cert) => new()
    {
        SslOptions = new SslClientAuthenticationOptions { RemoteCertificateValidationCallback = (_, presented, _, _) => presented?.GetCertHashString() == cert.GetCertHashString() },
    };

    private static SocketsHttpHandler OverUnixSocket(string path) => new()
    {
        ConnectCallback = async (_, cancellationToken) =>
        {
            var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(path), cancellationToken);
            return new NetworkStream(socket, ownsSocket: true);
        },
    };

    private static X509Certificate2 SelfSigned()
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest("CN=localhost", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Loopback);
        names.AddDnsName("localhost");
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], critical: false));
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
    }
}
