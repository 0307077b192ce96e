// The program the tests fork: a worker with a raw socket server, a primary of its own, or an intruder, by scenario.
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using Herd;
using Herd.TestWorker;

var scenario = args.Length > 0 ? args[0] : "serve";
switch (scenario)
{
    case "serve":
        return await Serve.RunAsync(args);
    case "exit":
        if (Cluster.IsWorker) _ = Cluster.Worker; // connects to the primary, which then sees it online
        return int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture);
    case "udp":
        return await Udp.RunAsync(args);
    case "host":
        return await Host.RunAsync(args[1..]);
    case "join":
        return Join.Run(int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture), int.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture));
    default:
        Console.Error.WriteLine($"unknown scenario {scenario}");
        return 2;
}

namespace Herd.TestWorker
{
    /// <summary>A TCP or Unix server: each connection gets the pid, then an echo of each line until the client closes.</summary>
    internal static class Serve
    {
        public static async Task<int> RunAsync(string[] args)
        {
            Fuzz.Arm();
            var endPoint = Flag(args, "--unix") is { } path
                ? (EndPoint)new UnixDomainSocketEndPoint(path)
                : new IPEndPoint(IPAddress.Parse(Flag(args, "--host") ?? "127.0.0.1"), int.Parse(PortFlag(args), System.Globalization.CultureInfo.InvariantCulture));
            var options = new ClusterListenOptions { Exclusive = args.Contains("--exclusive"), ReusePort = args.Contains("--reuseport") };
            if (Environment.GetEnvironmentVariable("HERD_TEST_NEVER_READY") == "1") Cluster.Worker.DeferReady();
            ClusterListener listener;
            try
            {
                listener = await ClusterSocket.ListenAsync(endPoint, options);
            }
            catch (SocketException ex)
            {
                Report(new { error = ex.SocketErrorCode.ToString() });
                return 3;
            }
            // Subscribed after listening on purpose: messages sent meanwhile are held for the first handler.
            Console.WriteLine($"worker {Environment.ProcessId} serving {listener.LocalEndPoint}");
            new Thread(Fuzz.Attack) { IsBackground = true }.Start();
            var startAccepting = new TaskCompletionSource();
            if (Environment.GetEnvironmentVariable("HERD_TEST_LAZY") != "1") startAccepting.SetResult();
            var connections = new List<Task>();
            Cluster.Worker.Message += message =>
            {
                switch (message.Body.GetProperty("cmd").GetString())
                {
                    case "accept":
                        startAccepting.TrySetResult();
                        break;
                    case "close":
                        _ = listener.DisposeAsync().AsTask();
                        break;
                    case "hang":
                        // Starve the thread pool for good: every thread it may have, blocked.
                        ThreadPool.GetMinThreads(out int workers, out int io);
                        ThreadPool.SetMaxThreads(workers, io);
                        for (int i = 0; i < workers * 2; i++) ThreadPool.UnsafeQueueUserWorkItem(_ => Thread.Sleep(Timeout.Infinite), null);
                        break;
                    case "disconnect":
                        _ = Cluster.Worker.DisconnectAsync();
                        break;
                    case "echo":
                        Cluster.Worker.Send(message.Body);
                        break;
                    case "env":
                        Report(new
                        {
                            cmd = "env", id = Environment.GetEnvironmentVariable("HERD_UNIQUE_ID"), channel = Environment.GetEnvironmentVariable("HERD_CHANNEL_FD"),
                            custom = Environment.GetEnvironmentVariable("HERD_TEST_VAR"), cwd = Environment.CurrentDirectory, args, inheritable = InheritableFds(),
                            slot = Cluster.Worker.Slot, instance = Environment.GetEnvironmentVariable("HERD_APP_INSTANCE"),
                            spin = Environment.GetEnvironmentVariable("DOTNET_ThreadPool_UnfairSemaphoreSpinLimit"),
                        });
                        break;
                    case "grandchild":
                        Report(new { cmd = "grandchild", fds = GrandchildFds() });
                        break;
                    case "socket":
                        using (var socket = message.Socket!)
                            socket.Send(Encoding.ASCII.GetBytes($"from worker {Environment.ProcessId}\n"));
                        break;
                }
            };
            await startAccepting.Task;
            while (true)
            {
                Socket connection;
                try
                {
                    connection = await listener.AcceptAsync();
                }
                catch (ObjectDisposedException)
                {
                    break;
                }
                Print(Environment.GetEnvironmentVariable("HERD_TEST_PRINT"));
                lock (connections) connections.Add(EchoAsync(connection));
            }
            Task[] open;
            lock (connections) open = [.. connections];
            await Task.WhenAll(open);
            return 0;
        }

