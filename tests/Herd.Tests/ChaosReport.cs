namespace Herd.Tests;

/// <summary>
/// The record of a chaos run: one line per scenario, appended to the file HERD_CHAOS_REPORT names (when it names one),
/// so that a longer run with bigger numbers leaves its figures in one place.
/// </summary>
internal static class ChaosReport
{
    private static readonly Lock s_gate = new();

    /// <summary>Appends <c>scenario: figure</c> to the report, if there is one, and returns that line for the test's own output.</summary>
    public static string Append(string scenario, string figure)
    {
        var line = $"{scenario}: {figure}";
        if (Environment.GetEnvironmentVariable("HERD_CHAOS_REPORT") is { Length: > 0 } path)
        {
            lock (s_gate) File.AppendAllText(path, line + Environment.NewLine);
        }
        return line;
    }
}
