using System.Net;
using System.Net.Http;
using System.Net.Sockets;
using System.Net.WebSockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.SignalR.Client;

namespace Herd.Tests;

/// <summary>SignalR's .NET client against a herd run, and the certificate an https test serves.</summary>
internal static class SignalRClients
{
    /// <summary>
    /// A client of <paramref name="hub"/> with SignalR's defaults (negotiate, then the given transport, or the best one).
    /// Over https it trusts <paramref name="certificate"/> only, and connects from 127.0.0.<paramref name="source"/>, so that
    /// clients differ by source address, the only thing a primary can route TLS by.
    /// </summary>
    public static HubConnection Create(Uri hub, HttpTransportType? transport, X509Certificate2? certificate = null, int source = 1, bool reconnect = false, bool gzip = false)
    {
        var builder = new HubConnectionBuilder();
        if (reconnect) builder.WithAutomaticReconnect([TimeSpan.Zero, TimeSpan.FromMilliseconds(200), TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(2)]);
        if (certificate is null)
        {
            builder.WithUrl(hub, transport ?? HttpTransports.All, options =>
            {
                if (gzip) options.HttpMessageHandlerFactory = handler =>
                {
                    ((HttpClientHandler)handler).AutomaticDecompression = DecompressionMethods.GZip; // asks for gzip, as browsers do
                    return handler;
                };
            });
        }
        else
        {
            var from = new IPAddress([127, 0, 0, (byte)source]);
            builder.WithUrl(hub, transport ?? HttpTransports.All, options =>
            {
                options.HttpMessageHandlerFactory = _ => Handler(from, certificate);
                options.WebSocketFactory = async (context, cancellationToken) =>
                {
                    var socket = new ClientWebSocket();
                    try
                    {
                        using var invoker = new HttpMessageInvoker(Handler(from, certificate));
                        await socket.ConnectAsync(context.Uri, invoker, cancellationToken);
                        return socket;
                    }
                    catch
                    {
                        socket.Dispose();
                        throw;
                    }
                };
            });
        }
        return builder.Build();
    }

    private static SocketsHttpHandler Handler(IPAddress from, X509Certificate2 certificate) => new()
    {
        ConnectCallback = ConnectFrom(from),
        SslOptions = { RemoteCertificateValidationCallback = (_, presented, _, _) => presented?.GetCertHashString() == certificate.GetCertHashString() },
    };

    /// <summary>Connects from <paramref name="from"/> (any 127.0.0.0/8 address is this machine's): what a handler's ConnectCallback does.</summary>
    public static Func<SocketsHttpConnectionContext, CancellationToken, ValueTask<Stream>> ConnectFrom(IPAddress from) => async (context, cancellationToken) =>
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            socket.Bind(new IPEndPoint(from, 0));
            await socket.ConnectAsync(context.DnsEndPoint, cancellationToken);
            return new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    };

    /// <summary>A self-signed certificate for 127.0.0.1, saved as a PFX Kestrel reads (Kestrel__Certificates__Default__Path).</summary>
    public static (X509Certificate2 Certificate, string Path) CreateCertificate()
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest("CN=127.0.0.1", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var names = new SubjectAlternativeNameBuilder();
        names.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(names.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], critical: false));
        using var created = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(1));
        var path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), $"herd-test-{Guid.NewGuid():N}.pfx");
        File.WriteAllBytes(path, created.Export(X509ContentType.Pfx));
        return (X509CertificateLoader.LoadCertificate(created.Export(X509ContentType.Cert)), path);
    }
}