        private static async Task EchoAsync(Socket connection)
        {
            using var _ = connection;
            using var stream = new NetworkStream(connection);
            await stream.WriteAsync(Encoding.ASCII.GetBytes($"{Environment.ProcessId}\n"));
            var buffer = new byte[4096];
            int n;
            try
            {
                while ((n = await stream.ReadAsync(buffer)) > 0) await stream.WriteAsync(buffer.AsMemory(0, n));
            }
            catch (IOException)
            {
                // the client reset: nothing to finish
            }
        }

        // HERD_TEST_PRINT=count:size: each connection first makes the worker print count numbered lines of size bytes.
        private static void Print(string? spec)
        {
            if (spec?.Split(':') is not [var count, var size]) return;
            var padding = new string('x', int.Parse(size, System.Globalization.CultureInfo.InvariantCulture));
            for (int i = 1; i <= int.Parse(count, System.Globalization.CultureInfo.InvariantCulture); i++) Console.Out.WriteLine($"line {i} {padding}");
        }

        // --port N, or --port-file PATH: the port in that file, read at start (an app whose port changes across a reload).
        private static string PortFlag(string[] args) => Flag(args, "--port-file") is { } file ? File.ReadAllText(file).Trim() : Flag(args, "--port") ?? "0";

        // What a process this worker starts is born with: ls -l of its own /proc/self/fd (ls's handle on that folder included).
        private static string[] GrandchildFds()
        {
            var start = new ProcessStartInfo("/bin/ls", ["-l", "/proc/self/fd"])
            {
                RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true, // stdio: pipes, not whatever the worker has
            };
            using var ls = Process.Start(start)!;
            var listing = ls.StandardOutput.ReadToEnd();
            ls.WaitForExit();
            return listing.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        }

        // Fds above stdio that a child process would inherit: /proc/self/fdinfo flags without O_CLOEXEC (octal 02000000).
        private static int[] InheritableFds() =>
            [.. Directory.GetFiles("/proc/self/fdinfo")
                .Select(path => (Fd: int.Parse(Path.GetFileName(path), System.Globalization.CultureInfo.InvariantCulture), Path: path))
                .Where(f => f.Fd > 2)
                .Where(f =>
                {
                    try
                    {
                        var flags = File.ReadLines(f.Path).First(l => l.StartsWith("flags:", StringComparison.Ordinal));
                        return (Convert.ToInt32(flags[6..].Trim(), 8) & 0x80000) == 0;
                    }
                    catch (IOException)
                    {
                        return false; // closed while we looked
                    }
                })
                .Select(f => f.Fd)];

        private static string? Flag(string[] args, string name)
        {
            int at = Array.IndexOf(args, name);
            return at >= 0 && at + 1 < args.Length ? args[at + 1] : null;
        }

        internal static void Report<T>(T value) => Cluster.Worker.Send(JsonSerializer.SerializeToElement(value));
    }

    /// <summary>Answers every datagram with the worker's pid, from the socket all workers share (or its slot's, with --reuseport).</summary>
    internal static class Udp
    {
        public static async Task<int> RunAsync(string[] args)
        {
            using var socket = await ClusterSocket.BindUdpAsync(new IPEndPoint(IPAddress.Loopback, 0), new ClusterListenOptions { ReusePort = args.Contains("--reuseport") });
            var buffer = new byte[1024];
            var reply = Encoding.ASCII.GetBytes(Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture));
            while (true)
            {
                var received = await socket.ReceiveFromAsync(buffer, new IPEndPoint(IPAddress.Any, 0));
                await socket.SendToAsync(reply, received.RemoteEndPoint);
            }
        }
    }

    /// <summary>
    /// Another process trying to take a worker's channel (fd <c>fd</c> of process <c>pid</c>): by opening its /proc link,
    /// and by pidfd_getfd. Prints the errno of each attempt, 0 for one that worked.
    /// </summary>
    internal static partial class Join
    {
        private const int O_RDWR = 2;
        private const long SYS_pidfd_open = 434; // the same on x86-64 and arm64
        private const long SYS_pidfd_getfd = 438;

        public static int Run(int pid, int fd)
        {
            var results = new List<string> { $"open={Errno(Open($"/proc/{pid}/fd/{fd}", O_RDWR))}" };
            long pidfd = Syscall(SYS_pidfd_open, pid, 0, 0);
            results.Add($"pidfd_open={Errno(pidfd)}");
            if (pidfd >= 0) results.Add($"pidfd_getfd={Errno(Syscall(SYS_pidfd_getfd, pidfd, fd, 0))}");
            Console.WriteLine(string.Join(' ', results));
            return 0; // whatever was opened closes as this process exits
        }

        private static int Errno(long result) => result >= 0 ? 0 : Marshal.GetLastPInvokeError();

        [LibraryImport("libc", EntryPoint = "open", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
        private static partial int Open(string path, int flags);

        [LibraryImport("libc", EntryPoint = "syscall", SetLastError = true)]
        private static partial long Syscall(long number, long arg1, long arg2, long arg3);
    }

}
