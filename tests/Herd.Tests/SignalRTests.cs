using System.Collections.Concurrent;
using System.Globalization;
using Microsoft.AspNetCore.Http.Connections;
using Microsoft.AspNetCore.SignalR.Client;

namespace Herd.Tests;

/// <summary>
/// SignalR's .NET client, with its default options, against apps under <c>herd run -i 2</c>: one that
/// knows nothing of Herd, and one that calls UseHerd() and AddSignalR().AddHerd(). Every transport, http and https.
/// </summary>
public sealed class SignalRTests
{
    private const int Clients = 20;

    public static TheoryData<string, string, bool> Cases() => new()
    {
        { "plain", "default", false },
        { "plain", "WebSockets", false },
        { "plain", "ServerSentEvents", false },
        { "plain", "LongPolling", false },
        { "plain", "default", true },
        { "plain", "WebSockets", true },
        { "plain", "ServerSentEvents", true },
        { "plain", "LongPolling", true },
        { "useherd", "default", false },
        { "useherd", "LongPolling", false },
        { "useherd", "ServerSentEvents", true },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Twenty_clients_connect_invoke_and_receive_broadcasts_across_two_workers(string app, string transport, bool https)
    {
        // No policy chosen: herd sees that the app uses SignalR and routes its clients stickily by itself.
        await using var cluster = await SignalRCluster.StartAsync(app == "plain" ? TestCluster.SignalRAppDll : TestCluster.TestWebAppDll, https, policy: null);
        var kind = transport == "default" ? (HttpTransportType?)null : Enum.Parse<HttpTransportType>(transport);
        await using var clients = await cluster.ConnectAsync(Clients, kind);

        var workers = await cluster.Herd.LsAsync();
        var pids = clients.Pids;
        Assert.All(pids, pid => Assert.Contains(pid, workers));
        Assert.Equal(2, pids.Distinct().Count()); // spread over both workers: round robin over http, source addresses over https

        await clients[0].Connection.InvokeAsync("Broadcast", "to all");
        await clients.AllReceiveAsync("to all");

        // A group whose members are on both workers, joined from either side, hears a message sent from either.
        var (a, b) = clients.OnTwoWorkers();
        await a.Connection.InvokeAsync("Join", "room");
        await b.Connection.InvokeAsync("Join", "room");
        await b.Connection.InvokeAsync("ToGroup", "room", "to the room");
        Assert.Equal(b.Pid, await a.NextAsync("to the room"));
        Assert.Equal(b.Pid, await b.NextAsync("to the room"));
    }

    [Fact]
    public async Task Group_changes_and_single_connections_reach_a_client_on_another_worker()
    {
        await using var cluster = await SignalRCluster.StartAsync(TestCluster.SignalRAppDll, https: false, "sticky");
        await using var clients = await cluster.ConnectAsync(4, HttpTransportType.WebSockets);
        var (a, b) = clients.OnTwoWorkers();
        var idOfB = await b.Connection.InvokeAsync<string>("ConnectionId");

        await a.Connection.InvokeAsync("ToConnection", idOfB, "to b");
        Assert.Equal(a.Pid, await b.NextAsync("to b"));

        await a.Connection.InvokeAsync("JoinFor", idOfB, "added by a");
        await a.Connection.InvokeAsync("ToGroup", "added by a", "to the group");
        Assert.Equal(a.Pid, await b.NextAsync("to the group"));

        await a.Connection.InvokeAsync("ToOthers", "to the others");
        Assert.Equal(a.Pid, await b.NextAsync("to the others"));
    }

    [Fact]
    public async Task Negotiate_responses_the_app_compresses_still_route_the_clients_back()
    {
        await using var cluster = await SignalRCluster.StartAsync(TestCluster.SignalRAppDll, https: false, "sticky");
        await using var clients = await cluster.ConnectAsync(Clients, HttpTransportType.WebSockets, gzip: true);
        Assert.Equal(2, clients.Pids.Distinct().Count());
        await clients[0].Connection.InvokeAsync("Broadcast", "compressed");
        await clients.AllReceiveAsync("compressed");
    }

    [Fact]
    public async Task A_client_whose_worker_dies_reconnects_to_another_and_hears_broadcasts_again()
    {
        await using var cluster = await SignalRCluster.StartAsync(TestCluster.SignalRAppDll, https: false, "sticky");
        await using var clients = await cluster.ConnectAsync(4, HttpTransportType.LongPolling, reconnect: true);
        var (a, b) = clients.OnTwoWorkers();
        var reconnected = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        a.Connection.Reconnected += _ =>
        {
            reconnected.TrySetResult();
            return Task.CompletedTask;
        };

        Native.Fd.Kill(a.Pid, (int)UnixSignal.SIGKILL);
        await reconnected.Task.WaitAsync(TestCluster.Timeout);

        int now = await a.Connection.InvokeAsync<int>("Pid");
        Assert.NotEqual(a.Pid, now);
        await b.Connection.InvokeAsync("Broadcast", "after the death");
        Assert.Equal(b.Pid, await a.NextAsync("after the death"));
    }

    /// <summary>A herd run of a SignalR app on a free port, over http or https (a certificate the test makes).</summary>
    internal sealed class SignalRCluster : IAsyncDisposable
    {
        private readonly string? _certificatePath;

        private SignalRCluster(CliTests.HerdRun herd, Uri hub, System.Security.Cryptography.X509Certificates.X509Certificate2? certificate, string? certificatePath)
        {
            Herd = herd;
            Hub = hub;
            Certificate = certificate;
            _certificatePath = certificatePath;
        }

        public CliTests.HerdRun Herd { get; }

        public Uri Hub { get; }

        public System.Security.Cryptography.X509Certificates.X509Certificate2? Certificate { get; }

        public static async Task<SignalRCluster> StartAsync(string dll, bool https, string? policy, int workers = 2)
        {
            var (certificate, path) = https ? SignalRClients.CreateCertificate() : default;
            string scheme = https ? "https" : "http";
            int port = 0;
            var herd = await CliTests.HerdRun.StartAsync(workers, policy is null ? null : $$"""{ "policy": "{{policy}}" }""",
                command: free => ["dotnet", dll, "--urls", $"{scheme}://127.0.0.1:{port = free}"],
                https ? [("Kestrel__Certificates__Default__Path", path!)] : []);
            return new SignalRCluster(herd, new Uri($"{scheme}://127.0.0.1:{port}/hub"), certificate, path);
        }

        /// <summary>Starts <paramref name="count"/> clients at once and asks each which worker holds it.</summary>
        public async Task<ClientSet> ConnectAsync(int count, HttpTransportType? transport, bool reconnect = false, bool gzip = false)
        {
            var clients = new ClientSet([.. Enumerable.Range(0, count).Select(i => new Client(SignalRClients.Create(Hub, transport, Certificate, source: i + 2, reconnect, gzip)))]);
            using var deadline = new CancellationTokenSource(TestCluster.Timeout);
            await Task.WhenAll(clients.Select(c => c.Connection.StartAsync(deadline.Token)));
            foreach (var client in clients) client.Pid = await client.Connection.InvokeAsync<int>("Pid", deadline.Token);
            return clients;
        }

        public async ValueTask DisposeAsync()
        {
            await Herd.DisposeAsync();
            Certificate?.Dispose();
            if (_certificatePath is not null) File.Delete(_certificatePath);
        }
    }

    internal sealed class ClientSet(List<Client> clients) : List<Client>(clients), IAsyncDisposable
    {
        public int[] Pids => [.. this.Select(c => c.Pid)];

        public Task AllReceiveAsync(string text) => Task.WhenAll(this.Select(c => c.NextAsync(text)));

        public (Client A, Client B) OnTwoWorkers() => (this[0], this.First(c => c.Pid != this[0].Pid));

        public async ValueTask DisposeAsync()
        {
            await Task.WhenAll(this.Select(c => c.Connection.DisposeAsync().AsTask())).WaitAsync(TestCluster.Timeout);
        }
    }

    /// <summary>One client and the messages ("message": text, sender's pid) it received.</summary>
    internal sealed class Client
    {
        private readonly ConcurrentDictionary<string, TaskCompletionSource<int>> _received = new();

        public Client(HubConnection connection)
        {
            Connection = connection;
            connection.On<string, int>("message", (text, pid) => Received(text).TrySetResult(pid));
        }

        public HubConnection Connection { get; }

        public int Pid { get; set; }

        /// <summary>The pid of the worker that sent <paramref name="text"/>, once this client has it.</summary>
        public Task<int> NextAsync(string text) => Received(text).Task.WaitAsync(TestCluster.Timeout);

        private TaskCompletionSource<int> Received(string text) => _received.GetOrAdd(text, _ => new(TaskCreationOptions.RunContinuationsAsynchronously));

        public override string ToString() => Pid.ToString(CultureInfo.InvariantCulture);
    }
}
