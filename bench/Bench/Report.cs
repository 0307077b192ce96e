using System.Globalization;
using System.Text;

namespace Herd.Bench;

/// <summary>Turns the figures bench/run.sh collected into docs/benchmarks.md and its chart, ratios first.</summary>
internal static class Report
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    private static readonly string[] Modes = ["node-rr", "node-none", "node-single", "kestrel-single", "herd-rr", "herd-shared", "herd-reuseport"];

    private static readonly Dictionary<string, string> Names = new()
    {
        ["node-rr"] = "Node 20 cluster, round robin (the seed)",
        ["node-none"] = "Node 20 cluster, SCHED_NONE",
        ["node-single"] = "Node 20, single process",
        ["kestrel-single"] = "Kestrel, single process",
        ["herd-rr"] = "Herd round robin",
        ["herd-shared"] = "Herd shared handle",
        ["herd-reuseport"] = "Herd reuse-port",
        ["slow-rr"] = "Herd round robin",
        ["slow-leastbusy"] = "Herd least busy",
    };

    private sealed record Run(string Mode, string Kind, double Rate, double P50, double P99);

    public static int Write(string results, string output, string rounds, string seconds, string warm, string connections)
    {
        var runs = File.ReadLines(Path.Combine(results, "runs")).Select(line => line.Split(' '))
            .Select(f => new Run(f[0], f[1], Num(f[2]), Millis(f[3]), Millis(f[4]))).ToList();
        Run Median(string mode, string kind)
        {
            var these = runs.Where(r => r.Mode == mode && r.Kind == kind).OrderBy(r => r.Rate).ToList();
            return these.Count == 0 ? new Run(mode, kind, double.NaN, double.NaN, double.NaN) : these[these.Count / 2];
        }
        double Rate(string mode, string kind) => Median(mode, kind).Rate;

        var md = new StringBuilder();
        md.AppendLine("# Benchmarks").AppendLine();
        md.AppendLine(Inv, $"Written by `bench/run.sh` on {DateTime.UtcNow:yyyy-MM-dd HH:mm} UTC, on {Environment.ProcessorCount} cores ({Cpu()}).");
        md.AppendLine(Inv, $"wrk -t1 -c{connections} -d{seconds}s against `GET /` (hello world), the median of {rounds} alternating round(s), {(warm == "0" ? "no warm-up (a smoke run)" : $"each mode warmed up by {warm} s of Connection: close first")}; two workers wherever there is a cluster.");
        md.AppendLine("Herd runs as a user runs it: `samples/HelloCluster`, Release, its defaults unchanged. Absolute figures move with the machine; the ratios below are measured within this one run.").AppendLine();

        md.AppendLine("| mode | keep-alive req/s | p50 ms | p99 ms | Connection: close req/s | p50 ms | p99 ms |");
        md.AppendLine("|---|---:|---:|---:|---:|---:|---:|");
        var measured = Modes.Where(m => runs.Any(r => r.Mode == m)).ToList(); // --quick measures only some
        foreach (var mode in measured)
        {
            var ka = Median(mode, "keepalive");
            var close = Median(mode, "close");
            md.AppendLine(Inv, $"| {Names[mode]} | {ka.Rate:N0} | {ka.P50:F2} | {ka.P99:F2} | {close.Rate:N0} | {close.P50:F2} | {close.P99:F2} |");
        }
        md.AppendLine().AppendLine("![requests per second, by mode](benchmarks.svg)").AppendLine();

        md.AppendLine("## Goals").AppendLine();
        md.AppendLine("| goal | ratio | target | met |").AppendLine("|---|---:|---:|---|");
        void Goal(string what, double ratio, double target, bool atMost = false) =>
            md.AppendLine(Inv, $"| {what} | {ratio:F2} | {(atMost ? "≤" : "≥")} {target:F2} | {((atMost ? ratio <= target : ratio >= target) ? "yes" : "**no**")} |");
        Goal("Herd round robin, close ÷ Node round robin, close", Rate("herd-rr", "close") / Rate("node-rr", "close"), 2.0);
        Goal("Herd round robin, close ÷ Kestrel single, close", Rate("herd-rr", "close") / Rate("kestrel-single", "close"), 0.9);
        Goal("Herd shared handle, close ÷ Kestrel single, close", Rate("herd-shared", "close") / Rate("kestrel-single", "close"), 1.0);
        Goal("Herd round robin, keep-alive ÷ Kestrel single, keep-alive", Rate("herd-rr", "keepalive") / Rate("kestrel-single", "keepalive"), 0.95);
        Goal("Herd round robin, keep-alive ÷ Node round robin, keep-alive", Rate("herd-rr", "keepalive") / Rate("node-rr", "keepalive"), 1.0);

        var shares = File.ReadLines(Path.Combine(results, "shares")).Select(l => l.Split(' '))
            .GroupBy(f => f[0], f => Num(f[2])).ToDictionary(g => g.Key, g => g.ToList());
        if (shares.TryGetValue("herd-rr", out var rr)) Goal("Herd round robin, max ÷ min share of connections", rr.Max() / rr.Min(), 1.05, atMost: true);

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
        md.AppendLine(Inv, $"Round robin, {herd.Connections:N0} new connections at {herd.Rate:N0} a second: RSS {herd.Start:F1} MB before, {herd.Mid:F1} MB halfway, {herd.End:F1} MB after (target: at most 40 MB, and flat).");
        md.AppendLine(Inv, $"Node's round-robin primary, {node.Connections:N0} connections at {node.Rate:N0} a second, in the same run: RSS {node.Start:F1} MB before, {node.Mid:F1} MB halfway, {node.End:F1} MB after. Herd's ÷ Node's, after: {herd.End / node.End:F2}.");
        md.AppendLine(Inv, $"Its CPU: {herd.CpuPercentPer10k:F1}% of one core per 10,000 connections a second (Node's primary: {node.CpuPercentPer10k:F1}%).");

        var handoff = File.ReadLines(Path.Combine(results, "handoff")).Select(l => l.Split(' ')).ToDictionary(f => f[0], f => f[1..].Select(Num).ToArray());
        var (direct, handed, cpu) = (handoff["direct"], handoff["handoff"], handoff["primary-cpu"]);
        md.AppendLine().AppendLine("## Handoff").AppendLine();
        md.AppendLine("32 clients connect and wait for the server to close; the server accepts and closes at once, either in one process (direct) or in two workers that the primary hands each connection to. The primary's CPU is read from its own threads.").AppendLine();
        md.AppendLine("| | connections/s | p50 ms | p99 ms |").AppendLine("|---|---:|---:|---:|");
        md.AppendLine(Inv, $"| direct accept | {direct[0]:N0} | {direct[1]:F3} | {direct[2]:F3} |");
        md.AppendLine(Inv, $"| primary → worker | {handed[0]:N0} | {handed[1]:F3} | {handed[2]:F3} |");
        md.AppendLine().AppendLine(Inv, $"The handoff adds {handed[1] - direct[1]:F3} ms at p50 and {handed[2] - direct[2]:F3} ms at p99. The primary spent {cpu[0]:F2} s of CPU on {cpu[1]:N0} connections: one core hands off about {cpu[1] / Math.Max(cpu[0], 0.001):N0} connections a second.");

        File.WriteAllText(output, md.ToString());
        File.WriteAllText(Path.Combine(Path.GetDirectoryName(output)!, "benchmarks.svg"), Chart(measured.Select(m => (Names[m], Rate(m, "keepalive"), Rate(m, "close"))).ToList()));
        return 0;
    }

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
