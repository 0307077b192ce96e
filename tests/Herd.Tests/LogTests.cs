using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text;
using System.Text.RegularExpressions;
using static Herd.Tests.CliTests;

namespace Herd.Tests;

/// <summary>Workers' output under <c>herd run</c>: it never blocks supervision, never grows the primary without bound, and never goes missing silently.</summary>
public sealed partial class LogTests
{
    /// <summary>The test worker on <paramref name="port"/>, printing what HERD_TEST_PRINT says on each connection.</summary>
    internal static string[] TestWorker(int port) => ["dotnet", TestCluster.WorkerDll, "serve", "--port", port.ToString(CultureInfo.InvariantCulture)];

    [Fact]
    public async Task A_stdout_nobody_reads_stalls_neither_the_workers_nor_supervision()
    {
        var folder = Directory.CreateTempSubdirectory("herd-fifo-");
        var fifo = Path.Combine(folder.FullName, "out");
        Assert.Equal(0, (await TestProcess.RunAsync(["mkfifo", fifo])).Code);
        // Held open read-write so that herd's open of it does not wait for a reader; read only to prove the marker.
        using var held = File.OpenHandle(fifo, FileMode.Open, FileAccess.ReadWrite);
        int port = Ports.Free();
        var name = "test-" + Guid.NewGuid().ToString("N")[..8];
        await using var herd = TestProcess.Start(["sh", "-c", "exec \"$@\" >\"$0\" 2>&1", fifo, "dotnet", TestCluster.HerdCliDll, "run", "-i", "1", "--name", name, "--", .. TestWorker(port)],
            new Dictionary<string, string?>
            {
                ["XDG_RUNTIME_DIR"] = null,
                ["HERD_TEST_PRINT"] = "5000:100", // 500 KB a connection: far more than the FIFO and herd's buffer hold
            });
        try
        {
            var worker = await WorkerPidsAsync(name, 1);
            var endPoint = new IPEndPoint(IPAddress.Loopback, port);

            // The worker prints it all (the primary keeps draining its pipe) and then answers.
            Assert.Equal(worker[0], await Client.PidOfAsync(endPoint));

            var clock = Stopwatch.StartNew();
            Assert.True(Native.Fd.Kill(worker[0], (int)UnixSignal.SIGKILL));
            var replacement = await WorkerPidsAsync(name, 1, except: worker[0]);
            var restarted = clock.Elapsed;
            Assert.Equal(replacement[0], await Client.PidOfAsync(endPoint)); // stalls stdout again

            clock.Restart();
            Assert.Equal(0, (await HerdRun.CliAsync("reload", "--name", name)).Code);
            var reloaded = clock.Elapsed;
            var reloadedPid = (await WorkerPidsAsync(name, 1, except: replacement[0]))[0];

            // Once someone reads again, what was dropped is said, once.
            var output = new StringBuilder();
            using (var reader = new FileStream(new Microsoft.Win32.SafeHandles.SafeFileHandle(held.DangerousGetHandle(), ownsHandle: false), FileAccess.Read, 1))
            {
                var buffer = new byte[65536];
                var reading = Stopwatch.StartNew();
                while (!DroppedMarker().IsMatch(output.ToString()))
                {
                    // A FIFO's read is not cancellable: bounded by a wait instead.
                    int n = await reader.ReadAsync(buffer, 0, buffer.Length).WaitAsync(TestCluster.Timeout - reading.Elapsed);
                    output.Append(Encoding.UTF8.GetString(buffer, 0, n));
                }
            }
            Assert.Equal(reloadedPid, await Client.PidOfAsync(endPoint)); // and stalls it once more, for the stop

            clock.Restart();
            Assert.Equal(0, (await HerdRun.CliAsync("stop", "--name", name)).Code);
            Assert.Equal(0, await herd.WaitForExitAsync());
            Console.WriteLine($"stdout stalled: restart {restarted.TotalSeconds:0.0} s, reload {reloaded.TotalSeconds:0.0} s, stop {clock.Elapsed.TotalSeconds:0.0} s; {DroppedMarker().Match(output.ToString()).Value}");
        }
        finally
        {
            herd.Kill(entireProcessTree: true);
            folder.Delete(recursive: true);
        }
    }

