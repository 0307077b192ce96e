using System.Globalization;
using System.Text;

namespace Herd.Bench;

/// <summary>Turns the figures bench/run.sh collected into docs/benchmarks.md and its chart, ratios first.</summary>
internal static class Report
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    private static readonly string[] Modes =
        ["limit", "node-rr", "node-none", "node-single", "kestrel-single", "kestrel-tuned", "herd-rr", "herd-shared", "herd-reuseport", "herd-sticky"];

    private static readonly Dictionary<string, string> Names = new()
    {
        ["limit"] = "C, epoll + SO_REUSEPORT, a process per core (the machine's limit)",
        ["node-rr"] = "Node 20 cluster, round robin (the seed)",
        ["node-none"] = "Node 20 cluster, SCHED_NONE",
        ["node-single"] = "Node 20, single process",
        ["kestrel-single"] = "Kestrel, single process",
        ["kestrel-tuned"] = "Kestrel, single process, with the workers' runtime settings",
        ["herd-rr"] = "Herd round robin",
        ["herd-shared"] = "Herd shared handle",
        ["herd-reuseport"] = "Herd reuse-port",
        ["herd-sticky"] = "Herd sticky (round robin with a peek at each request line)",
        ["slow-rr"] = "Herd round robin",
        ["slow-leastbusy"] = "Herd least busy",
    };

    // The slowest round of a mode at least this share of its fastest, within one run.
    private const double Steady = 0.85;

    private sealed record Run(string Mode, string Kind, double Rate, double P50, double P99);

    public static int Write(string results, string output, string rounds, string seconds, string warm, string connections)
    {
        var runs = File.ReadLines(Path.Combine(results, "runs")).Select(line => line.Split(' '))
            .Select(f => new Run(f[0], f[1], Num(f[2]), Millis(f[3]), Millis(f[4]))).ToList();
        List<Run> Rounds(string mode, string kind) => [.. runs.Where(r => r.Mode == mode && r.Kind == kind)];
        Run Median(string mode, string kind)
        {
            var these = Rounds(mode, kind).OrderBy(r => r.Rate).ToList();
            return these.Count == 0 ? new Run(mode, kind, double.NaN, double.NaN, double.NaN) : these[these.Count / 2];
        }
        double Rate(string mode, string kind) => Median(mode, kind).Rate;
        var warmRounds = File.ReadLines(Path.Combine(results, "warm")).Select(l => l.Split(' ')).GroupBy(f => f[0], f => f[1])
            .ToDictionary(g => g.Key, g => string.Join(",", g));

        var md = new StringBuilder();
        md.AppendLine("# Benchmarks").AppendLine();
        md.AppendLine(Inv, $"Written by `bench/run.sh` on {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, on {Environment.ProcessorCount} cores ({Cpu()}).");
        md.AppendLine(Inv, $"wrk -t1 -c{connections} -d{seconds}s against `GET /` (hello world), {rounds} alternating round(s): every mode is started, warmed, measured and stopped in turn, round after round. Each start is warmed by rounds of Connection: close ({warm} s rounds/cap) until two in a row agree within 5%. Two workers wherever there is a cluster.");
        md.AppendLine("Herd runs as a user runs it: `samples/HelloCluster`, Release, its defaults unchanged. Absolute figures move with the machine; the ratios are measured within this one run, round by round.");
        double limit = Rate("limit", "close");
        md.AppendLine(Inv, $"**The machine's idle figure:** the C limit server (`bench/limit/limit.c`) served {limit:N0} Connection: close req/s here (a quiet 2-core machine of this kind: about 55,000; a noisy one much less). Each mode's share of it is in the table.").AppendLine();

        md.AppendLine("| mode | keep-alive req/s | Connection: close req/s | ÷ limit | close, every round | slowest ÷ fastest | p50 ms | p99 ms | warm-up rounds |");
        md.AppendLine("|---|---:|---:|---:|---|---:|---:|---:|---|");
        var measured = Modes.Where(m => runs.Any(r => r.Mode == m)).ToList(); // --quick measures only some
        var unsteady = new List<string>();
        foreach (var mode in measured)
        {
            var close = Median(mode, "close");
            var all = Rounds(mode, "close").Select(r => r.Rate).ToList();
            double spread = all.Min() / all.Max();
            if (spread < Steady) unsteady.Add(Names[mode]);
            md.AppendLine(Inv, $"| {Names[mode]} | {Rate(mode, "keepalive"):N0} | {close.Rate:N0} | {close.Rate / limit:F2} | {string.Join(" · ", all.Select(r => r.ToString("N0", Inv)))} | {(spread < Steady ? $"**{spread:F2}**" : $"{spread:F2}")} | {close.P50:F2} | {close.P99:F2} | {warmRounds.GetValueOrDefault(mode, "")} |");
        }
        md.AppendLine().AppendLine(unsteady.Count == 0
            ? "Every mode was steady: its slowest round at least 0.85x its fastest."
            : $"**Unsteady run:** slowest round under {Steady:F2}x the fastest for {string.Join(", ", unsteady)}. A busy machine does this; so does a server that spins.");
        md.AppendLine().AppendLine("![requests per second, by mode](benchmarks.svg)").AppendLine();

        md.AppendLine("## Goals").AppendLine();
        md.AppendLine("Each ratio is taken round by round (round i of one mode against round i of the other, started minutes apart at most), and the median of those is shown with the worst.").AppendLine();
        md.AppendLine("| goal | median | worst round | every round | target | met |").AppendLine("|---|---:|---:|---|---:|---|");
        void Goal(string what, IReadOnlyList<double> ratios, double target, bool atMost = false)
        {
            if (ratios.Count == 0 || ratios.Any(double.IsNaN)) return;
            var sorted = ratios.Order().ToList();
            double median = sorted[sorted.Count / 2], worst = atMost ? sorted[^1] : sorted[0];
            bool Met(double r) => atMost ? r <= target : r >= target;
            string met = Met(worst) ? "yes, every round" : Met(median) ? "median only" : "**no**";
            md.AppendLine(Inv, $"| {what} | {median:F2} | {worst:F2} | {string.Join(" · ", ratios.Select(r => r.ToString("F2", Inv)))} | {(atMost ? "≤" : "≥")} {target:F2} | {met} |");
        }
        List<double> Ratio(string mode, string anchor, string kind) =>
            [.. Rounds(mode, kind).Zip(Rounds(anchor, kind), (a, b) => a.Rate / b.Rate)];
        Goal("Herd round robin ÷ Kestrel single, close", Ratio("herd-rr", "kestrel-single", "close"), 0.95);
        Goal("Herd round robin ÷ Kestrel single with the same runtime settings, close", Ratio("herd-rr", "kestrel-tuned", "close"), 0.95);
        Goal("Herd round robin ÷ Node round robin, close", Ratio("herd-rr", "node-rr", "close"), 2.0);
        Goal("Herd shared handle ÷ Kestrel single, close", Ratio("herd-shared", "kestrel-single", "close"), 1.0);
        Goal("Herd reuse-port ÷ Kestrel single, close", Ratio("herd-reuseport", "kestrel-single", "close"), 1.0);
        Goal("Herd round robin ÷ Kestrel single, keep-alive", Ratio("herd-rr", "kestrel-single", "keepalive"), 0.95);
        foreach (var mode in measured.Where(m => m.StartsWith("herd", StringComparison.Ordinal)))
        {
            var all = Rounds(mode, "close").Select(r => r.Rate).ToList();
            Goal($"{Names[mode]}: slowest ÷ fastest round, close", [all.Min() / all.Max()], Steady);
        }

        var shares = File.ReadLines(Path.Combine(results, "shares")).Select(l => l.Split(' '))
            .GroupBy(f => f[0], f => Num(f[2])).ToDictionary(g => g.Key, g => g.ToList());
        if (shares.TryGetValue("herd-rr", out var rr)) Goal("Herd round robin, max ÷ min share of connections", [rr.Max() / rr.Min()], 1.05, atMost: true);

        var handoff = File.ReadLines(Path.Combine(results, "handoff")).Select(l => l.Split(' ')).GroupBy(f => f[0], f => f[1..].Select(Num).ToArray())
            .ToDictionary(g => g.Key, g => g.ToList());
        var (direct, handed, cpu) = (handoff["direct"], handoff["handoff"], handoff["primary-cpu"]);
        Goal("The handoff: primary → worker ÷ direct accept", [.. handed.Zip(direct, (h, d) => h[0] / d[0])], 0.85);

        var steady = Seconds(Path.Combine(results, "window-steady"));
        var reload = Seconds(Path.Combine(results, "window-reload"));
        var (before, slow, lost) = Recovery(reload);
        Goal("A reload: seconds until back at 90% of the rate before it", [slow], 2, atMost: true);

        md.AppendLine().AppendLine("## Fairness").AppendLine();
        md.AppendLine("Connections per worker, new connection per request (`GET /pid`).").AppendLine();
        md.AppendLine("| mode | connections | per worker | max ÷ min |").AppendLine("|---|---:|---|---:|");
        foreach (var (mode, counts) in shares)
            md.AppendLine(Inv, $"| {Names[mode]} | {counts.Sum():N0} | {string.Join(" / ", counts.Select(c => c.ToString("N0", Inv)))} | {(counts.Count < 2 ? double.PositiveInfinity : counts.Max() / counts.Min()):F3} |");

        LeastBusy(md, File.ReadAllText(Path.Combine(results, "slow")).Trim(), Median("slow-rr", "close"), Median("slow-leastbusy", "close"),
            $"wrk -t1 -c{connections} -d{seconds}s with `Connection: close`, the median of {rounds} alternating round(s)");

        var herd = Soak.Read(Path.Combine(results, "soak"));
        var node = Soak.Read(Path.Combine(results, "soak-node"));
        md.AppendLine().AppendLine("## The primary").AppendLine();
        md.AppendLine(Inv, $"HelloCluster's primary (a JIT'd .NET app that forks), round robin, {herd.Connections:N0} new connections at {herd.Rate:N0} a second: RSS {herd.Start:F1} MB before, {herd.Mid:F1} MB halfway, {herd.End:F1} MB after (flat is the goal; `bench/primary.sh` measures the `herd` CLI's primary, JIT and Native AOT).");
        md.AppendLine(Inv, $"Node's round-robin primary, {node.Connections:N0} connections at {node.Rate:N0} a second, in the same run: RSS {node.Start:F1} MB before, {node.Mid:F1} MB halfway, {node.End:F1} MB after. Herd's ÷ Node's, after: {herd.End / node.End:F2}.");
        md.AppendLine(Inv, $"Its CPU: {herd.CpuPercentPer10k:F1}% of one core per 10,000 connections a second (Node's primary: {node.CpuPercentPer10k:F1}%).");

        md.AppendLine().AppendLine("## Handoff").AppendLine();
        md.AppendLine("32 clients connect and wait for the server to close; the server accepts and closes at once, either in one process (direct) or in two workers that the primary hands each connection to. Both are warmed, then measured in alternating rounds. The primary's CPU is read from its own threads.").AppendLine();
        md.AppendLine("| round | direct connections/s | p50 ms | p99 ms | primary → worker connections/s | p50 ms | p99 ms | ÷ direct | primary's connections per CPU second |");
        md.AppendLine("|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
        for (int i = 0; i < direct.Count; i++)
            md.AppendLine(Inv, $"| {i + 1} | {direct[i][0]:N0} | {direct[i][1]:F3} | {direct[i][2]:F3} | {handed[i][0]:N0} | {handed[i][1]:F3} | {handed[i][2]:F3} | {handed[i][0] / direct[i][0]:F2} | {cpu[i][1] / Math.Max(cpu[i][0], 0.001):N0} |");

        md.AppendLine().AppendLine("## A reload under load").AppendLine();
        md.AppendLine(Inv, $"`herd run -i 2` on the same sample, wrk -t1 -c{connections} Connection: close for {steady.Count} s, saturating both cores: once without a reload, then with `herd reload` a third of the way in (a rolling replacement: each new worker is started, waits to be ready, then the old one drains). Requests per second:").AppendLine();
        md.AppendLine("| window | total | every second | median before the reload | seconds until back at 90% | seconds' worth of requests lost |").AppendLine("|---|---:|---|---:|---:|---:|");
        md.AppendLine(Inv, $"| steady | {steady.Sum():N0} | {string.Join(" ", steady.Select(n => n.ToString("N0", Inv)))} | | | |");
        md.AppendLine(Inv, $"| with a reload | {reload.Sum():N0} | {string.Join(" ", reload.Select(n => n.ToString("N0", Inv)))} | {before:N0} | {slow} | {lost:F2} |");
        md.AppendLine().AppendLine(Inv, $"Requests lost: the seconds after the reload, each short of the median second before it, summed as a fraction of that second. The whole window with the reload ÷ without: {reload.Sum() / (double)steady.Sum():F2}. The first and last seconds are partial.");

        File.WriteAllText(output, md.ToString());
        File.WriteAllText(Path.Combine(Path.GetDirectoryName(output)!, "benchmarks.svg"), Chart(measured.Select(m => (Names[m], Rate(m, "keepalive"), Rate(m, "close"))).ToList()));
        return 0;
    }

    // The reload comes a third of the way in (bench/run.sh): the median second before it, and how many seconds from it
    // until the last one below 90% of that (the final, partial second left out), and the requests lost meanwhile, in
    // seconds' worth of that median.
    private static (double Before, int Slow, double Lost) Recovery(List<long> seconds)
    {
        int reloadAt = seconds.Count / 3;
        var before = seconds.Take(Math.Max(reloadAt, 1)).Skip(reloadAt > 1 ? 1 : 0).Order().ToList(); // the first second is partial, unless it is all there is
        double median = before[before.Count / 2];
        var after = Enumerable.Range(reloadAt, seconds.Count - 1 - reloadAt);
        int last = after.LastOrDefault(i => seconds[i] < 0.9 * median, reloadAt - 1);
        return (median, last - reloadAt + 1, after.Sum(i => Math.Max(0, median - seconds[i]) / median));
    }

    // bench/seconds.lua's "second count" lines, as bench/run.sh kept them.
    private static List<long> Seconds(string path) =>
        [.. File.ReadLines(path).Select(l => l.Split(' ')).OrderBy(f => int.Parse(f[0], Inv)).Select(f => long.Parse(f[1], Inv))];

    // A primary's RSS (kB) and CPU (ticks) read after each 2 s of load, as bench/run.sh's soak_primary wrote them.
    private sealed record Soak(double Connections, double Rate, double Start, double Mid, double End, double CpuPercentPer10k)
    {
        public static Soak Read(string path)
        {
            var lines = File.ReadLines(path).Select(l => l.Split(' ')).ToList();
            var baseline = lines.First(f => f[0] == "baseline");
            var after = lines.Where(f => f[0] == "after").ToList();
            double elapsed = Num(lines.First(f => f[0] == "elapsed")[1]) / 1000;
            double total = Num(after[^1][3]), rate = total / elapsed;
            double cpuSeconds = (Num(after[^1][2]) - Num(baseline[2])) / 100;
            return new Soak(total, rate, Num(baseline[1]) / 1024, Num(after[after.Count / 2][1]) / 1024, Num(after[^1][1]) / 1024,
                cpuSeconds / elapsed * 100 / (rate / 10000));
        }
    }

    // Round robin against least busy, with one worker slowed by the sample's options (as bench/run.sh passed them).
    private static void LeastBusy(StringBuilder md, string slowArgs, Run roundRobin, Run leastBusy, string load)
    {
        var words = slowArgs.Split(' ');
        int Arg(string name) => int.Parse(words[Array.IndexOf(words, name) + 1], Inv);
        int delay = Arg("--delay"), factor = Arg("--slow-worker");
        double p99Ratio = roundRobin.P99 / leastBusy.P99;
        md.AppendLine().AppendLine("## Least-busy dispatch").AppendLine();
        md.AppendLine(Inv, $"Two workers, one slow: `samples/HelloCluster {slowArgs}`. Each request waits {delay} ms, {delay * factor} ms on worker 1, and a worker waits on at most {Arg("--concurrency")} requests at a time while the rest queue, so worker 1 also serves {factor} times fewer.");
        md.AppendLine(Inv, $"{load}. Keep-alive is not compared: wrk opens its connections once, while both workers are idle, and either policy splits them evenly.").AppendLine();
        md.AppendLine("| policy | req/s | p50 ms | p99 ms |").AppendLine("|---|---:|---:|---:|");
        foreach (var run in new[] { roundRobin, leastBusy })
            md.AppendLine(Inv, $"| {Names[run.Mode]} | {run.Rate:N0} | {run.P50:F2} | {run.P99:F2} |");
        md.AppendLine().AppendLine(Inv, $"Round robin's p99 ÷ least busy's: {p99Ratio:F2}: least busy {(p99Ratio > 1 ? "beat" : "did **not** beat")} round robin on p99.");
    }

    // Two panels of horizontal bars, keep-alive and close, since their scales differ by several times.
    private static string Chart(List<(string Name, double KeepAlive, double Close)> rows)
    {
        const int Label = 290, Bar = 260, Row = 24, Top = 40;
        int height = Top + rows.Count * Row + 20;
        var svg = new StringBuilder();
        svg.AppendLine(Inv, $"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{Label + 2 * (Bar + 90)}\" height=\"{height}\" font-family=\"sans-serif\" font-size=\"12\">");
        svg.AppendLine("<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
        void Panel(int x, string title, Func<(string Name, double KeepAlive, double Close), double> value)
        {
            double max = rows.Max(value);
            svg.AppendLine(Inv, $"<text x=\"{x}\" y=\"20\" font-weight=\"bold\">{title}</text>");
            for (int i = 0; i < rows.Count; i++)
            {
                double v = value(rows[i]);
                int width = double.IsNaN(v) ? 0 : (int)(v / max * Bar);
                string fill = rows[i].Name.StartsWith("Herd", StringComparison.Ordinal) ? "#2a7ab0" : rows[i].Name.StartsWith("Kestrel", StringComparison.Ordinal) ? "#7a7a7a" : "#8cc084";
                int y = Top + i * Row;
                svg.AppendLine(Inv, $"<rect x=\"{x}\" y=\"{y}\" width=\"{width}\" height=\"{Row - 6}\" fill=\"{fill}\"/>");
                svg.AppendLine(Inv, $"<text x=\"{x + width + 4}\" y=\"{y + 13}\">{v:N0}</text>");
            }
        }
        for (int i = 0; i < rows.Count; i++)
            svg.AppendLine(Inv, $"<text x=\"{Label - 8}\" y=\"{Top + i * Row + 13}\" text-anchor=\"end\">{rows[i].Name}</text>");
        Panel(Label, "keep-alive, req/s", r => r.KeepAlive);
        Panel(Label + Bar + 90, "Connection: close, req/s", r => r.Close);
        svg.AppendLine("</svg>");
        return svg.ToString();
    }

    private static double Num(string text) => double.Parse(text, Inv);

    // wrk prints latencies as 812.00us, 1.23ms or 1.01s.
    private static double Millis(string text) =>
        text.EndsWith("us", StringComparison.Ordinal) ? Num(text[..^2]) / 1000
        : text.EndsWith("ms", StringComparison.Ordinal) ? Num(text[..^2])
        : text.EndsWith('s') ? Num(text[..^1]) * 1000
        : Num(text);

    private static string Cpu() =>
        File.ReadLines("/proc/cpuinfo").FirstOrDefault(l => l.StartsWith("model name", StringComparison.Ordinal))?.Split(':', 2)[1].Trim() ?? "unknown CPU";
}
