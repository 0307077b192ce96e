using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace Herd.Tests;

/// <summary>The herd tool end to end, against samples/PlainWebApp, which knows nothing of Herd.</summary>
public sealed class CliTests
{
    [Fact]
    public async Task Run_clusters_an_unmodified_app_and_ls_lists_its_workers()
    {
        await using var herd = await HerdRun.StartAsync(workers: 2);
        var pids = await herd.PidsServingAsync(20);
        Assert.Equal(2, pids.Count);

        var (code, output) = await HerdRun.CliAsync("ls", "--json", "--name", herd.Name);
        Assert.Equal(0, code);
        var listed = JsonDocument.Parse(output).RootElement.EnumerateArray().ToList();
        Assert.Equal(pids.Order(), listed.Select(w => w.GetProperty("pid").GetInt32()).Order());
        Assert.All(listed, w => Assert.Equal("listening", w.GetProperty("state").GetString()));
        Assert.All(listed, w => Assert.True(w.GetProperty("id").GetInt32() > 0));
        Assert.Equal([0, 1], listed.Select(w => w.GetProperty("slot").GetInt32()).Order());
    }

    [Fact]
    public async Task Reload_under_load_fails_no_request_and_replaces_every_pid()
    {
        await using var herd = await HerdRun.StartAsync(workers: 2);
        var before = await herd.PidsServingAsync(20);
        await using var load = new RequestLoad(4, herd.GetPidAsync);

        var (code, _) = await HerdRun.CliAsync("reload", "--name", herd.Name);
        var after = (await herd.LsAsync()).ToHashSet();
        // the old workers drain; then only the new ones serve
        await TestCluster.UntilAsync(async () => (await herd.PidsServingAsync(10)).IsSubsetOf(after), "only the new workers serving");
        await load.StopAsync();

        Assert.Equal(0, code);
        Assert.Empty(load.Failures);
        Assert.True(load.Sent > 0);
        Assert.Equal(2, after.Count);
        Assert.Empty(before.Intersect(after));
    }

    [Fact]
    public async Task Scale_to_three_then_to_one()
    {
        await using var herd = await HerdRun.StartAsync(workers: 1);
        Assert.Equal(0, (await HerdRun.CliAsync("scale", "3", "--name", herd.Name)).Code);
        Assert.Equal(3, (await herd.LsAsync()).Count);
        Assert.Equal(0, (await HerdRun.CliAsync("scale", "-2", "--name", herd.Name)).Code);
        Assert.Single(await herd.LsAsync());
        Assert.Equal(2, (await HerdRun.CliAsync("scale", "x3", "--name", herd.Name)).Code);
    }

