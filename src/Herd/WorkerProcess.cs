using System.IO.Pipes;
using Herd.Native;
using Microsoft.Win32.SafeHandles;

namespace Herd;

/// <summary>
/// A worker's operating-system process (Node's <c>worker.process</c>). Herd watches it through the process itself
/// (a pidfd), never through its pipes, so its exit is seen at once even while a process it started still holds its
/// stdout or stderr, and a signal never reaches a process that merely got its pid afterwards.
/// </summary>
public sealed class WorkerProcess : IDisposable
{
    private readonly Pidfd _pidfd;
    private readonly TaskCompletionSource<WorkerExit> _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);

    internal WorkerProcess(int pid, Pidfd pidfd, SafeFdHandle? standardOutput, SafeFdHandle? standardError)
    {
        Id = pid;
        StartTime = DateTime.Now;
        _pidfd = pidfd;
        StandardOutput = Reader(standardOutput);
        StandardError = Reader(standardError);
        // One small thread per worker, blocked in waitid: the exit status is the kernel's, read exactly once.
        new Thread(WaitForExit, maxStackSize: 256 * 1024) { IsBackground = true, Name = $"Herd wait {pid}" }.Start();
    }

    /// <summary>The process id. It names this worker only until the worker has exited: see <see cref="Worker.Exited"/>.</summary>
    public int Id { get; }

    /// <summary>When the process was started, in local time.</summary>
    public DateTime StartTime { get; }

    /// <summary>
    /// The worker's stdout when <see cref="ClusterSettings.Silent"/>, else null. It ends when every process holding
    /// its write end has closed it (a child the worker started may hold it past the worker's exit); Herd closes it
    /// a few seconds after the worker has exited, read or not.
    /// </summary>
    public Stream? StandardOutput { get; }

    /// <summary>The worker's stderr when <see cref="ClusterSettings.Silent"/>, else null; as <see cref="StandardOutput"/>.</summary>
    public Stream? StandardError { get; }

    /// <summary>True once the process has exited and Herd has its exit status.</summary>
    public bool HasExited => _exited.Task.IsCompleted;

    internal Task<WorkerExit> Exited => _exited.Task;

    /// <summary>Sends a signal through the pidfd; false when the process has already exited.</summary>
    internal bool Signal(UnixSignal signal) => !HasExited && _pidfd.Signal((int)signal);

    /// <summary>Closes the output pipes; the pidfd closes on its own once the exit is read.</summary>
    public void Dispose()
    {
        StandardOutput?.Dispose();
        StandardError?.Dispose();
    }

    private void WaitForExit()
    {
        var (code, signal) = _pidfd.WaitForExit();
        _pidfd.Dispose();
        _exited.SetResult(new WorkerExit(code, (UnixSignal?)signal));
    }

    private static AnonymousPipeClientStream? Reader(SafeFdHandle? fd)
    {
        if (fd is null) return null;
        var pipe = new SafePipeHandle(fd.DangerousGetHandle(), ownsHandle: true);
        fd.SetHandleAsInvalid();
        return new AnonymousPipeClientStream(PipeDirection.In, pipe);
    }
}
