using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Herd.Cli;

/// <summary>
/// sd_notify(3) for a primary that systemd runs as Type=notify: READY once the workers are ready, RELOADING and READY
/// around a reload, STOPPING on the way out, and WATCHDOG pings at half of WatchdogSec. Silent without NOTIFY_SOCKET.
/// </summary>
internal sealed class SystemdNotifier : IDisposable
{
    private readonly Socket? _socket;
    private readonly EndPoint? _target;
    private readonly Timer? _watchdog;

    public SystemdNotifier()
    {
        var path = Environment.GetEnvironmentVariable("NOTIFY_SOCKET");
        if (string.IsNullOrEmpty(path)) return;
        Inherited = new Dictionary<string, string?> { ["NOTIFY_SOCKET"] = path, ["WATCHDOG_USEC"] = Environment.GetEnvironmentVariable("WATCHDOG_USEC") };
        _target = new UnixDomainSocketEndPoint(path[0] == '@' ? "\0" + path[1..] : path);
        _socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        var watchdogPid = Environment.GetEnvironmentVariable("WATCHDOG_PID");
        if (long.TryParse(Environment.GetEnvironmentVariable("WATCHDOG_USEC"), CultureInfo.InvariantCulture, out long usec) && usec > 0
            && (watchdogPid is null || watchdogPid == Environment.ProcessId.ToString(CultureInfo.InvariantCulture)))
        {
            var half = TimeSpan.FromMicroseconds(usec / 2);
            _watchdog = new Timer(_ => Send("WATCHDOG=1"), null, half, half);
        }
        // The workers are not the service: they must not talk to systemd themselves.
        foreach (var name in new[] { "NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID" }) Environment.SetEnvironmentVariable(name, null);
    }

    /// <summary>What a primary taking over in an upgrade needs to talk to systemd in turn (the workers never see it).</summary>
    public IReadOnlyDictionary<string, string?> Inherited { get; } = new Dictionary<string, string?>();

    /// <summary>This process is the service's main process now: it took over in an upgrade (systemd needs NotifyAccess=all to hear it).</summary>
    public void MainPid() => Send($"MAINPID={Environment.ProcessId}");

    public void Ready(string status) => Send($"READY=1\nSTATUS={status}");

    public void Reloading() => Send($"RELOADING=1\nMONOTONIC_USEC={System.Diagnostics.Stopwatch.GetTimestamp() * 1_000_000 / System.Diagnostics.Stopwatch.Frequency}");

    public void Stopping(string status) => Send($"STOPPING=1\nSTATUS={status}");

    private void Send(string state)
    {
        if (_socket is null) return;
        try
        {
            _socket.SendTo(Encoding.UTF8.GetBytes(state), _target!);
        }
        catch (SocketException)
        {
            // systemd is gone or not listening: nothing to tell
        }
    }

    public void Dispose()
    {
        _watchdog?.Dispose();
        _socket?.Dispose();
    }
}
