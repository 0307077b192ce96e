using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;

namespace Herd.Cli;

/// <summary>
/// How <c>herd</c> commands reach a running primary: a Unix socket, mode 0600, in a per-user folder, mode 0700,
/// whose server also checks each peer's uid with SO_PEERCRED. One JSON line each way per connection; a request is at
/// most <see cref="MaxRequestBytes"/> and must arrive within <see cref="RequestTimeout"/>.
/// </summary>
/// <remarks>
/// An app's name is its socket's file name: <c>[A-Za-z0-9._-]</c>, 1 to 64 characters, never <c>.</c> or <c>..</c>,
/// so that a name never leaves the folder. Herd removes a file there only when it is a socket of this user's that
/// nobody answers on: one a primary left behind when it was killed.
/// </remarks>
internal static partial class ControlSocket
{
    public const int MaxRequestBytes = 4096;
    public static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(5);

    // sun_path holds 108 bytes, the terminating NUL included.
    private const int MaxPathBytes = 107;

    /// <summary>The folder of this user's control sockets.</summary>
    public static string Folder
    {
        get
        {
            var runtime = Environment.GetEnvironmentVariable("XDG_RUNTIME_DIR");
            return string.IsNullOrEmpty(runtime) ? $"/tmp/herd-{Native.Libc.GetUid()}" : Path.Combine(runtime, "herd");
        }
    }

    /// <summary>The socket of the app named <paramref name="name"/>; a name herd cannot use is a <see cref="ConfigException"/>.</summary>
    public static string PathFor(string name)
    {
        if (!ValidName().IsMatch(name) || name is "." or "..")
            throw new ConfigException($"an app's name (--name, or herd.json's name) must be 1 to 64 letters, digits, '.', '_' or '-' (and not . or ..), not '{name}'.");
        var path = Path.Combine(Folder, name + ".sock");
        int bytes = Encoding.UTF8.GetByteCount(path);
        if (bytes > MaxPathBytes)
            throw new ConfigException($"the control socket {path} is {bytes} bytes, and a Unix socket's path holds {MaxPathBytes} (sun_path is 108 with its NUL): use a shorter --name or XDG_RUNTIME_DIR.");
        return path;
    }

    /// <summary>
    /// The name an app gets without --name or herd.json's: its dll's or program's file name without extension, as PM2
    /// names an app after its script, with what a name may not hold replaced by '-'.
    /// </summary>
    public static string DefaultName(string[] command)
    {
        var program = Path.GetFileName(command[0]) == "dotnet" && command.Skip(1).FirstOrDefault(arg => arg.EndsWith(".dll", StringComparison.OrdinalIgnoreCase)) is { } dll
            ? dll : command[0];
        var name = NotInName().Replace(Path.GetFileNameWithoutExtension(program), "-");
        name = name[..Math.Min(name.Length, 64)];
        return name is "" or "." or ".." ? "app" : name;
    }

    /// <summary>The one app running, for a command given no --name: with none or several, says so (naming them).</summary>
    public static string TheOneRunning()
    {
        var running = Directory.Exists(Folder)
            ? Directory.GetFiles(Folder, "*.sock").Where(Answers).Select(Path.GetFileNameWithoutExtension).Order(StringComparer.Ordinal).ToArray()
            : [];
        return running switch
        {
            [] => throw new InvalidOperationException("No app is running."),
            [var one] => one!,
            _ => throw new ConfigException($"{running.Length} apps are running ({string.Join(", ", running)}): say which with --name."),
        };
    }

