using System.Globalization;

namespace Herd.Tests;

/// <summary>samples/Chat under herd run, driven by two headless Chromium pages.</summary>
public sealed class ChatSampleTests
{
    [ChromiumFact]
    public async Task A_message_from_one_browser_reaches_another_served_by_another_worker()
    {
        await using var herd = await CliTests.HerdRun.StartAsync(workers: 2, """{ "policy": "sticky" }""",
            command: port => ["dotnet", TestCluster.ChatDll, "--urls", $"http://127.0.0.1:{port}"]);
        var page = new Uri($"http://127.0.0.1:{herd.Port}/");
        await using var chromium = await Chromium.StartAsync();

        // New pages, each in a browser context of its own, until two are held by different workers (round robin makes it
        // the second, unless the pages' own connections fell otherwise).
        var byWorker = new Dictionary<int, string>();
        for (int i = 0; i < 8 && byWorker.Count < 2; i++)
        {
            var session = await chromium.OpenAsync(page);
            await chromium.WhenDefinedAsync(session, "chat");
            int worker = (await chromium.EvaluateAsync(session, "chat.ready"))!.GetValue<int>();
            byWorker.TryAdd(worker, session);
        }
        Assert.Equal(2, byWorker.Count);
        var workers = await herd.LsAsync();
        Assert.All(byWorker.Keys, worker => Assert.Contains(worker, workers));
        var ((workerA, a), (workerB, b)) = (byWorker.First(), byWorker.Last());
        Assert.Equal(workerB.ToString(CultureInfo.InvariantCulture), (await chromium.EvaluateAsync(b, "document.getElementById('worker').textContent"))!.GetValue<string>());

        await chromium.EvaluateAsync(a, "chat.send('alice', 'hello from a browser on another worker')");
        var seen = (await chromium.EvaluateAsync(b, "chat.waitFor('hello from a browser on another worker')"))!;
        Assert.Equal("alice", seen["name"]!.GetValue<string>());
        Assert.Equal(workerA, seen["worker"]!.GetValue<int>());
        var shown = (await chromium.EvaluateAsync(b, "document.getElementById('messages').textContent"))!.GetValue<string>();
        Assert.Contains($"alice: hello from a browser on another worker (via worker {workerA})", shown, StringComparison.Ordinal);
    }
}
