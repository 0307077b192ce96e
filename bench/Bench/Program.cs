// bench/run.sh's helper: the handoff micro-benchmark, and the report that turns a run's figures into docs/benchmarks.md.
using Herd.Bench;

return args switch
{
    ["handoff", "--seconds", var seconds, "--rounds", var rounds] =>
        await Handoff.RunAsync(int.Parse(seconds, System.Globalization.CultureInfo.InvariantCulture), int.Parse(rounds, System.Globalization.CultureInfo.InvariantCulture)),
    ["handoff-worker"] => await Handoff.WorkerAsync(),
    ["report", var results, var output, var rounds, var seconds, var warm, var connections] => Report.Write(results, output, rounds, seconds, warm, connections),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine("usage: Bench handoff --seconds S --rounds N | report <results-dir> <output.md> <rounds> <seconds> <warm-up seconds> <connections>");
    return 2;
}
