using System.Collections.Concurrent;
using System.Diagnostics;
using System.Reflection;
using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace Herd.Tests;

/// <summary>A primary in the test process whose workers run Herd.TestWorker, with waits that never outlast <see cref="Timeout"/>.</summary>
internal sealed class TestCluster : IAsyncDisposable
{
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);
    public static string WorkerDll { get; } = Built("TestWorkerDll");

    /// <summary>samples/HelloCluster, built beside the tests: the Kestrel tests run it as a user would.</summary>
    public static string SampleDll { get; } = Built("HelloClusterDll");

    /// <summary>samples/PlainWebApp, an app that knows nothing of Herd.</summary>
    public static string PlainWebAppDll { get; } = Built("PlainWebAppDll");

    /// <summary>tests/Herd.TestWebApp, a web app that calls UseHerd() itself.</summary>
    public static string TestWebAppDll { get; } = Built("TestWebAppDll");

    /// <summary>tests/Herd.SignalRApp, a SignalR app that knows nothing of Herd.</summary>
    public static string SignalRAppDll { get; } = Built("SignalRAppDll");

    /// <summary>samples/Chat, the SignalR chat sample.</summary>
    public static string ChatDll { get; } = Built("ChatDll");

    /// <summary>tests/Herd.GrpcApp, a gRPC app that knows nothing of Herd.</summary>
    public static string GrpcAppDll { get; } = Built("GrpcAppDll");

    /// <summary>The herd command line tool.</summary>
    public static string HerdCliDll { get; } = Built("HerdCliDll");

    // The checkout may sit under a folder only root can enter (/root): then the worker runs from a copy in /tmp.
    public static string WorkerDllNobodyCanRead()
    {
        var folder = Path.GetDirectoryName(WorkerDll)!;
        bool reachable = true;
        for (var dir = new DirectoryInfo(folder); dir is not null; dir = dir.Parent)
            reachable &= File.GetUnixFileMode(dir.FullName).HasFlag(UnixFileMode.OtherExecute);
        if (reachable) return WorkerDll;
        var copy = Path.Combine(Path.GetTempPath(), "herd-nobody-" + Environment.ProcessId);
        Directory.CreateDirectory(copy);
        File.SetUnixFileMode(copy, (UnixFileMode)0b111_101_101);
        foreach (var file in Directory.GetFiles(folder)) File.Copy(file, Path.Combine(copy, Path.GetFileName(file)), overwrite: true);
        return Path.Combine(copy, Path.GetFileName(WorkerDll));
    }

    private static string Built(string key) => typeof(TestCluster).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>().Single(a => a.Key == key).Value!;

    private readonly ConcurrentDictionary<int, TaskCompletionSource<ListeningAddress>> _listening = new();
    private readonly ConcurrentDictionary<int, System.Threading.Channels.Channel<ClusterMessage>> _messages = new();

    public TestCluster(string[] args, SchedulingPolicy policy = SchedulingPolicy.RoundRobin, ClusterSettings? settings = null)
    {
        Primary = new ClusterPrimary((settings ?? new ClusterSettings()).MergedOver(new ClusterSettings { Exec = WorkerDll, Args = args }))
        {
            SchedulingPolicy = policy,
        };
        Primary.Listening += (worker, address) => ListeningOf(worker.Id).TrySetResult(address);
        Primary.Message += (worker, message) => MessagesOf(worker.Id).Writer.TryWrite(message);
    }

    public ClusterPrimary Primary { get; }

    /// <summary>Forks a worker and waits until it listens.</summary>
    public async Task<(Worker Worker, ListeningAddress Address)> ForkListeningAsync(IReadOnlyDictionary<string, string?>? env = null)
    {
        var worker = Primary.Fork(env);
        return (worker, await ListeningAsync(worker));
    }

    /// <summary>Forks <paramref name="count"/> workers and waits until each listens; they share one address.</summary>
    public async Task<(List<Worker> Workers, ListeningAddress Address)> ForkListeningAsync(int count)
    {
        var workers = new List<Worker>();
        ListeningAddress? address = null;
        for (int i = 0; i < count; i++)
        {
            var (worker, listening) = await ForkListeningAsync();
            workers.Add(worker);
            address = listening;
        }
        return (workers, address!);
    }

    /// <summary>Makes <paramref name="connections"/> connections one after another; returns how many each worker took, by pid.</summary>
    public static async Task<Dictionary<int, int>> SharesAsync(IEnumerable<Worker> workers, ListeningAddress address, int connections)
    {
        var counts = workers.ToDictionary(w => w.Process.Id, _ => 0);
        for (int i = 0; i < connections; i++) counts[await Client.PidOfAsync(address.EndPoint)]++;
        return counts;
    }

    public Task<ListeningAddress> ListeningAsync(Worker worker) => ListeningOf(worker.Id).Task.WaitAsync(Timeout);

    public async Task<JsonElement> NextMessageAsync(Worker worker) =>
        (await MessagesOf(worker.Id).Reader.ReadAsync().AsTask().WaitAsync(Timeout)).Body;

    public async ValueTask DisposeAsync() => await Primary.DisposeAsync();

    private TaskCompletionSource<ListeningAddress> ListeningOf(int id) =>
        _listening.GetOrAdd(id, _ => new TaskCompletionSource<ListeningAddress>(TaskCreationOptions.RunContinuationsAsynchronously));

    private System.Threading.Channels.Channel<ClusterMessage> MessagesOf(int id) =>
        _messages.GetOrAdd(id, _ => System.Threading.Channels.Channel.CreateUnbounded<ClusterMessage>());

    public static JsonElement Json(string text) => JsonElement.Parse(text);

    /// <summary>Waits until <paramref name="condition"/> holds, checking every few milliseconds, for at most <see cref="Timeout"/>.</summary>
    public static Task UntilAsync(Func<bool> condition, string what) => UntilAsync(() => Task.FromResult(condition()), what);

    /// <summary>Waits until <paramref name="condition"/> holds, checking every few milliseconds, for at most <see cref="Timeout"/>.</summary>
    public static async Task UntilAsync(Func<Task<bool>> condition, string what)
    {
        var waited = Stopwatch.StartNew();
        while (!await condition())
        {
            if (waited.Elapsed > Timeout) throw new TimeoutException($"Still waiting, after {Timeout}, for {what}.");
            await Task.Delay(10);
        }
    }
}

