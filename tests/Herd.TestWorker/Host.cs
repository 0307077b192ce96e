using System.Globalization;
using System.Runtime.InteropServices;
using System.Text.Json;
using Microsoft.Extensions.Logging;

namespace Herd.TestWorker;

/// <summary>
/// A primary in a process of its own, driven by line commands on stdin, reporting events and Herd's log on stdout:
/// the tests measure it from outside (its fds, its RSS) as a user's primary would be.
/// </summary>
internal static partial class Host
{
    private static readonly SupervisorOptions Quick = new()
    {
        RestartDelay = TimeSpan.FromMilliseconds(50), MaxRestartDelay = TimeSpan.FromMilliseconds(200), MaxRestarts = 1000,
        ReadyTimeout = TimeSpan.FromSeconds(20), KillTimeout = TimeSpan.FromSeconds(5),
    };

    public static async Task<int> RunAsync(string[] workerArgs)
    {
        Cluster.Logger = new LineLogger();
        await using var primary = new ClusterPrimary(new ClusterSettings { Args = workerArgs });
        Supervisor? supervisor = null;
        primary.Listening += (w, a) => Say($"listening {w.Id} {w.Process.Id} {a.Port}");
        primary.Exit += (w, e) => Say($"exit {w.Id} {w.Process.Id} {e}");
        primary.Message += (w, m) =>
        {
            if (m.Body.TryGetProperty("cmd", out var cmd) && cmd.GetString() == "flood") Thread.Sleep(1); // handlers slower than the flood
            else Say($"message {w.Id} {m.Body.GetRawText()}");
        };
        try
        {
            Say("ready");
            while (await Console.In.ReadLineAsync() is { } line)
            {
                var words = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                switch (words.FirstOrDefault())
                {
                    case "fork":
                        var env = words[1..].Select(w => w.Split('=', 2)).ToDictionary(kv => kv[0], kv => (string?)kv[1]);
                        var worker = primary.Fork(env);
                        Say($"forked {worker.Id} {worker.Process.Id}");
                        break;
                    case "send":
                        primary.Workers[int.Parse(words[1], CultureInfo.InvariantCulture)].Send(JsonElement.Parse(string.Join(' ', words[2..])));
                        Say($"sent {words[1]}");
                        break;
                    case "supervise":
                        supervisor = new Supervisor(primary, Quick with { Workers = int.Parse(words[1], CultureInfo.InvariantCulture) });
                        await supervisor.StartAsync();
                        Say("supervised");
                        break;
                    case "reload":
                        await supervisor!.ReloadAsync();
                        Say("reloaded");
                        break;
                    case "stats":
                        var s = primary.Connections;
                        Say($"stats {s.Accepted} {s.Handed} {s.Retried} {s.Refused} {s.Pending}");
                        break;
                    case "nofile":
                        Say(SetFileLimit(words[1] == "max" ? ulong.MaxValue : ulong.Parse(words[1], CultureInfo.InvariantCulture)) ? $"nofile {words[1]}" : $"nofile failed {Marshal.GetLastPInvokeError()}");
                        break;
                    case "gc":
                        GC.Collect(2, GCCollectionMode.Aggressive, blocking: true, compacting: true);
                        Say("gc");
                        break;
                    case "quit":
                        return 0;
                    default:
                        Say($"unknown command {line}");
                        break;
                }
            }
            return 0;
        }
        finally
        {
            if (supervisor is not null) await supervisor.DisposeAsync();
        }
    }

    private static void Say(string line) => Console.Out.WriteLine(line);

    // The soft limit alone, at most the hard one, which stays: the test can raise it back.
    private static bool SetFileLimit(ulong soft)
    {
        const int RLimitNoFile = 7;
        if (GetRLimit(RLimitNoFile, out var limit) != 0) return false;
        limit.Current = Math.Min(soft, limit.Maximum);
        return SetRLimit(RLimitNoFile, limit) == 0;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct RLimit
    {
        public ulong Current;
        public ulong Maximum;
    }

    [LibraryImport("libc", EntryPoint = "getrlimit", SetLastError = true)]
    private static partial int GetRLimit(int resource, out RLimit limit);

    [LibraryImport("libc", EntryPoint = "setrlimit", SetLastError = true)]
    private static partial int SetRLimit(int resource, in RLimit limit);

    /// <summary>Herd's log, one line per entry, prefixed so the tests can find it among the events.</summary>
    private sealed class LineLogger : ILogger
    {
        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Information;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            Say($"log {logLevel} {formatter(state, exception).ReplaceLineEndings(" ")}");
    }
}
