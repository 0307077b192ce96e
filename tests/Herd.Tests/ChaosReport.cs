using Xunit.Abstractions;

namespace Herd.Tests;

/// <summary>
/// The chaos tests' figures and sizes. CI runs the short defaults; bench/chaos.sh sets HERD_CHAOS_* for the long
/// forms and HERD_CHAOS_REPORT to collect one line per scenario.
/// </summary>
internal static class ChaosReport
{
    private static readonly Lock s_gate = new();

    /// <summary>A size from HERD_CHAOS_<paramref name="name"/>, or the CI default.</summary>
    public static int Setting(string name, int ciDefault) =>
        int.TryParse(Environment.GetEnvironmentVariable($"HERD_CHAOS_{name}"), System.Globalization.CultureInfo.InvariantCulture, out int value) ? value : ciDefault;

    /// <summary>Writes a scenario's figure to the test output, and to the report file if there is one.</summary>
    public static void Append(ITestOutputHelper output, string scenario, string figure)
    {
        output.WriteLine($"{scenario}: {figure}");
        if (Environment.GetEnvironmentVariable("HERD_CHAOS_REPORT") is not { Length: > 0 } path) return;
        lock (s_gate) File.AppendAllText(path, $"{scenario}\t{figure}{Environment.NewLine}");
    }
}