    public static Socket Listen(string path)
    {
        var folder = Path.GetDirectoryName(path)!;
        Directory.CreateDirectory(folder, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        File.SetUnixFileMode(folder, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        var name = Path.GetFileNameWithoutExtension(path);
        if (Native.FileStatus.IsSocketOf(path, Native.Libc.GetUid()) is bool mine)
        {
            if (Answers(path)) throw new InvalidOperationException($"An app named {name} is already running ({path}); choose another --name.");
            if (!mine)
                throw new InvalidOperationException($"{path} is not a socket of this user's; herd leaves it alone: remove it, or choose another --name.");
            File.Delete(path); // left by a primary that was killed
        }
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        socket.Bind(new UnixDomainSocketEndPoint(path));
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        socket.Listen(16);
        return socket;
    }

    /// <summary>
    /// Reads one request line. A client that sends more than <see cref="MaxRequestBytes"/> without a newline, or takes
    /// longer than <see cref="RequestTimeout"/>, gets an <see cref="IOException"/> saying so, and nothing more is read.
    /// </summary>
    public static async Task<ControlRequest?> ReadRequestAsync(Socket connection, CancellationToken cancellationToken)
    {
        var buffer = new byte[MaxRequestBytes];
        int length = 0, end;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(RequestTimeout);
        try
        {
            while ((end = buffer.AsSpan(0, length).IndexOf((byte)'\n')) < 0)
            {
                if (length == buffer.Length) throw new IOException($"a request is at most {MaxRequestBytes} bytes, with its newline");
                int read = await connection.ReceiveAsync(buffer.AsMemory(length), timeout.Token).ConfigureAwait(false);
                if (read == 0) return length == 0 ? null : throw new IOException("the request ended before its newline");
                length += read;
            }
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
        {
            throw new IOException($"no whole request within {RequestTimeout.TotalSeconds:0} s");
        }
        return JsonSerializer.Deserialize(buffer.AsSpan(0, end), ControlJson.Default.ControlRequest);
    }

    public static async Task WriteAsync<T>(Socket connection, T value, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> typeInfo)
    {
        var bytes = JsonSerializer.SerializeToUtf8Bytes(value, typeInfo);
        await connection.SendAsync(bytes.Append((byte)'\n').ToArray()).ConfigureAwait(false);
    }

    /// <summary>Sends a request to the primary named <paramref name="name"/> and returns its answer.</summary>
    public static async Task<ControlResponse> SendAsync(string name, ControlRequest request, CancellationToken cancellationToken)
    {
        using var socket = Connect(name);
        await WriteAsync(socket, request, ControlJson.Default.ControlRequest).ConfigureAwait(false);
        using var reader = new StreamReader(new NetworkStream(socket), Encoding.UTF8);
        var line = await reader.ReadLineAsync(cancellationToken).ConfigureAwait(false)
            ?? throw new InvalidOperationException($"The app named {name} closed the control socket without answering.");
        return JsonSerializer.Deserialize(line, ControlJson.Default.ControlResponse)!;
    }

    /// <summary>
    /// Asks for the workers' output and copies it to <paramref name="output"/> until the primary ends the stream: as it
    /// comes, whole lines in large writes, so that a follower keeps up with a chatty app.
    /// </summary>
    public static async Task StreamLogsAsync(string name, bool follow, Stream output, CancellationToken cancellationToken)
    {
        using var socket = Connect(name);
        await WriteAsync(socket, new LogsRequest(follow), ControlJson.Default.ControlRequest).ConfigureAwait(false);
        await using var input = new NetworkStream(socket);
        await input.CopyToAsync(output, cancellationToken).ConfigureAwait(false);
    }

    private static Socket Connect(string name)
    {
        var path = PathFor(name);
        return TryConnect(path) ?? throw new InvalidOperationException(Path.Exists(path)
            ? $"The app named {name} is not running: its primary died and left {path} behind."
            : $"No app named {name} is running.");
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

    private static bool Answers(string path)
    {
        using var live = TryConnect(path);
        return live is not null;
    }

    [GeneratedRegex("^[A-Za-z0-9._-]{1,64}$")]
    private static partial Regex ValidName();

    [GeneratedRegex("[^A-Za-z0-9._-]")]
    private static partial Regex NotInName();
}
