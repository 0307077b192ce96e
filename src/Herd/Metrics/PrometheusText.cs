using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace Herd.Metrics;

/// <summary>
/// Prometheus's text exposition format 0.0.4, for families collected in other processes. Written here rather than
/// with prometheus-net: its instruments are filled only by their own calls (a Histogram by Observe, which cannot be
/// given a worker's bucket counts and sum as they are), and OpenTelemetry's Prometheus exporters are still betas.
/// Names follow OpenTelemetry's mapping: dots to underscores, the unit as a suffix (<c>_seconds</c>), <c>_total</c> on counters.
/// </summary>
internal static partial class PrometheusText
{
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    /// <summary>One scrape: each source's families, each point labelled with the source's labels (a worker's id and slot) first.</summary>
    public static string Render(IEnumerable<(KeyValuePair<string, string>[] Labels, IEnumerable<MetricFamily> Families)> sources)
    {
        // One HELP and TYPE per name, whatever the number of processes that report it; a second type for a name is dropped.
        var families = new Dictionary<string, (MetricFamily First, StringBuilder Samples)>(StringComparer.Ordinal);
        var series = new HashSet<string>(StringComparer.Ordinal); // a label set twice in a family (tags that sanitise alike) is a scrape Prometheus rejects
        foreach (var (labels, list) in sources)
        {
            foreach (var family in list)
            {
                var name = NameOf(family);
                if (!families.TryGetValue(name, out var known)) families[name] = known = (family, new StringBuilder());
                else if (known.First.Kind != family.Kind) continue;
                foreach (var point in family.Points)
                {
                    var set = LabelSet(labels, point.Tags);
                    if (series.Add($"{name}{{{set}}}")) WritePoint(known.Samples, name, family, set, point);
                }
            }
        }
        var text = new StringBuilder();
        foreach (var (name, (first, samples)) in families.OrderBy(f => f.Key, StringComparer.Ordinal))
        {
            var help = string.IsNullOrEmpty(first.Description) ? first.Name : first.Description;
            text.Append("# HELP ").Append(name).Append(' ').Append(help.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal)).Append('\n');
            text.Append("# TYPE ").Append(name).Append(' ').Append(first.Kind switch { MetricKind.Counter => "counter", MetricKind.Histogram => "histogram", _ => "gauge" }).Append('\n');
            text.Append(samples);
        }
        return text.ToString();
    }

    /// <summary>The family's name in Prometheus: <c>http.server.request.duration</c> in seconds is <c>http_server_request_duration_seconds</c>.</summary>
    public static string NameOf(MetricFamily family)
    {
        var name = Sanitize(family.Name, colons: true);
        if (UnitSuffix(family.Unit) is { } unit && !name.EndsWith("_" + unit, StringComparison.Ordinal)) name += "_" + unit;
        if (family.Kind == MetricKind.Counter && !name.EndsWith("_total", StringComparison.Ordinal)) name += "_total";
        // A gauge named like a histogram's series (dotnet.assembly.count) would read as one: promtool rejects it.
        if (family.Kind == MetricKind.Gauge && HistogramSuffix().IsMatch(name)) name += "_value";
        return name;
    }

    private static string? UnitSuffix(string? unit)
    {
        // Annotations ({request}) say what is counted, not a unit; "1" is a ratio's.
        var plain = unit is null ? "" : Annotation().Replace(unit, "");
        return plain switch
        {
            "" or "1" => null,
            "s" => "seconds",
            "ms" => "milliseconds",
            "us" => "microseconds",
            "ns" => "nanoseconds",
            "min" => "minutes",
            "h" => "hours",
            "By" => "bytes",
            "KiBy" => "kibibytes",
            "MiBy" => "mebibytes",
            "%" => "percent",
            _ => Sanitize(plain, colons: false).Trim('_') is { Length: > 0 } other ? other : null,
        };
    }

    private static void WritePoint(StringBuilder text, string name, MetricFamily family, string set, MetricPoint point)
    {
        if (family.Kind != MetricKind.Histogram)
        {
            Sample(text, name, set, null, point.Value);
            return;
        }
        if (family.Bounds is not { } bounds || point.Buckets is not { } buckets || buckets.Length != bounds.Length + 1) return; // not a histogram's point
        long cumulative = 0;
        for (int i = 0; i < bounds.Length; i++)
        {
            cumulative += buckets[i];
            Sample(text, name + "_bucket", set, Number(bounds[i]), cumulative);
        }
        cumulative += buckets[^1];
        Sample(text, name + "_bucket", set, "+Inf", cumulative);
        Sample(text, name + "_sum", set, null, point.Sum);
        Sample(text, name + "_count", set, null, cumulative);
    }

    private static void Sample(StringBuilder text, string name, string labels, string? le, double value)
    {
        text.Append(name);
        if (labels.Length > 0 || le is not null)
        {
            text.Append('{').Append(labels);
            if (le is not null) text.Append(labels.Length > 0 ? "," : "").Append("le=\"").Append(le).Append('"');
            text.Append('}');
        }
        text.Append(' ').Append(Number(value)).Append('\n');
    }

    // The source's labels win over a tag of the same name; a tag whose name sanitises onto another's is dropped.
    private static string LabelSet(KeyValuePair<string, string>[] labels, Dictionary<string, string> tags)
    {
        var seen = new HashSet<string>(StringComparer.Ordinal) { "le" };
        var text = new StringBuilder();
        foreach (var (key, value) in labels.Concat(tags))
        {
            var name = Sanitize(key, colons: false);
            if (name.StartsWith("__", StringComparison.Ordinal) || !seen.Add(name)) continue;
            if (text.Length > 0) text.Append(',');
            text.Append(name).Append("=\"").Append(EscapeLabel(value)).Append('"');
        }
        return text.ToString();
    }

    public static string EscapeLabel(string value) =>
        value.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);

    /// <summary>A name Prometheus takes: [a-zA-Z_:][a-zA-Z0-9_:]* (labels without colons); anything else becomes an underscore.</summary>
    public static string Sanitize(string name, bool colons)
    {
        var text = new StringBuilder(name.Length + 1);
        if (name.Length == 0 || char.IsAsciiDigit(name[0])) text.Append('_');
        foreach (var c in name) text.Append(char.IsAsciiLetterOrDigit(c) || c == '_' || (colons && c == ':') ? c : '_');
        return text.ToString();
    }

    private static string Number(double value) =>
        double.IsNaN(value) ? "NaN" : double.IsPositiveInfinity(value) ? "+Inf" : double.IsNegativeInfinity(value) ? "-Inf" : value.ToString("R", CultureInfo.InvariantCulture);

    [GeneratedRegex("_(count|sum|bucket)$")]
    private static partial Regex HistogramSuffix();

    [GeneratedRegex(@"\{[^}]*\}")]
    private static partial Regex Annotation();
}
