using Herd.Child;
using Microsoft.Extensions.Logging;

namespace Herd;

/// <summary>
/// The cluster, as Node's <c>cluster</c> module: the same program runs as the primary, which forks workers, and as
/// each worker, which serves. A process is a worker when it was forked by a primary; otherwise it is the primary.
/// </summary>
/// <example>
/// <code>
/// if (Cluster.IsPrimary)
/// {
///     for (int i = 0; i &lt; Environment.ProcessorCount; i++) Cluster.Fork();
///     Cluster.Exit += (worker, exit) =&gt; Console.WriteLine($"worker {worker.Process.Id} died");
/// }
/// else
/// {
///     await using var server = await ClusterSocket.ListenAsync(new IPEndPoint(IPAddress.Any, 8000));
///     while (true) Serve(await server.AcceptAsync());
/// }
/// </code>
/// </example>
public static class Cluster
{
    // Read before SetupWorker clears the worker's variables, so the answer never changes.
    private static readonly bool s_isWorker = Environment.GetEnvironmentVariable(ChildCluster.IdVariable) is not null;
    private static readonly Lazy<ChildCluster?> s_child = new(ChildCluster.TryStart);
    private static readonly Lazy<ClusterPrimary> s_primary = new(() => IsWorker
        ? throw new InvalidOperationException("This process is a worker; only the primary forks and manages workers.")
        : new ClusterPrimary());
    private static ILogger? s_logger; // the app's, once it sets one: nothing of Herd's replaces it
    private static ILogger s_defaultLogger = new StderrLogger();

    /// <summary>True in the primary: any process not forked by a Herd primary.</summary>
    public static bool IsPrimary => !IsWorker;

    /// <summary>True in a process forked by a Herd primary.</summary>
    public static bool IsWorker => s_isWorker;

    /// <summary>
    /// This worker (Node's <c>cluster.worker</c>). Only in a worker. The first use connects it to the primary, which
    /// then sees it online; <c>UseHerd()</c> and <see cref="ClusterSocket"/> do so too.
    /// </summary>
    public static CurrentWorker Worker => SetupWorker()?.Worker ?? throw new InvalidOperationException("This process is not a worker.");

    /// <summary>The process's primary, which the static members below use. Only in the primary.</summary>
    public static ClusterPrimary Primary => s_primary.Value;

    /// <summary>
    /// Where Herd logs. The app owns it: until the app sets it, warnings and errors go to stderr, or, under
    /// Herd.AspNetCore, through the host's logging, which never replaces a logger the app set.
    /// </summary>
    public static ILogger Logger
    {
        get => Volatile.Read(ref s_logger) ?? Volatile.Read(ref s_defaultLogger);
        set => Volatile.Write(ref s_logger, value ?? throw new ArgumentNullException(nameof(value)));
    }

    /// <summary>Herd.AspNetCore's hosted service: Herd logs through the host's logging unless the app set <see cref="Logger"/>.</summary>
    internal static void LogThroughHost(ILogger logger) => Volatile.Write(ref s_defaultLogger, logger);

    /// <summary>The worker's side of the cluster, started by the first caller (Node's <c>_setupWorker</c>); null in the primary.</summary>
    internal static ChildCluster? Child => SetupWorker();

    // The one place a worker starts: sets its death signal, takes Herd's variables out of the environment, starts the
    // channel's thread and says online. Every way into Herd in a worker (Worker, ClusterSocket, UseHerd, the startup
    // hook's hosting startup, which calls UseHerd) comes through here.
    private static ChildCluster? SetupWorker() => s_isWorker ? s_child.Value : null;

    /// <inheritdoc cref="ClusterPrimary.SchedulingPolicy"/>
    public static SchedulingPolicy SchedulingPolicy
    {
        get => Primary.SchedulingPolicy;
        set => Primary.SchedulingPolicy = value;
    }

    /// <inheritdoc cref="ClusterPrimary.Settings"/>
    public static ClusterSettings Settings => Primary.Settings;

    /// <inheritdoc cref="ClusterPrimary.Workers"/>
    public static IReadOnlyDictionary<int, Worker> Workers => Primary.Workers;

    /// <inheritdoc cref="ClusterPrimary.SetupPrimary"/>
    public static void SetupPrimary(ClusterSettings? settings = null) => Primary.SetupPrimary(settings);

    /// <inheritdoc cref="ClusterPrimary.Fork"/>
    public static Worker Fork(IReadOnlyDictionary<string, string?>? env = null) => Primary.Fork(env);

    /// <inheritdoc cref="ClusterPrimary.DisconnectAsync"/>
    public static Task DisconnectAsync(CancellationToken cancellationToken = default) => Primary.DisconnectAsync(cancellationToken);

    /// <inheritdoc cref="ClusterPrimary.Setup"/>
    public static event Action<ClusterSettings>? Setup { add => Primary.Setup += value; remove => Primary.Setup -= value; }

    /// <inheritdoc cref="ClusterPrimary.Forked"/>
    public static event Action<Worker>? Forked { add => Primary.Forked += value; remove => Primary.Forked -= value; }

    /// <inheritdoc cref="ClusterPrimary.Online"/>
    public static event Action<Worker>? Online { add => Primary.Online += value; remove => Primary.Online -= value; }

    /// <inheritdoc cref="ClusterPrimary.Listening"/>
    public static event Action<Worker, ListeningAddress>? Listening { add => Primary.Listening += value; remove => Primary.Listening -= value; }

    /// <inheritdoc cref="ClusterPrimary.Disconnect"/>
    public static event Action<Worker>? Disconnect { add => Primary.Disconnect += value; remove => Primary.Disconnect -= value; }

    /// <inheritdoc cref="ClusterPrimary.Exit"/>
    public static event Action<Worker, WorkerExit>? Exit { add => Primary.Exit += value; remove => Primary.Exit -= value; }

    /// <inheritdoc cref="ClusterPrimary.Message"/>
    public static event Action<Worker, ClusterMessage>? Message { add => Primary.Message += value; remove => Primary.Message -= value; }
}
