using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Xunit.Abstractions;

namespace Herd.Tests;

/// <summary>
/// Issue 10's operation storm: `herd run` of the test worker under a new-connection-per-request load, and random
/// operations with random gaps, overlapping: scale (absolute and relative), reload, restart, kill -9, SIGSTOP then
/// SIGCONT, and HUP, TTIN and TTOU to the primary. Replayable: the seed is printed, and HERD_CHAOS_STORM_SEED replays
/// it (the operations and their gaps; which pid a kill hits depends on timing). The storm never scales to no worker.
/// Once it settles: one ready worker per slot, the slots the target, no process outside herd ls, no invariant
/// breach logged, no connection refused or stuck, failures only on workers the storm killed or stopped, the primary's
/// sockets and pipes back to their count before, and `herd stop` answered with 0 and leaving no process. CI runs one short
/// storm; bench/chaos.sh runs HERD_CHAOS_STORM_SEEDS long ones in a row.
/// </summary>
public sealed class StormTests(ITestOutputHelper output)
{
    [Fact]
    public async Task A_seeded_storm_of_operations_under_load_leaves_every_invariant_holding()
    {
        int seeds = ChaosReport.Setting("STORM_SEEDS", 1);
        int operations = ChaosReport.Setting("STORM_OPERATIONS", 12);
        int first = ChaosReport.Setting("STORM_SEED", Random.Shared.Next(1, 100_000));
        for (int seed = first; seed < first + seeds; seed++) await StormAsync(seed, operations);
    }

