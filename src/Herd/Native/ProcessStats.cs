using System.Globalization;

namespace Herd.Native;

/// <summary>What the kernel says of a process in /proc, read in one place. A process that is gone reads as zero.</summary>
internal static class ProcessStats
{
    // /proc/<pid>/stat's times are in clock ticks, USER_HZ, which Linux fixes at 100 for user space.
    private const double TicksPerSecond = 100;

    /// <summary>Resident memory in bytes (statm's second field, in pages).</summary>
    public static long ResidentBytes(int pid) =>
        Read(pid, "statm", statm => long.Parse(statm.Split(' ')[1], CultureInfo.InvariantCulture) * Environment.SystemPageSize);

    /// <summary>CPU time in user and kernel mode, in seconds (stat's utime and stime).</summary>
    public static double CpuSeconds(int pid) => Read(pid, "stat", stat =>
    {
        // The command name, in parentheses, may hold spaces: fields are counted after its closing one.
        var fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        return (double.Parse(fields[11], CultureInfo.InvariantCulture) + double.Parse(fields[12], CultureInfo.InvariantCulture)) / TicksPerSecond;
    });

    private static T Read<T>(int pid, string file, Func<string, T> parse) where T : struct
    {
        try
        {
            return parse(File.ReadAllText($"/proc/{pid}/{file}"));
        }
        catch (IOException)
        {
            return default;
        }
    }
}
