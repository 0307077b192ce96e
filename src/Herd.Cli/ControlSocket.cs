using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Herd.Cli;

/// <summary>
/// One request to a running primary: one type per command, told apart on the wire by <c>"command"</c>
/// (<c>{"command":"scale","count":2,"relative":true}</c>). A line that is not one of these gets an error answer.
/// </summary>
[JsonPolymorphic(TypeDiscriminatorPropertyName = "command", UnknownDerivedTypeHandling = JsonUnknownDerivedTypeHandling.FailSerialization)]
[JsonDerivedType(typeof(LsRequest), "ls")]
[JsonDerivedType(typeof(ReloadRequest), "reload")]
[JsonDerivedType(typeof(RestartRequest), "restart")]
[JsonDerivedType(typeof(ScaleRequest), "scale")]
[JsonDerivedType(typeof(StopRequest), "stop")]
[JsonDerivedType(typeof(LogsRequest), "logs")]
internal abstract record ControlRequest;

/// <summary><c>herd ls</c>: the workers and slots.</summary>
internal sealed record LsRequest : ControlRequest;

/// <summary><c>herd reload</c>: replace every worker.</summary>
internal sealed record ReloadRequest : ControlRequest;

/// <summary><c>herd restart ID</c>: replace the worker with that id.</summary>
internal sealed record RestartRequest(int Id) : ControlRequest;

/// <summary><c>herd scale N</c> (<paramref name="Count"/> workers, at least 0) or <c>herd scale +N/-N</c> (<paramref name="Relative"/>: that many more or fewer).</summary>
internal sealed record ScaleRequest(int Count, bool Relative = false) : ControlRequest;

/// <summary><c>herd stop</c>: answered, then the app stops.</summary>
internal sealed record StopRequest : ControlRequest;

/// <summary><c>herd logs</c>: the latest lines, then, when following, every new one.</summary>
internal sealed record LogsRequest(bool Follow = false) : ControlRequest;

internal sealed record ControlResponse(bool Ok, string? Error = null, WorkerInfo[]? Workers = null, SlotInfo[]? Slots = null, string? LastReloadFailure = null);

/// <summary>A row of <c>herd ls</c>; <paramref name="Restarts"/> counts its slot's restarts.</summary>
internal sealed record WorkerInfo(int Id, int Slot, int Pid, string State, double UptimeSeconds, int Restarts, long Requests, long Connections, double CpuSeconds, long MemoryBytes);

/// <summary>A slot of <c>herd ls</c> with no worker: waiting out a restart's backoff, or errored.</summary>
internal sealed record SlotInfo(int Slot, string State, int Restarts, string? LastExit);

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    RespectRequiredConstructorParameters = true, AllowOutOfOrderMetadataProperties = true, UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow)]
[JsonSerializable(typeof(ControlRequest))]
[JsonSerializable(typeof(ControlResponse))]
[JsonSerializable(typeof(WorkerInfo[]))]
internal sealed partial class ControlJson : JsonSerializerContext;

/// <summary>
/// How <c>herd</c> commands reach a running primary: a Unix socket, mode 0600, in a per-user folder, mode 0700,
/// whose server also checks each peer's uid with SO_PEERCRED. One JSON line each way per connection.
/// </summary>
internal static class ControlSocket
{
    public static string PathFor(string name)
    {
        var runtime = Environment.GetEnvironmentVariable("XDG_RUNTIME_DIR");
        var folder = string.IsNullOrEmpty(runtime) ? $"/tmp/herd-{Native.Libc.GetUid()}" : Path.Combine(runtime, "herd");
        return Path.Combine(folder, name + ".sock");
    }

    public static Socket Listen(string path)
    {
        var folder = Path.GetDirectoryName(path)!;
        Directory.CreateDirectory(folder, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        File.SetUnixFileMode(folder, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        if (File.Exists(path))
        {
            if (TryConnect(path) is { } live)
            {
                live.Dispose();
                throw new InvalidOperationException($"An app named {Path.GetFileNameWithoutExtension(path)} is already running ({path}); choose another --name.");
            }
            File.Delete(path); // left by a primary that died
        }
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        socket.Bind(new UnixDomainSocketEndPoint(path));
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        socket.Listen(16);
        return socket;
    }

    /// <summary>The peer's uid (SO_PEERCRED: pid, uid, gid).</summary>
    public static uint PeerUid(Socket connection)
    {
        Span<byte> credentials = stackalloc byte[12];
        connection.GetRawSocketOption(1 /* SOL_SOCKET */, 17 /* SO_PEERCRED */, credentials);
        return BitConverter.ToUInt32(credentials[4..]);
    }

    public static async Task<ControlRequest?> ReadRequestAsync(Socket connection, CancellationToken cancellationToken)
    {
        using var reader = new StreamReader(new NetworkStream(connection, ownsSocket: false), Encoding.UTF8);
        var line = await reader.ReadLineAsync(cancellationToken).ConfigureAwait(false);
        return line is null ? null : JsonSerializer.Deserialize(line, ControlJson.Default.ControlRequest);
    }

    public static async Task WriteAsync<T>(Socket connection, T value, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> typeInfo)
    {
        var bytes = JsonSerializer.SerializeToUtf8Bytes(value, typeInfo);
        await connection.SendAsync(bytes.Append((byte)'\n').ToArray()).ConfigureAwait(false);
    }

    /// <summary>Sends a request to the primary named <paramref name="name"/> and returns its answer.</summary>
    public static async Task<ControlResponse> SendAsync(string name, ControlRequest request, CancellationToken cancellationToken)
    {
        var path = PathFor(name);
        using var socket = TryConnect(path) ?? throw new InvalidOperationException($"No app named {name} is running (no {path}).");
        await WriteAsync(socket, request, ControlJson.Default.ControlRequest).ConfigureAwait(false);
        using var reader = new StreamReader(new NetworkStream(socket), Encoding.UTF8);
        var line = await reader.ReadLineAsync(cancellationToken).ConfigureAwait(false)
            ?? throw new InvalidOperationException($"The app named {name} closed the control socket without answering.");
        return JsonSerializer.Deserialize(line, ControlJson.Default.ControlResponse)!;
    }

    /// <summary>Asks for the workers' output and writes each line to <paramref name="output"/> until the primary ends the stream.</summary>
    public static async Task StreamLogsAsync(string name, bool follow, TextWriter output, CancellationToken cancellationToken)
    {
        var path = PathFor(name);
        using var socket = TryConnect(path) ?? throw new InvalidOperationException($"No app named {name} is running (no {path}).");
        await WriteAsync(socket, new LogsRequest(follow), ControlJson.Default.ControlRequest).ConfigureAwait(false);
        using var reader = new StreamReader(new NetworkStream(socket), Encoding.UTF8);
        while (await reader.ReadLineAsync(cancellationToken).ConfigureAwait(false) is { } line) await output.WriteLineAsync(line).ConfigureAwait(false);
    }

    private static Socket? TryConnect(string path)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            socket.Connect(new UnixDomainSocketEndPoint(path));
            return socket;
        }
        catch (SocketException)
        {
            socket.Dispose();
            return null;
        }
    }
}