    // The whole line: a problem found by the options' own check is named by its herd.json key, not the option's name.
    [Theory]
    [InlineData("""{ "instances": 2, "killTimeut": 100 }""", "'killTimeut' is not a setting herd knows.")]
    [InlineData("""{ "workers": 2 }""", "'workers' is not a setting herd knows.")]
    [InlineData("""{ "killTimeout": "soon" }""", "'killTimeout' has a value of the wrong kind.")]
    [InlineData("""{ "killTimeout": -5 }""", "herd: killTimeout: KillTimeout cannot be negative.")]
    [InlineData("""{ "instances": "many" }""", "herd: instances must be a positive number or max, not 'many'.")]
    [InlineData("""{ "instances": 3, "maxInstances": 2 }""", "herd: instances: Workers cannot exceed MaxWorkers (2).")]
    [InlineData("""{ "maxInstances": 0 }""", "herd: maxInstances: MaxWorkers must be at least 1.")]
    [InlineData("""{ "maxMemoryMb": -1 }""", "herd: maxMemoryMb cannot be negative.")]
    [InlineData("""{ "reloadBatchSize": 0, /* herd.json may have comments */ }""", "herd: reloadBatchSize: ReloadBatchSize must be at least 1.")]
    public async Task A_bad_config_file_is_an_error_that_names_the_key(string json, string error)
    {
        var file = Path.GetTempFileName();
        try
        {
            await File.WriteAllTextAsync(file, json);
            var (code, output) = await HerdRun.CliAsync("run", "--config", file, "--", "dotnet", TestCluster.PlainWebAppDll);
            Assert.Equal(2, code);
            Assert.EndsWith(error, output.TrimEnd(), StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(file);
        }
    }

    [Fact]
    public async Task Systemd_hears_ready_reloading_and_stopping()
    {
        var folder = Directory.CreateTempSubdirectory("herd-notify-");
        try
        {
            var path = Path.Combine(folder.FullName, "notify");
            using var systemd = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Dgram, System.Net.Sockets.ProtocolType.Unspecified);
            systemd.Bind(new System.Net.Sockets.UnixDomainSocketEndPoint(path));
            var buffer = new byte[512];
            HerdRun? herd = null;
            async Task<string> NextAsync()
            {
                try
                {
                    return System.Text.Encoding.UTF8.GetString(buffer, 0, await systemd.ReceiveAsync(buffer).WaitAsync(TestCluster.Timeout));
                }
                catch (TimeoutException)
                {
                    throw new TimeoutException($"systemd heard nothing more; herd said:{Environment.NewLine}{string.Join(Environment.NewLine, herd?.Errors ?? [])}");
                }
            }

            await using (herd = await HerdRun.StartAsync(workers: 1, ("NOTIFY_SOCKET", path)))
            {
                Assert.StartsWith("READY=1\nSTATUS=", await NextAsync(), StringComparison.Ordinal);
                Assert.True(Native.Fd.Kill(herd.Pid, (int)UnixSignal.SIGHUP));
                Assert.StartsWith("RELOADING=1\nMONOTONIC_USEC=", await NextAsync(), StringComparison.Ordinal);
                Assert.StartsWith("READY=1", await NextAsync(), StringComparison.Ordinal);
            }
            Assert.Equal("STOPPING=1\nSTATUS=stopping", await NextAsync());
        }
        finally
        {
            folder.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task Logs_merge_the_workers_output_prefixed_by_id()
    {
        await using var herd = await HerdRun.StartAsync(workers: 2);
        static bool Listening(string[] lines, int id) =>
            lines.Any(line => line.StartsWith($"[{id}] ", StringComparison.Ordinal) && line.Contains("Now listening on", StringComparison.Ordinal));
        string[] lines = [];
        await TestCluster.UntilAsync(async () =>
        {
            var (code, output) = await HerdRun.CliAsync("logs", "--name", herd.Name);
            Assert.Equal(0, code);
            lines = output.Split('\n'); // the workers' output reaches the primary through pipes: it may trail their readiness
            return Listening(lines, 1) && Listening(lines, 2);
        }, "both workers' first lines in herd logs");
        Assert.Contains(lines, line => line.StartsWith("[1] ", StringComparison.Ordinal) && line.Contains("Now listening on", StringComparison.Ordinal));
        Assert.Contains(lines, line => line.StartsWith("[2] ", StringComparison.Ordinal) && line.Contains("Now listening on", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Under_systemd_socket_activation_the_primary_serves_the_socket_it_was_given()
    {
        if (!File.Exists("/usr/bin/systemd-socket-activate")) return; // Debian's systemd package has it; CI's machine does
        int port = Ports.Free();
        var name = "test-" + Guid.NewGuid().ToString("N")[..8];
        await using var activator = TestProcess.Start(["systemd-socket-activate", "-l", $"127.0.0.1:{port}", "dotnet", TestCluster.HerdCliDll, "run", "-i", "2",
            "--name", name, "--", "dotnet", TestCluster.PlainWebAppDll, "--urls", $"http://127.0.0.1:{port}"], new Dictionary<string, string?> { ["XDG_RUNTIME_DIR"] = null });
        using var http = new HttpClient { Timeout = TestCluster.Timeout };
        http.DefaultRequestHeaders.ConnectionClose = true;
        var uri = new Uri($"http://127.0.0.1:{port}/pid");
        // The first request starts the service (once the activator listens); had the primary bound the port itself, it
        // would have failed: the activator holds it.
        var pids = new HashSet<string> { await KestrelTests.GetWhenUpAsync(http, uri, () => "systemd-socket-activate never listened") };
        // The first worker ready serves alone until the second is: round robin hands nothing to a worker before.
        await TestCluster.UntilAsync(async () =>
        {
            pids.Add(await http.GetStringAsync(uri));
            return pids.Count == 2;
        }, "both workers serving");
        Assert.Equal(2, pids.Count);
        Assert.Equal(0, (await HerdRun.CliAsync("stop", "--name", name)).Code);
        Assert.Equal(0, await activator.WaitForExitAsync());
        Assert.DoesNotContain("EADDRINUSE", activator.Errors.ToString() + activator.Output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Monit_draws_the_workers()
    {
        await using var herd = await HerdRun.StartAsync(workers: 2);
        var pids = await herd.LsAsync();
        var (code, output) = await HerdRun.CliAsync("monit", "--once", "--name", herd.Name);
        Assert.Equal(0, code);
        Assert.All(pids, pid => Assert.Contains(pid.ToString(CultureInfo.InvariantCulture), output, StringComparison.Ordinal));
        Assert.Contains("listening", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Ttin_and_ttou_add_and_remove_a_worker()
    {
        await using var herd = await HerdRun.StartAsync(workers: 2);
        Assert.True(Native.Fd.Kill(herd.Pid, (int)UnixSignal.SIGTTIN));
        await herd.WaitForWorkersAsync(3);
        // One at a time: the kernel merges a signal sent again before the first was handled.
        Assert.True(Native.Fd.Kill(herd.Pid, (int)UnixSignal.SIGTTOU));
        await herd.WaitForWorkersAsync(2);
        Assert.True(Native.Fd.Kill(herd.Pid, (int)UnixSignal.SIGTTOU));
        await herd.WaitForWorkersAsync(1);
    }

    // Issue 11 item 14: a worker that dies before it was ever ready, at start, ends the run with its status and last lines.
    [Fact]
    public async Task A_worker_that_dies_at_start_ends_the_run_with_its_exit_status_and_last_lines()
    {
        var clock = Stopwatch.StartNew();
        var (code, output) = await HerdRun.CliAsync("run", "-i", "2", "--name", "test-" + Guid.NewGuid().ToString("N")[..8], "--", "dotnet", "/nonexistent/App.dll");

        Assert.NotEqual(0, code);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"exited after {clock.Elapsed}");
        Assert.Contains("died (exit code", output, StringComparison.Ordinal);
        Assert.Contains("Its last lines:", output, StringComparison.Ordinal);
        Assert.Contains("/nonexistent/App.dll", output.Split("Its last lines:")[1], StringComparison.Ordinal);
        Assert.DoesNotContain("restarting in", output, StringComparison.Ordinal);
        Assert.DoesNotContain(" running, ", output, StringComparison.Ordinal);
    }

    // Issue 11 item 14: the port is taken: one line naming the address and the error, a non-zero exit, within seconds.
    [Fact]
    public async Task A_port_in_use_fails_fast_in_one_line()
    {
        using var squatter = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.InterNetwork, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Tcp);
        squatter.Bind(new System.Net.IPEndPoint(System.Net.IPAddress.Loopback, 0));
        squatter.Listen();
        int port = ((System.Net.IPEndPoint)squatter.LocalEndPoint!).Port;
        var clock = Stopwatch.StartNew();
        var (code, output) = await HerdRun.CliAsync("run", "-i", "2", "--name", "test-" + Guid.NewGuid().ToString("N")[..8],
            "--", "dotnet", TestCluster.PlainWebAppDll, "--urls", $"http://127.0.0.1:{port}");

        Assert.Equal(1, code);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"exited after {clock.Elapsed}");
        var herdLines = output.Split('\n').Where(line => line.StartsWith("herd: ", StringComparison.Ordinal)).ToList();
        Assert.Equal([$"herd: cannot listen on 127.0.0.1:{port}: Address already in use"], herdLines);
        Assert.DoesNotContain("restarting in", output, StringComparison.Ordinal);
    }

    // Issue 11 item 15: a command whose channel never comes up (no startup hook) fails within the ready timeout, and says why.
    [Fact]
    public async Task A_command_herd_cannot_cluster_fails_within_the_ready_timeout_and_says_why()
    {
        var config = Path.GetTempFileName();
        try
        {
            await File.WriteAllTextAsync(config, """{ "readyTimeout": 2000, "killTimeout": 500 }""");
            var clock = Stopwatch.StartNew();
            var (code, output) = await HerdRun.CliAsync("run", "-i", "2", "--config", config, "--name", "test-" + Guid.NewGuid().ToString("N")[..8], "--", "sleep", "60");

            Assert.NotEqual(0, code);
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(15), $"exited after {clock.Elapsed}");
            Assert.Contains("never connected to the primary", output, StringComparison.Ordinal);
            Assert.Contains("startup hook", output, StringComparison.Ordinal);
            Assert.Contains("UseHerd()", output, StringComparison.Ordinal);
            Assert.DoesNotContain("restarting in", output, StringComparison.Ordinal);
        }
        finally
        {
            File.Delete(config);
        }
    }

    // Issue 10 items 1 and 2 end to end: a reload onto a broken build fails, says how the new worker died and what it
    // wrote, and leaves the old workers serving, with nothing restarted.
    [Fact]
    public async Task A_reload_onto_a_broken_build_fails_clearly_and_keeps_the_old_workers()
    {
        var copy = Directory.CreateTempSubdirectory("herd-app-");
        try
        {
            foreach (var file in Directory.GetFiles(Path.GetDirectoryName(TestCluster.PlainWebAppDll)!)) File.Copy(file, Path.Combine(copy.FullName, Path.GetFileName(file)));
            var dll = Path.Combine(copy.FullName, Path.GetFileName(TestCluster.PlainWebAppDll));
            await using var herd = await HerdRun.StartAsync(workers: 2, config: null, command: port => ["dotnet", dll, "--urls", $"http://127.0.0.1:{port}"]);
            var before = await herd.LsAsync();
            File.Delete(dll); // a new file, as a deploy writes: the running workers keep theirs
            await File.WriteAllTextAsync(dll, "not an assembly");

            var (code, output) = await HerdRun.CliAsync("reload", "--name", herd.Name);

            Assert.Equal(1, code);
            Assert.Contains("died (", output, StringComparison.Ordinal);
            Assert.Contains("Its last lines:", output, StringComparison.Ordinal);
            Assert.Equal(before.Order(), (await herd.LsAsync()).Order());
            Assert.Equal(before.Order(), (await herd.PidsServingAsync(10)).Order());
            var (_, table) = await HerdRun.CliAsync("ls", "--name", herd.Name);
            Assert.Contains("last reload failed: ", table, StringComparison.Ordinal);
            Assert.DoesNotContain(herd.Errors, line => line.Contains("restarting in", StringComparison.Ordinal));
        }
        finally
        {
            copy.Delete(recursive: true);
        }
    }

    // Issue 10 item 8: restarts are counted per slot.
    [Fact]
    public async Task Ls_counts_restarts_per_slot()
    {
        await using var herd = await HerdRun.StartAsync(workers: 2);
        var rows = await herd.LsRowsAsync();
        var victim = rows.Single(row => row.GetProperty("slot").GetInt32() == 0).GetProperty("pid").GetInt32();
        Assert.True(Native.Fd.Kill(victim, (int)UnixSignal.SIGKILL));
        await herd.WaitForReplacementAsync(victim, workers: 2);

        rows = await herd.LsRowsAsync();
        Assert.Equal(1, rows.Single(row => row.GetProperty("slot").GetInt32() == 0).GetProperty("restarts").GetInt32());
        Assert.Equal(0, rows.Single(row => row.GetProperty("slot").GetInt32() == 1).GetProperty("restarts").GetInt32());
    }

    // Issue 10 item 4 end to end, and issue 11 item 13's scale -5: every request gets an answer, a bad one a clear error.
    [Fact]
    public async Task Bad_requests_get_a_clear_error_and_change_nothing()
    {
        await using var herd = await HerdRun.StartAsync(workers: 2);
        var before = await herd.LsAsync();

        var (code, output) = await HerdRun.CliAsync("scale", "+2147483647", "--name", herd.Name);
        Assert.Equal(1, code);
        Assert.Contains("over the maximum", output, StringComparison.Ordinal);

        foreach (var (request, error) in new[]
                 {
                     ("""{"command":"scale","count":-5}""", "not a number of workers"),
                     ("""{"command":"dance"}""", "bad request"),
                     ("""{"command":"restart"}""", "bad request"),
                     ("""{"count":2}""", "bad request"),
                     ("""{"command":"scale","count":"many"}""", "bad request"),
                     ("not json", "bad request"),
                 })
        {
            var answer = await herd.ControlAsync(request);
            Assert.False(answer.GetProperty("ok").GetBoolean(), request);
            Assert.Contains(error, answer.GetProperty("error").GetString(), StringComparison.Ordinal);
        }
        Assert.True((await herd.ControlAsync("""{"count":1,"relative":true,"command":"scale"}""")).GetProperty("ok").GetBoolean());
        Assert.Equal(3, (await herd.LsAsync()).Count);
        Assert.Equal(0, (await HerdRun.CliAsync("scale", "2", "--name", herd.Name)).Code);
        Assert.Equal(before.Order(), (await herd.LsAsync()).Order());
    }

    // Issue 10 item 6: herd stop is answered before the primary exits.
    [Fact]
    public async Task Stop_answers_then_stops()
    {
        var herd = await HerdRun.StartAsync(workers: 1);
        await using (herd)
        {
            Assert.Equal(0, (await HerdRun.CliAsync("stop", "--name", herd.Name)).Code);
            await herd.WaitForExitAsync();
        }
    }

    [Fact]
    public async Task A_hung_worker_is_replaced()
    {
        await using var herd = await HerdRun.StartAsync(workers: 2, config: """{ "heartbeatInterval": 200, "heartbeatTimeout": 2000 }""");
        var hung = (await herd.LsAsync())[0];
        Assert.True(Native.Fd.Kill(hung, (int)UnixSignal.SIGSTOP)); // frozen: alive, silent
        await herd.WaitForReplacementAsync(hung, workers: 2);
        Assert.Contains(herd.Errors, line => line.Contains($"pid {hung}) answered no heartbeat", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Max_requests_recycling_fails_no_request()
    {
        await using var herd = await HerdRun.StartAsync(workers: 2, config: """{ "maxRequests": 150, "maxRequestsJitter": 50, "heartbeatInterval": 100 }""");
        var before = await herd.PidsServingAsync(10);
        var failures = new ConcurrentQueue<Exception>();
        var clock = Stopwatch.StartNew();
        int Recycles() => herd.Errors.Count(line => line.Contains("recycling worker", StringComparison.Ordinal));
        await Task.WhenAll(Enumerable.Range(0, 4).Select(_ => Task.Run(async () =>
        {
            while (Recycles() < 2 && clock.Elapsed < TestCluster.Timeout)
            {
                try
                {
                    await herd.GetPidAsync();
                }
                catch (HttpRequestException ex)
                {
                    failures.Enqueue(ex);
                }
            }
        })));

        Assert.Empty(failures);
        Assert.True(Recycles() >= 2);
        Assert.NotEqual(before.Order(), (await herd.LsAsync()).Order());
    }

    [Fact]
    public async Task Restart_replaces_one_worker()
    {
        await using var herd = await HerdRun.StartAsync(workers: 2);
        var before = await herd.LsAsync();
        Assert.Equal(0, (await HerdRun.CliAsync("restart", "1", "--name", herd.Name)).Code);
        var after = await herd.LsAsync();
        Assert.Equal(2, after.Count);
        Assert.DoesNotContain(before[0], after);
        Assert.Contains(before[1], after);
        Assert.Equal(1, (await HerdRun.CliAsync("restart", "99", "--name", herd.Name)).Code);
    }

    [Fact]
    public async Task A_worker_killed_with_sigkill_is_replaced()
    {
        await using var herd = await HerdRun.StartAsync(workers: 2);
        var victim = (await herd.LsAsync())[0];
        Assert.True(Native.Fd.Kill(victim, (int)UnixSignal.SIGKILL));
        await herd.WaitForReplacementAsync(victim, workers: 2);
        Assert.Contains(herd.Errors, line => line.Contains($"pid {victim}) died (SIGKILL)", StringComparison.Ordinal));
    }

    [Fact]
    public async Task The_control_socket_refuses_another_user()
    {
        if (Native.Libc.GetUid() != 0) return; // needs root to become nobody, as CI has
        await using var herd = await HerdRun.StartAsync(workers: 1);
        var socket = Path.Combine("/tmp", "herd-0", herd.Name + ".sock");
        Assert.True(File.Exists(socket));
        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite, File.GetUnixFileMode(socket));

        var (code, output) = await HerdRun.RunAsync(TestProcess.AsNobody("env", "XDG_RUNTIME_DIR=/tmp/herd-0",
            "dotnet", TestCluster.HerdCliDll, "ls", "--json", "--name", herd.Name));
        Assert.NotEqual(0, code);
        Assert.DoesNotContain("pid", output, StringComparison.Ordinal);
        Assert.Single(await herd.LsAsync()); // and the app is none the worse
    }

    /// <summary>A `herd run` of PlainWebApp (or of another command) in the background, stopped and cleaned up on dispose.</summary>
    internal sealed class HerdRun : IAsyncDisposable
    {
        private readonly HttpClient _http = new() { Timeout = TestCluster.Timeout };
        private readonly string[] _launcher;
        private readonly string[] _command;
        private readonly Dictionary<string, string?> _environment = new() { ["XDG_RUNTIME_DIR"] = null };
        private TestProcess? _process;
        private string? _config;

        // launcher runs herd (setsid, unshare...); command is the workers' (by default PlainWebApp on port).
        private HerdRun(string name, int port, string[]? launcher, string[]? command)
        {
            Name = name;
            Port = port;
            Uri = new Uri($"http://127.0.0.1:{port}/pid");
            _http.DefaultRequestHeaders.ConnectionClose = true;
            _launcher = launcher ?? [];
            _command = command ?? ["dotnet", TestCluster.PlainWebAppDll, "--urls", $"http://127.0.0.1:{port}"];
        }

        public string Name { get; }

        /// <summary>The port PlainWebApp serves; free for another command to use.</summary>
        public int Port { get; }

        public Uri Uri { get; }

        public IReadOnlyCollection<string> Errors => Process.Errors.Lines;

        public int Pid => Process.Pid;

        /// <summary>The herd.json herd was started with, if any: a test may change it, as before an upgrade.</summary>
        public string? ConfigPath => _config;

        private TestProcess Process => _process ?? throw new InvalidOperationException("herd has not started");

        /// <summary>Waits for herd to exit of itself; returns its exit code.</summary>
        public Task<int> ExitCodeAsync() => Process.WaitForExitAsync();

        public static async Task<HerdRun> StartAsync(int workers, params (string Name, string Value)[] environment) =>
            await StartAsync(workers, null, environment);

        public static Task<HerdRun> StartAsync(int workers, string? config, params (string Name, string Value)[] environment) =>
            StartAsync(workers, config, command: null, environment);

        /// <summary>Runs <paramref name="command"/> (by default PlainWebApp on <see cref="Port"/>) and waits until herd says it runs.</summary>
        public static async Task<HerdRun> StartAsync(int workers, string? config, Func<int, string[]>? command, params (string Name, string Value)[] environment)
        {
            int port = Ports.Free();
            var run = new HerdRun("test-" + Guid.NewGuid().ToString("N")[..8], port, launcher: null, command?.Invoke(port));
            foreach (var (name, value) in environment) run._environment[name] = value;
            return await run.StartAsync(workers, config);
        }

        /// <summary>Starts herd through <paramref name="launcher"/>, its workers as <c>sh -c '<paramref name="shell"/> exec dotnet PlainWebApp.dll ...'</c>.</summary>
        public static Task<HerdRun> StartAsync(int workers, string[] launcher, string? shell, string? config = null)
        {
            int port = Ports.Free();
            string[]? command = shell is null ? null : ["sh", "-c", $"{shell} exec dotnet {TestCluster.PlainWebAppDll} --urls http://127.0.0.1:{port}"];
            return new HerdRun("test-" + Guid.NewGuid().ToString("N")[..8], port, launcher, command).StartAsync(workers, config);
        }

        private async Task<HerdRun> StartAsync(int workers, string? config)
        {
            string[] options = ["-i", workers.ToString(CultureInfo.InvariantCulture), "--name", Name];
            if (config is not null)
            {
                _config = Path.GetTempFileName();
                await File.WriteAllTextAsync(_config, config);
                options = [.. options, "--config", _config];
            }
            _process = TestProcess.Start([.. _launcher, "dotnet", TestCluster.HerdCliDll, "run", .. options, "--", .. _command], _environment);
            try
            {
                await _process.Errors.WaitForAsync(line => line.Contains(" running, ", StringComparison.Ordinal));
            }
            catch
            {
                await DisposeAsync();
                throw;
            }
            return this;
        }

        /// <summary>Waits for the primary to exit, as after herd stop, which answers before the workers have drained.</summary>
        public Task WaitForExitAsync() => Process.WaitForExitAsync();

        public async Task<int> GetPidAsync() => int.Parse(await _http.GetStringAsync(Uri), CultureInfo.InvariantCulture);

        public async Task<HashSet<int>> PidsServingAsync(int requests)
        {
            var pids = new HashSet<int>();
            for (int i = 0; i < requests; i++) pids.Add(await GetPidAsync());
            return pids;
        }

        public Task WaitForWorkersAsync(int count) => TestCluster.UntilAsync(async () => (await LsAsync()).Count == count, $"{count} workers");

        /// <summary>Waits until <paramref name="pid"/> is gone from herd ls and <paramref name="workers"/> run again.</summary>
        public async Task WaitForReplacementAsync(int pid, int workers)
        {
            List<int> now = [];
            await TestCluster.UntilAsync(async () => !(now = await LsAsync()).Contains(pid) && now.Count >= workers, $"pid {pid} replaced");
            Assert.Equal(workers, now.Count);
        }

        public async Task<List<int>> LsAsync() => [.. (await LsRowsAsync()).Select(w => w.GetProperty("pid").GetInt32())];

        public async Task<List<JsonElement>> LsRowsAsync()
        {
            var (code, output) = await CliAsync("ls", "--json", "--name", Name);
            Assert.Equal(0, code);
            return [.. JsonDocument.Parse(output).RootElement.EnumerateArray()];
        }

        /// <summary>Sends one raw line to the control socket and returns the answer.</summary>
        public async Task<JsonElement> ControlAsync(string line)
        {
            using var socket = new System.Net.Sockets.Socket(System.Net.Sockets.AddressFamily.Unix, System.Net.Sockets.SocketType.Stream, System.Net.Sockets.ProtocolType.Unspecified);
            await socket.ConnectAsync(new System.Net.Sockets.UnixDomainSocketEndPoint(Path.Combine("/tmp", $"herd-{Native.Libc.GetUid()}", Name + ".sock"))).WaitAsync(TestCluster.Timeout);
            await socket.SendAsync(System.Text.Encoding.UTF8.GetBytes(line + "\n"));
            using var reader = new StreamReader(new System.Net.Sockets.NetworkStream(socket));
            var answer = await reader.ReadLineAsync().WaitAsync(TestCluster.Timeout);
            Assert.NotNull(answer);
            return JsonDocument.Parse(answer).RootElement.Clone();
        }

        public static Task<(int Code, string Output)> CliAsync(params string[] args) => RunAsync(["dotnet", TestCluster.HerdCliDll, .. args]);

        public static Task<(int Code, string Output)> RunAsync(string[] command) =>
            TestProcess.RunAsync(command, new Dictionary<string, string?> { ["XDG_RUNTIME_DIR"] = null });

        public async ValueTask DisposeAsync()
        {
            _http.Dispose();
            if (_process is { } process)
            {
                if (!process.HasExited)
                {
                    Native.Fd.Kill(process.Pid, (int)UnixSignal.SIGTERM);
                    try
                    {
                        await process.WaitForExitAsync();
                    }
                    catch (TimeoutException)
                    {
                        process.Kill(entireProcessTree: true);
                    }
                }
                Assert.Equal(0, await process.WaitForExitAsync());
                await process.DisposeAsync();
            }
            if (_config is not null) File.Delete(_config);
        }
    }
}