    private async Task StormAsync(int seed, int operations)
    {
        output.WriteLine($"storm seed {seed} (replay: HERD_CHAOS_STORM_SEED={seed})");
        var random = new Random(seed);
        int port = Ports.Free();
        var name = $"storm-{seed}-" + Guid.NewGuid().ToString("N")[..6];
        var config = Path.GetTempFileName();
        await File.WriteAllTextAsync(config, """
            { "heartbeatInterval": 500, "readyTimeout": 15000, "killTimeout": 3000, "restartDelay": 50, "maxRestartDelay": 500,
              "maxRestarts": 1000, "maxInstances": 6 }
            """);
        await using var herd = TestProcess.Start(["dotnet", TestCluster.HerdCliDll, "run", "-i", "2", "--config", config, "--name", name, "--",
            "dotnet", TestCluster.WorkerDll, "serve", "--port", port.ToString(CultureInfo.InvariantCulture)], new Dictionary<string, string?> { ["XDG_RUNTIME_DIR"] = null });
        var seen = new HashSet<int>();
        try
        {
            await herd.Errors.WaitForAsync(line => line.Contains(" running, ", StringComparison.Ordinal));
            int socketsBefore = Sockets(herd.Pid);
            seen.UnionWith(Children(herd.Pid));

            var load = EchoLoad.Start(port, concurrency: 4);
            var disturbed = new ConcurrentDictionary<int, string>(); // pid → what the storm did to it
            var pending = new List<Task>();
            var counts = new Dictionary<string, int>();
            int expected = 2;
            var increases = new List<Task>(); // absolute scales and scale +1 on their way to the primary
            var clock = Stopwatch.StartNew();
            for (int i = 0; i < operations; i++)
            {
                await Task.Delay(random.Next(0, 800)); // the storm's random gap, not a wait for anything
                var workers = Children(herd.Pid);
                seen.UnionWith(workers);
                int pick = random.Next();
                int victim = workers.Count > 0 ? workers[pick % workers.Count] : 0;
                var operation = random.Next(11) switch
                {
                    0 => $"scale {2 + (pick % 3)}",
                    1 => "scale +1",
                    2 => "scale -1",
                    3 or 4 => "reload",
                    5 => "restart",
                    6 => "kill",
                    7 => "stop-cont",
                    8 => "HUP",
                    9 => "TTIN",
                    _ => "TTOU",
                };
                // Never down to no worker: with none left the port closes, as Node's does with its last worker (issue
                // 11 item 16), and refusing is not what this storm measures. A decrease needs 3 as asked, so that two
                // reordered on their way still leave one, and no increase on its way: a `herd scale` starts a process
                // and connects, so a TTOU sent after it may overtake it and meet a smaller count than the model's.
                if (operation is "scale -1" or "TTOU")
                {
                    if (expected < 3 || increases.Any(t => !t.IsCompleted)) operation = "skip";
                    else expected--;
                }
                else if (operation is "scale +1" or "TTIN") expected = Math.Min(6, expected + 1);
                else if (operation.StartsWith("scale ", StringComparison.Ordinal)) expected = int.Parse(operation[6..], CultureInfo.InvariantCulture);
                counts[operation.Split(' ')[0]] = counts.GetValueOrDefault(operation.Split(' ')[0]) + 1;
                output.WriteLine($"{clock.ElapsedMilliseconds,6} ms  {operation}{(operation is "kill" or "stop-cont" ? $" {victim}" : "")}");
                switch (operation)
                {
                    case "kill" when victim != 0:
                        disturbed[victim] = "killed";
                        Native.Fd.Kill(victim, (int)UnixSignal.SIGKILL);
                        break;
                    case "stop-cont" when victim != 0:
                        disturbed[victim] = "stopped";
                        Native.Fd.Kill(victim, (int)UnixSignal.SIGSTOP);
                        int pause = random.Next(0, 1500);
                        pending.Add(Task.Run(async () =>
                        {
                            await Task.Delay(pause);
                            Native.Fd.Kill(victim, (int)UnixSignal.SIGCONT);
                        }));
                        break;
                    case "HUP" or "TTIN" or "TTOU":
                        Native.Fd.Kill(herd.Pid, (int)Enum.Parse<UnixSignal>("SIG" + operation));
                        break;
                    case "restart":
                        pending.Add(RestartSomeWorkerAsync(name, random.Next()));
                        break;
                    case "kill" or "stop-cont" or "skip":
                        break; // no worker to hit just now, or a decrease the model forbids
                    default: // reload and the scales
                        var asked = Cli([.. operation.Split(' '), "--name", name]);
                        if (operation.StartsWith("scale ", StringComparison.Ordinal) && operation != "scale -1") increases.Add(asked);
                        pending.Add(asked);
                        break;
                }
            }
            await Task.WhenAll(pending).WaitAsync(TimeSpan.FromMinutes(3));
            foreach (var (pid, what) in disturbed.Where(d => d.Value == "stopped")) Native.Fd.Kill(pid, (int)UnixSignal.SIGCONT);

            // Settle: one last absolute scale, queued behind whatever the storm left under way.
            Assert.Equal(0, (await Cli(["scale", "2", "--name", name])).Code);
            List<JsonElement> rows = [];
            await TestCluster.UntilAsync(async () => (rows = await LsAsync(name)).Count == 2 && rows.All(r => r.GetProperty("state").GetString() == "listening"),
                "two listening workers after the storm");
            await load.StopAsync();

            var pids = rows.Select(r => r.GetProperty("pid").GetInt32()).ToHashSet();
            Assert.Equal([0, 1], rows.Select(r => r.GetProperty("slot").GetInt32()).Order());
            await TestCluster.UntilAsync(() => Children(herd.Pid).ToHashSet().SetEquals(pids), "herd's children to be the workers herd ls lists");
            await TestCluster.UntilAsync(() => Sockets(herd.Pid) <= socketsBefore, $"the primary's sockets and pipes back to {socketsBefore} (now {Sockets(herd.Pid)})");
            int socketsAfter = Sockets(herd.Pid);
            seen.UnionWith(pids);

            var (stopCode, stopOutput) = await Cli(["stop", "--name", name]);
            Assert.True(stopCode == 0, stopOutput);
            Assert.Equal(0, await herd.WaitForExitAsync());
            await TestCluster.UntilAsync(() => seen.All(pid => !Directory.Exists($"/proc/{pid}")), "every worker gone after herd stop");

            var breaches = herd.Errors.Lines.Where(line => line.Contains("invariant broken", StringComparison.OrdinalIgnoreCase)).ToList();
            var onUndisturbed = load.FailedAfterPid.Keys.Where(pid => !disturbed.ContainsKey(pid)).ToList();
            var figure = $"seed {seed}: {operations} operations ({string.Join(", ", counts.OrderBy(c => c.Key).Select(c => $"{c.Value} {c.Key}"))}) in {clock.Elapsed.TotalSeconds:0} s, " +
                $"{disturbed.Count} workers killed or stopped; clients: {load}{(load.StuckOn.IsEmpty ? "" : $" (stuck on pids {string.Join(", ", load.StuckOn.Keys)})")}; invariant breaches {breaches.Count}; primary sockets and pipes {socketsBefore} -> {socketsAfter}; herd stop rc {stopCode}";
            ChaosReport.Append(output, "operation storm", figure);
            Assert.Empty(breaches);
            Assert.Equal(0, load.Refused);
            Assert.Equal(0, load.Stuck);
            Assert.Empty(onUndisturbed);
            if (disturbed.IsEmpty) Assert.Equal(0, load.FailedBeforePid);
            Assert.True(load.Ok > 0, load.ToString());
        }
        catch (Exception ex) when (ex is not Xunit.Sdk.XunitException)
        {
            throw new InvalidOperationException($"storm seed {seed} failed; herd said:\n{string.Join('\n', herd.Errors.Lines.TakeLast(60))}", ex);
        }
        finally
        {
            herd.Kill(entireProcessTree: true);
            foreach (var pid in seen) Native.Fd.Kill(pid, (int)UnixSignal.SIGKILL);
            File.Delete(config);
        }
    }

