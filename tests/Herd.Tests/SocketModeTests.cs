using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;

namespace Herd.Tests;

/// <summary>
/// <c>herd run --socket</c>: servers in other languages, given the listening socket as fd 3 (sd_listen_fds), are
/// clustered, reloaded and restarted like a .NET app. Each answers with its pid; each leaves on SIGTERM.
/// </summary>
public sealed class SocketModeTests
{
    private const string Node = """
        const server = require('http').createServer((req, res) => res.end(String(process.pid)));
        if (process.env.LISTEN_PID !== String(process.pid) || process.env.LISTEN_FDS !== '1') process.exit(3);
        server.listen({ fd: 3 });
        process.on('SIGTERM', () => server.close(() => process.exit(0)));
        """;

    private const string Python = """
        import os, signal, socket, threading
        from http.server import HTTPServer, BaseHTTPRequestHandler
        if os.environ.get("LISTEN_PID") != str(os.getpid()) or os.environ.get("LISTEN_FDS") != "1": os._exit(3)
        class Pid(BaseHTTPRequestHandler):
            def do_GET(self):
                body = str(os.getpid()).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            def log_message(self, *args): pass
        server = HTTPServer(("", 0), Pid, bind_and_activate=False)
        server.socket = socket.socket(fileno=3)
        signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
        server.serve_forever()
        """;

    [Theory]
    [InlineData("node", "-e", Node, "console.log(process.execPath)", true)]
    // Python's http.server drops about 1 in 200 of HttpClient's requests (ResponseEnded) under this load even when
    // nothing is reloaded (measured: 66 of 14,660 with no reload; curl saw none of 1,200 through a reload): its
    // reload is checked for completing and replacing every worker, not for a clean record.
    [InlineData("python3", "-c", Python, "import sys; print(sys.executable)", false)]
    public async Task Any_language_server_is_clustered_reloaded_and_restarted(string program, string flag, string script, string whereAmI, bool failsNoRequest)
    {
        if (!OnPath(program)) return; // CI's machine has both; a machine without one has nothing to test here
        // The interpreter itself, not a version manager's shim (pyenv's takes seconds of bash to get there on a busy machine).
        program = (await TestProcess.RunAsync([program, flag, whereAmI])).Output.Trim();
        int port = Ports.Free();
        await using var herd = await CliTests.HerdRun.StartAsync(2, $$"""{ "sockets": ["tcp://127.0.0.1:{{port}}"] }""", _ => [program, flag, script]);
        using var http = new HttpClient { Timeout = TestCluster.Timeout };
        http.DefaultRequestHeaders.ConnectionClose = true;
        var uri = new Uri($"http://127.0.0.1:{port}/");
        async Task<int> PidAsync() => int.Parse(await http.GetStringAsync(uri), CultureInfo.InvariantCulture);

        // Both workers take connections from the one socket.
        var workers = (await herd.LsAsync()).ToHashSet();
        Assert.Equal(2, workers.Count);
        var serving = new HashSet<int>();
        var clock = Stopwatch.StartNew();
        while (serving.Count < 2 && clock.Elapsed < TestCluster.Timeout) serving.Add(await PidAsync());
        Assert.Equal(workers, serving);

        // A reload under load fails no request.
        var load = new RequestLoad(4, PidAsync);
        var (code, output) = await CliTests.HerdRun.CliAsync("reload", "--name", herd.Name);
        var reloaded = (await herd.LsAsync()).ToHashSet();
        await load.DisposeAsync();
        Assert.True(code == 0, output);
        Assert.True(!failsNoRequest || load.Failures.IsEmpty, $"{load.Failures.Count} of {load.Sent} requests failed: {load.Failures.FirstOrDefault()?.Message}\n{string.Join('\n', herd.Errors)}");
        Assert.True(load.Sent > 0);
        Assert.Equal(2, reloaded.Count);
        Assert.Empty(workers.Intersect(reloaded));

        // A worker killed is replaced, and the new one serves.
        int victim = reloaded.First();
        Native.Fd.Kill(victim, (int)UnixSignal.SIGKILL);
        await herd.WaitForReplacementAsync(victim, workers: 2);
        var replaced = (await herd.LsAsync()).ToHashSet();
        serving.Clear();
        clock.Restart();
        while (!serving.SetEquals(replaced) && clock.Elapsed < TestCluster.Timeout) serving.Add(await PidAsync());
        Assert.Equal(replaced, serving);
    }

    private static bool OnPath(string program) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':').Any(folder => folder.Length > 0 && File.Exists(Path.Combine(folder, program)));
}
