namespace Herd;

/// <summary>
/// How the primary starts workers (Node's <c>cluster.settings</c>). Every property left null keeps its earlier
/// value, so successive <see cref="ClusterPrimary.SetupPrimary"/> calls add up, as in Node.
/// </summary>
public sealed record ClusterSettings
{
    /// <summary>The worker program: a .dll run by the dotnet host, or an executable. Default: this program.</summary>
    public string? Exec { get; init; }

    /// <summary>The worker's arguments. Default: this program's arguments.</summary>
    public IReadOnlyList<string>? Args { get; init; }

    /// <summary>The worker's working directory. Default: this process's.</summary>
    public string? WorkingDirectory { get; init; }

    /// <summary>Variables added to (or, when null, removed from) the environment each worker inherits.</summary>
    public IReadOnlyDictionary<string, string?>? Environment { get; init; }

    /// <summary>When true, the worker's stdout and stderr are piped to <see cref="System.Diagnostics.Process"/> instead of inherited.</summary>
    public bool? Silent { get; init; }

    /// <summary>The user id workers run as; a root primary can bind port 80 and hand it to unprivileged workers.</summary>
    public int? Uid { get; init; }

    /// <summary>The group id workers run as.</summary>
    public int? Gid { get; init; }

    /// <summary>
    /// Listening sockets every worker gets as fds 3, 4, … with LISTEN_FDS and LISTEN_PID (systemd's socket activation,
    /// einhorn's model): a worker is then any server that can take a listening socket, has no channel to the primary,
    /// counts as ready once it has run <see cref="PassedReadyAfter"/>, and is asked to leave by SIGTERM.
    /// </summary>
    internal IReadOnlyList<System.Net.Sockets.Socket>? PassedSockets { get; init; }

    /// <summary>How long a worker of <see cref="PassedSockets"/> must run before it counts as ready.</summary>
    internal TimeSpan? PassedReadyAfter { get; init; }

    internal ClusterSettings MergedOver(ClusterSettings older) => new()
    {
        Exec = Exec ?? older.Exec,
        Args = Args ?? older.Args,
        WorkingDirectory = WorkingDirectory ?? older.WorkingDirectory,
        Environment = Environment ?? older.Environment,
        Silent = Silent ?? older.Silent,
        Uid = Uid ?? older.Uid,
        Gid = Gid ?? older.Gid,
        PassedSockets = PassedSockets ?? older.PassedSockets,
        PassedReadyAfter = PassedReadyAfter ?? older.PassedReadyAfter,
    };
}