    private static async Task RestartSomeWorkerAsync(string name, int pick)
    {
        var rows = await LsAsync(name);
        if (rows.Count == 0) return;
        var id = rows[pick % rows.Count].GetProperty("id").GetInt32();
        await Cli(["restart", id.ToString(CultureInfo.InvariantCulture), "--name", name]);
    }

    // A herd command; operations queue behind each other (a reload whose new worker was SIGSTOPped waits out its ready
    // timeout), so one may take longer than a test's usual timeout without anything being stuck.
    private static Task<(int Code, string Output)> Cli(string[] args) =>
        TestProcess.RunAsync(["dotnet", TestCluster.HerdCliDll, .. args], new Dictionary<string, string?> { ["XDG_RUNTIME_DIR"] = null }, TimeSpan.FromMinutes(3));

    private static async Task<List<JsonElement>> LsAsync(string name)
    {
        var (code, text) = await Cli(["ls", "--json", "--name", name]);
        return code == 0 ? [.. JsonDocument.Parse(text).RootElement.EnumerateArray().Select(e => e.Clone())] : [];
    }

    // The primary's child processes (its workers), from /proc.
    private static List<int> Children(int pid)
    {
        var children = new List<int>();
        try
        {
            foreach (var task in Directory.GetDirectories($"/proc/{pid}/task"))
            {
                foreach (var child in File.ReadAllText(Path.Combine(task, "children")).Split(' ', StringSplitOptions.RemoveEmptyEntries))
                    children.Add(int.Parse(child, CultureInfo.InvariantCulture));
            }
        }
        catch (IOException)
        {
            // the primary or a thread is gone
        }
        return children;
    }

    // Sockets and pipes: a replaced worker must leave neither its channel nor its output pipes behind.
    private static int Sockets(int pid) =>
        Directory.GetFileSystemEntries($"/proc/{pid}/fd").Count(fd => new FileInfo(fd).LinkTarget is { } target
            && (target.StartsWith("socket:", StringComparison.Ordinal) || target.StartsWith("pipe:", StringComparison.Ordinal)));
}
