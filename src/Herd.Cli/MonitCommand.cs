using System.Globalization;
using Spectre.Console;

namespace Herd.Cli;

/// <summary><c>herd monit</c>: the workers of a running app in a table that redraws every second.</summary>
internal static class MonitCommand
{
    public static async Task<int> RunAsync(string name, bool once, CancellationToken cancellationToken)
    {
        var table = await DrawAsync(name, cancellationToken);
        if (once)
        {
            AnsiConsole.Write(table);
            return 0;
        }
        await AnsiConsole.Live(table).StartAsync(async context =>
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                try
                {
                    await Task.Delay(TimeSpan.FromSeconds(1), cancellationToken);
                }
                catch (OperationCanceledException)
                {
                    return;
                }
                context.UpdateTarget(await DrawAsync(name, cancellationToken));
            }
        });
        return 0;
    }

    private static async Task<Table> DrawAsync(string name, CancellationToken cancellationToken)
    {
        var response = await ControlSocket.SendAsync(name, new LsRequest(), cancellationToken);
        var table = new Table().Title($"herd: {Markup.Escape(name)}  {DateTime.Now:HH:mm:ss}").Border(TableBorder.Rounded);
        foreach (var column in new[] { "id", "slot", "pid", "state", "uptime", "restarts", "reqs", "conns", "cpu", "memory" })
            table.AddColumn(new TableColumn(column).RightAligned().NoWrap());
        foreach (var w in response.Workers ?? [])
        {
            var state = w.State == "listening" ? "[green]listening[/]" : $"[yellow]{Markup.Escape(w.State)}[/]";
            table.AddRow(string.Create(CultureInfo.InvariantCulture, $"{w.Id}"), string.Create(CultureInfo.InvariantCulture, $"{w.Slot}"), string.Create(CultureInfo.InvariantCulture, $"{w.Pid}"), state,
                string.Create(CultureInfo.InvariantCulture, $"{w.UptimeSeconds:0}s"), string.Create(CultureInfo.InvariantCulture, $"{w.Restarts}"),
                string.Create(CultureInfo.InvariantCulture, $"{w.Requests}"), string.Create(CultureInfo.InvariantCulture, $"{w.Connections}"),
                string.Create(CultureInfo.InvariantCulture, $"{w.CpuSeconds:0.0}s"), string.Create(CultureInfo.InvariantCulture, $"{w.MemoryBytes / 1048576.0:0.0} MB"));
        }
        return table;
    }
}