/// <summary>A client of the test worker's server: on connect the worker writes its pid, then echoes lines.</summary>
internal sealed class Client : IDisposable
{
    private readonly Socket _socket;
    private readonly StreamReader _reader;

    private Client(Socket socket)
    {
        _socket = socket;
        _reader = new StreamReader(new NetworkStream(socket), Encoding.ASCII);
    }

    public static async Task<Client> ConnectAsync(EndPoint endPoint)
    {
        var socket = endPoint is UnixDomainSocketEndPoint
            ? new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified)
            : new Socket(endPoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(endPoint).WaitAsync(TestCluster.Timeout);
        return new Client(socket);
    }

    /// <summary>Connects and returns the pid of the worker that took the connection.</summary>
    public static async Task<int> PidOfAsync(EndPoint endPoint)
    {
        using var client = await ConnectAsync(endPoint);
        return await client.ReadPidAsync();
    }

    public async Task<int> ReadPidAsync() => int.Parse((await ReadLineAsync())!, System.Globalization.CultureInfo.InvariantCulture);

    public async Task<string?> ReadLineAsync() => await _reader.ReadLineAsync().WaitAsync(TestCluster.Timeout);

    public async Task<string?> EchoAsync(string line)
    {
        await _socket.SendAsync(Encoding.ASCII.GetBytes(line + "\n"));
        return await ReadLineAsync();
    }

    public void Dispose()
    {
        _reader.Dispose();
        _socket.Dispose();
    }
}

internal static class Ports
{
    /// <summary>A port free right now on 127.0.0.1.</summary>
    public static int Free()
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)probe.LocalEndPoint!).Port;
    }
}
