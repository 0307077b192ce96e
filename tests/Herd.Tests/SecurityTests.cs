using System.Text.RegularExpressions;

namespace Herd.Tests;

/// <summary>
/// What other processes can take from a worker: not its channel, not its environment; and what the processes it starts
/// inherit from it: nothing. Root, or a process with ptrace rights over the worker (its own uid, unless Yama says
/// otherwise), can take any of its fds with pidfd_getfd or read its memory: that boundary is the OS's, not Herd's.
/// </summary>
public sealed partial class SecurityTests
{
    private const int EPERM = 1;
    private const int ENXIO = 6;
    private const int EACCES = 13;

    [Fact]
    public async Task The_channel_is_fd_3_an_unnamed_socketpair_that_cannot_be_opened_by_path_and_no_variable_names_it()
    {
        await using var cluster = new TestCluster(["serve"]);
        var (worker, _) = await cluster.ForkListeningAsync();
        const int channel = Child.ChildCluster.ChannelFd;
        // /proc keeps a process's initial environment: nothing there points at the channel.
        Assert.DoesNotContain("HERD_CHANNEL_FD", File.ReadAllText($"/proc/{worker.Process.Id}/environ"), StringComparison.Ordinal);

        // No name, in the file system or the abstract namespace, that another process could connect to.
        var link = new FileInfo($"/proc/{worker.Process.Id}/fd/{channel}").LinkTarget!;
        var inode = SocketInode().Match(link);
        Assert.True(inode.Success, $"fd {channel} is {link}");
        var socket = File.ReadLines("/proc/net/unix").Skip(1).Select(l => l.Split(' ', StringSplitOptions.RemoveEmptyEntries)).Single(f => f[6] == inode.Groups[1].Value);
        Assert.Equal("0005", socket[4]); // SOCK_SEQPACKET
        Assert.Equal(7, socket.Length);  // and no eighth column, the path

        // A pipe could be reopened through /proc by its owner's uid; a socket cannot, even by root.
        Assert.Equal(ENXIO, (await JoinAsync(worker.Process.Id, channel, TestCluster.WorkerDll))["open"]);
    }

    [Fact]
    public async Task Another_user_cannot_take_the_channel()
    {
        if (Native.Libc.GetUid() != 0) return; // needs root to become nobody, as CI has
        await using var cluster = new TestCluster(["serve"]);
        var (worker, _) = await cluster.ForkListeningAsync();

        var tried = await JoinAsync(worker.Process.Id, Child.ChildCluster.ChannelFd, TestCluster.WorkerDllNobodyCanRead(), asNobody: true);
        Assert.Equal(EACCES, tried["open"]);
        Assert.Equal(0, tried["pidfd_open"]); // anyone may have a pidfd...
        Assert.Equal(EPERM, tried["pidfd_getfd"]); // ...but taking an fd through it needs ptrace rights
    }

    [Fact]
    public async Task Nothing_of_Herd_is_on_a_workers_command_line()
    {
        await using var cluster = new TestCluster(["serve", "--port", "0"]);
        var (worker, _) = await cluster.ForkListeningAsync();
        var commandLine = File.ReadAllText($"/proc/{worker.Process.Id}/cmdline").Split('\0', StringSplitOptions.RemoveEmptyEntries);
        // /proc/<pid>/cmdline is world-readable: the worker's is exactly what the settings asked for.
        Assert.Equal([TestCluster.WorkerDll, "serve", "--port", "0"], commandLine[1..]);
        Assert.DoesNotContain(commandLine, arg => arg.Contains("HERD_", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Another_user_cannot_read_a_workers_environment()
    {
        if (Native.Libc.GetUid() != 0) return; // needs root to become nobody, as CI has
        await using var cluster = new TestCluster(["serve"]);
        var (worker, _) = await cluster.ForkListeningAsync();
        var environ = $"/proc/{worker.Process.Id}/environ";
        Assert.Contains("HERD_UNIQUE_ID=1\0", File.ReadAllText(environ), StringComparison.Ordinal); // what there would be to see

        var (code, output) = await TestProcess.RunAsync(TestProcess.AsNobody("cat", environ));
        Assert.NotEqual(0, code);
        Assert.Contains("Permission denied", output, StringComparison.Ordinal);
        Assert.DoesNotContain("HERD_", output, StringComparison.Ordinal);
        // Whereas nobody does read the worker's command line: the refusal above is the environment's own.
        Assert.Equal(0, (await TestProcess.RunAsync(TestProcess.AsNobody("cat", $"/proc/{worker.Process.Id}/cmdline"))).Code);
    }

    [Fact]
    public async Task A_process_a_worker_starts_inherits_no_fd_beyond_stdio()
    {
        await using var cluster = new TestCluster(["serve"]);
        var (worker, address) = await cluster.ForkListeningAsync();
        using var connection = await Client.ConnectAsync(address.EndPoint); // a received connection is open too
        Assert.Equal(worker.Process.Id, await connection.ReadPidAsync());

        worker.Send(TestCluster.Json("""{"cmd":"grandchild"}"""));
        var listing = (await cluster.NextMessageAsync(worker)).GetProperty("fds").EnumerateArray().Select(l => l.GetString()!).ToArray();
        var fds = listing.Select(line => FdLink().Match(line)).Where(m => m.Success)
            .Select(m => (Fd: int.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture), Target: m.Groups[2].Value)).ToList();
        // ls's own handle on the folder it lists, and nothing else of the kind.
        var own = Assert.Single(fds, f => ListedFolder().IsMatch(f.Target));
        fds.Remove(own);

        var shown = $"the grandchild has {string.Join(", ", fds.Select(f => $"{f.Fd} -> {f.Target}"))}";
        Assert.True(fds.Select(f => f.Fd).Order().SequenceEqual([0, 1, 2]), shown);
        Assert.True(fds.All(f => f.Target.StartsWith("pipe:", StringComparison.Ordinal)), shown); // the worker's redirections: no socket
    }

    // The test worker's "join" scenario from another process: the errno of each attempt on the fd, 0 for success.
    private static async Task<Dictionary<string, int>> JoinAsync(int pid, int fd, string workerDll, bool asNobody = false)
    {
        string[] command = ["dotnet", workerDll, "join", pid.ToString(System.Globalization.CultureInfo.InvariantCulture), fd.ToString(System.Globalization.CultureInfo.InvariantCulture)];
        var (code, output) = await TestProcess.RunAsync(asNobody ? TestProcess.AsNobody(command) : command);
        Assert.True(code == 0, output);
        return output.Split('\n')[0].Split(' ').Select(r => r.Split('='))
            .ToDictionary(r => r[0], r => int.Parse(r[1], System.Globalization.CultureInfo.InvariantCulture));
    }

    [GeneratedRegex(@"^socket:\[(\d+)\]$")]
    private static partial Regex SocketInode();

    // A line of ls -l /proc/self/fd: "lr-x------ 1 root root 64 Jan  1 00:00 3 -> /proc/123/fd".
    [GeneratedRegex(@" (\d+) -> (.*)$")]
    private static partial Regex FdLink();

    [GeneratedRegex(@"^/proc/\d+/fd$")]
    private static partial Regex ListedFolder();
}
