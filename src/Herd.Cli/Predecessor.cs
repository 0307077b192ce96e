using System.Globalization;
using System.Net.Sockets;
using System.Text;
using Herd.Native;

namespace Herd.Cli;

/// <summary>
/// In a primary started by <c>herd upgrade</c>: its predecessor's control socket, the channel to it, and whether it
/// is gone. The listening sockets come as systemd's would (LISTEN_FDS), and <see cref="ClusterPrimary.AdoptSystemdSockets"/> takes them.
/// </summary>
internal sealed class Predecessor
{
    // The predecessor stops answering the control socket and says go at once; a wait past this means it is stuck.
    private static readonly TimeSpan GoTimeout = TimeSpan.FromSeconds(10);

    private readonly Socket _channel;
    private readonly TaskCompletionSource _go = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _gone = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private Predecessor(Socket control, Socket channel, int pid) => (Control, _channel, Pid) = (control, channel, pid);

    public Socket Control { get; }

    public int Pid { get; }

    /// <summary>Completes when the predecessor has exited.</summary>
    public Task Gone => _gone.Task;

    /// <summary>This primary said ready and answers the control socket now.</summary>
    public bool TookOver { get; private set; }

    internal static Predecessor? TryAdopt(string channelVariable, string controlVariable, string fromVariable)
    {
        var channel = Environment.GetEnvironmentVariable(channelVariable);
        var control = Environment.GetEnvironmentVariable(controlVariable);
        var from = Environment.GetEnvironmentVariable(fromVariable);
        foreach (var name in new[] { channelVariable, controlVariable, fromVariable }) Environment.SetEnvironmentVariable(name, null);
        if (!int.TryParse(channel, CultureInfo.InvariantCulture, out int channelFd) || !int.TryParse(control, CultureInfo.InvariantCulture, out int controlFd)) return null;
        // The sockets are ours as systemd's would be; LISTEN_PID could not name us before we existed.
        Environment.SetEnvironmentVariable("LISTEN_PID", Environment.ProcessId.ToString(CultureInfo.InvariantCulture));
        foreach (var fd in new[] { channelFd, controlFd }) Fd.SetCloseOnExec(fd, true); // the workers must not hold them
        return new Predecessor(new Socket(new SafeSocketHandle(controlFd, ownsHandle: true)), new Socket(new SafeSocketHandle(channelFd, ownsHandle: true)),
            int.TryParse(from, CultureInfo.InvariantCulture, out int pid) ? pid : 0);
    }

    /// <summary>Tells the predecessor our workers are ready, and waits until it has stopped answering the control socket.</summary>
    public async Task ReadyAsync()
    {
        _ = ListenAsync();
        try
        {
            await _channel.SendAsync("ready"u8.ToArray(), SocketFlags.None).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // it exited meanwhile (stopped, or killed): the sockets are ours alone
        }
        await Task.WhenAny(_go.Task, Task.Delay(GoTimeout)).ConfigureAwait(false);
        TookOver = true;
    }

    /// <summary>Tells the predecessor why this primary did not start; it goes on serving.</summary>
    public void Failed(string why)
    {
        try
        {
            _channel.Send(Encoding.UTF8.GetBytes("failed\n" + why));
        }
        catch (SocketException)
        {
            // it gave up on us already
        }
    }

    // go, then nothing until the predecessor exits and its end closes.
    private async Task ListenAsync()
    {
        var buffer = new byte[16];
        try
        {
            while (await _channel.ReceiveAsync(buffer, SocketFlags.None).ConfigureAwait(false) > 0) _go.TrySetResult();
        }
        catch (SocketException)
        {
        }
        _go.TrySetResult();
        _gone.TrySetResult();
        _channel.Dispose();
    }
}