    [Fact]
    public async Task Huge_lines_are_cut_and_the_primary_stays_small()
    {
        await using var herd = await HerdRun.StartAsync(1, null, TestWorker, ("HERD_TEST_PRINT", "300:1048576"));
        var worker = (await herd.LsAsync())[0];
        Assert.Equal(worker, await Client.PidOfAsync(new IPEndPoint(IPAddress.Loopback, herd.Port))); // after its 300 MB of output
        var (code, logs) = await HerdRun.CliAsync("logs", "--name", herd.Name);
        long peakKb = PeakKb(herd.Pid);
        Console.WriteLine($"300 lines of 1 MB: primary peak {peakKb / 1024} MB, herd logs {logs.Length / 1024} KB");
        Assert.Equal(0, code);
        Assert.InRange(logs.Length, 1, 8 << 20);
        Assert.Contains("[herd] line cut", logs, StringComparison.Ordinal);
        Assert.InRange(peakKb, 1, 250 * 1024);
    }

    [Fact]
    public async Task A_follower_gets_every_line_in_order_or_is_told_how_many_it_missed()
    {
        const int Lines = 100_000;
        await using var herd = await HerdRun.StartAsync(1, null, TestWorker, ("HERD_TEST_PRINT", $"{Lines}:20"));
        var worker = (await herd.LsAsync())[0];
        await using var follower = TestProcess.Start(["dotnet", TestCluster.HerdCliDll, "logs", "-f", "--name", herd.Name], new Dictionary<string, string?> { ["XDG_RUNTIME_DIR"] = null });
        // Following once it has the worker's first line; then the worker prints.
        var first = await follower.Output.WaitForAsync(line => line.Contains("serving", StringComparison.Ordinal));
        int next = follower.Output.Lines.ToList().IndexOf(first) + 1;
        Assert.Equal(worker, await Client.PidOfAsync(new IPEndPoint(IPAddress.Loopback, herd.Port)));

        int expected = 1, received = 0, markers = 0;
        using var timeout = new CancellationTokenSource(TestCluster.Timeout);
        while (expected <= Lines)
        {
            var line = await follower.Output.LineAsync(next++, timeout.Token);
            if (DroppedMarker().Match(line) is { Success: true } marker)
            {
                expected += int.Parse(marker.Groups[1].Value, CultureInfo.InvariantCulture);
                markers++;
                continue;
            }
            Assert.Equal($"[1] line {expected} {new string('x', 20)}", line);
            expected++;
            received++;
        }
        Console.WriteLine($"a follower of {Lines} lines: {received} received in order, {Lines - received} reported dropped in {markers} marker(s)");
        Assert.Equal(Lines + 1, expected);
    }

    /// <summary>The pids <c>herd ls</c> lists once it lists <paramref name="count"/> workers, none of them <paramref name="except"/>.</summary>
    internal static async Task<List<int>> WorkerPidsAsync(string name, int count, int except = 0, string? runtimeDir = null)
    {
        List<int> workers = [];
        await TestCluster.UntilAsync(async () =>
        {
            var (code, output) = await TestProcess.RunAsync(["dotnet", TestCluster.HerdCliDll, "ls", "--json", "--name", name],
                new Dictionary<string, string?> { ["XDG_RUNTIME_DIR"] = runtimeDir });
            if (code != 0) return false;
            workers = [.. System.Text.Json.JsonDocument.Parse(output).RootElement.EnumerateArray()
                .Where(w => w.GetProperty("state").GetString() == "listening").Select(w => w.GetProperty("pid").GetInt32())];
            return workers.Count == count && !workers.Contains(except);
        }, $"herd ls to list {count} listening worker(s) but {except}");
        return workers;
    }

    private static long PeakKb(int pid) => long.Parse(File.ReadLines($"/proc/{pid}/status").First(l => l.StartsWith("VmHWM:", StringComparison.Ordinal))
        .Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture);

    [GeneratedRegex(@"\[herd\] (\d+) lines? dropped")]
    private static partial Regex DroppedMarker();
}
