using System.Net.WebSockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace Herd.Tests;

/// <summary>Skips a test when Debian's chromium is not installed (.ci/run installs it).</summary>
public sealed class ChromiumFactAttribute : FactAttribute
{
    public ChromiumFactAttribute()
    {
        if (!File.Exists(Chromium.Path)) Skip = $"{Chromium.Path} is not installed (apt-get install chromium; .ci/run does)";
    }
}

/// <summary>
/// Headless Chromium driven over the DevTools protocol, from one browser-level WebSocket: each page in a browser context of
/// its own, so that pages share no connection (each context has its own network stack), as two browsers would not.
/// </summary>
internal sealed class Chromium : IAsyncDisposable
{
    public const string Path = "/usr/bin/chromium";

    private readonly TestProcess _process;
    private readonly string _profile;
    private readonly ClientWebSocket _socket = new();
    private int _lastId;

    private Chromium(TestProcess process, string profile)
    {
        _process = process;
        _profile = profile;
    }

    public static async Task<Chromium> StartAsync()
    {
        var profile = Directory.CreateTempSubdirectory("herd-chromium-").FullName;
        var process = TestProcess.Start([Path, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", $"--user-data-dir={profile}", "--remote-debugging-port=0", "about:blank"]);
        var browser = new Chromium(process, profile);
        try
        {
            const string Prefix = "DevTools listening on ";
            var listening = await process.Errors.WaitForAsync(line => line.StartsWith(Prefix, StringComparison.Ordinal));
            await browser._socket.ConnectAsync(new Uri(listening[Prefix.Length..]), CancellationToken.None).WaitAsync(TestCluster.Timeout);
            return browser;
        }
        catch
        {
            await browser.DisposeAsync();
            throw;
        }
    }

    /// <summary>Opens <paramref name="url"/> in a new browser context; returns the session that drives the page.</summary>
    public async Task<string> OpenAsync(Uri url)
    {
        var context = (await SendAsync("Target.createBrowserContext", new JsonObject()))["browserContextId"]!.GetValue<string>();
        var target = (await SendAsync("Target.createTarget", new JsonObject { ["url"] = "about:blank", ["browserContextId"] = context }))["targetId"]!.GetValue<string>();
        var session = (await SendAsync("Target.attachToTarget", new JsonObject { ["targetId"] = target, ["flatten"] = true }))["sessionId"]!.GetValue<string>();
        await SendAsync("Page.navigate", new JsonObject { ["url"] = url.ToString() }, session); // answers once the page's document is the new one
        return session;
    }

    /// <summary>Waits (within the page) until <paramref name="global"/> is defined, then returns its value awaited.</summary>
    public Task<JsonNode?> WhenDefinedAsync(string session, string global) =>
        EvaluateAsync(session, $"new Promise(resolve => {{ const check = () => window.{global} !== undefined ? resolve(window.{global}) : setTimeout(check, 10); check(); }})");

    /// <summary>Evaluates <paramref name="expression"/> in the page, awaiting a promise, and returns its value as JSON.</summary>
    public async Task<JsonNode?> EvaluateAsync(string session, string expression)
    {
        var result = await SendAsync("Runtime.evaluate", new JsonObject { ["expression"] = expression, ["awaitPromise"] = true, ["returnByValue"] = true }, session);
        if (result["exceptionDetails"] is { } exception) throw new InvalidOperationException($"{expression}: {exception.ToJsonString()}");
        return result["result"]?["value"];
    }

    // One command at a time: replies are read until this command's, events in between are let go.
    private async Task<JsonNode> SendAsync(string method, JsonObject parameters, string? session = null)
    {
        int id = ++_lastId;
        var command = new JsonObject { ["id"] = id, ["method"] = method, ["params"] = parameters };
        if (session is not null) command["sessionId"] = session;
        using var deadline = new CancellationTokenSource(TestCluster.Timeout);
        await _socket.SendAsync(Encoding.UTF8.GetBytes(command.ToJsonString()), WebSocketMessageType.Text, true, deadline.Token);
        var buffer = new byte[64 * 1024];
        while (true)
        {
            using var message = new MemoryStream();
            WebSocketReceiveResult received;
            do
            {
                received = await _socket.ReceiveAsync(buffer, deadline.Token);
                if (received.MessageType == WebSocketMessageType.Close) throw new InvalidOperationException("Chromium closed its DevTools connection.");
                message.Write(buffer, 0, received.Count);
            }
            while (!received.EndOfMessage);
            var reply = JsonNode.Parse(message.ToArray())!;
            if (reply["id"]?.GetValue<int>() != id) continue;
            if (reply["error"] is { } error) throw new InvalidOperationException($"{method}: {error.ToJsonString()}");
            return reply["result"]!;
        }
    }

    public async ValueTask DisposeAsync()
    {
        _socket.Dispose();
        await _process.DisposeAsync();
        Directory.Delete(_profile, recursive: true);
    }
}
