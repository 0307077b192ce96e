using System.Diagnostics;

namespace Herd.Tests;

/// <summary>
/// docs/cluster-changes.md's claim about Data Protection under <c>herd run -i 2</c>: what one worker protects (a
/// cookie, an antiforgery token) the other reads when the keys are persisted to one folder, even though the two
/// workers started together on an empty one, and not when each keeps ephemeral keys.
/// </summary>
public sealed class DataProtectionTests
{
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task A_payload_one_worker_protects_the_other_reads_only_with_shared_keys(bool persisted)
    {
        var folder = Directory.CreateTempSubdirectory("herd-keys-");
        try
        {
            await using var herd = await CliTests.HerdRun.StartAsync(2, null,
                port => ["dotnet", TestCluster.TestWebAppDll, "--urls", $"http://127.0.0.1:{port}"], ("HERD_TEST_KEYS", persisted ? folder.FullName : "ephemeral"));
            using var http = new HttpClient { Timeout = TestCluster.Timeout };
            http.DefaultRequestHeaders.ConnectionClose = true;
            var origin = new Uri(herd.Uri, "/");
            var protectedBy = (await http.GetStringAsync(new Uri(origin, "protect"))).Split(' ', 2);
            var payload = Uri.EscapeDataString(protectedBy[1]);

            // Ask again on new connections until the other worker answers.
            var clock = Stopwatch.StartNew();
            while (true)
            {
                using var response = await http.GetAsync(new Uri(origin, $"unprotect?payload={payload}"));
                var answer = (await response.Content.ReadAsStringAsync()).Split(' ', 2);
                if (answer[0] != protectedBy[0])
                {
                    Assert.Equal(persisted ? "secret" : "unreadable", answer[1]);
                    break;
                }
                Assert.True(clock.Elapsed < TestCluster.Timeout, "the other worker never answered");
            }
            if (persisted) Assert.NotEmpty(folder.GetFiles("key-*.xml"));
        }
        finally
        {
            folder.Delete(recursive: true);
        }
    }
}
