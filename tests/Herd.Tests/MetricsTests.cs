using System.Collections.Concurrent;
using System.Diagnostics.Metrics;

namespace Herd.Tests;

/// <summary>The "Herd" meter, as dotnet-counters and OpenTelemetry read it.</summary>
public sealed class MetricsTests
{
    [Fact]
    public async Task The_meter_counts_handed_connections_and_reports_workers()
    {
        await using var cluster = new TestCluster(["serve"]);
        var (worker, address) = await cluster.ForkListeningAsync();
        var longs = new ConcurrentQueue<(string Name, long Value)>();
        var ints = new ConcurrentQueue<(string Name, int Value, string? State)>();
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == "Herd") l.EnableMeasurementEvents(instrument);
            },
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, _, _) => longs.Enqueue((instrument.Name, value)));
        listener.SetMeasurementEventCallback<int>((instrument, value, tags, _) =>
            ints.Enqueue((instrument.Name, value, tags.ToArray().FirstOrDefault(t => t.Key == "state").Value as string)));
        listener.Start();

        for (int i = 0; i < 5; i++) Assert.Equal(worker.Process.Id, await Client.PidOfAsync(address.EndPoint));
        listener.RecordObservableInstruments();

        // Other tests' clusters run in this process too: count at least ours.
        Assert.True(longs.Where(m => m.Name == "herd.connections.handed").Sum(m => m.Value) >= 5);
        Assert.Contains(ints, m => m.Name == "herd.workers" && m.State == "listening" && m.Value >= 1);
        Assert.Contains(ints, m => m.Name == "herd.connections.queued");
    }
}
