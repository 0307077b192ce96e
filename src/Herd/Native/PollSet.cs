using System.Runtime.InteropServices;

namespace Herd.Native;

/// <summary>One poll(2) for input over a set of handles that changes from one wait to the next; its arrays are reused.</summary>
internal sealed unsafe class PollSet
{
    private Libc.PollFd[] _fds = new Libc.PollFd[16];
    private SafeHandle[] _handles = new SafeHandle[16];
    private int _count;

    /// <summary>Empties the set for the next wait.</summary>
    public void Clear()
    {
        _handles.AsSpan(0, _count).Clear();
        _count = 0;
    }

    /// <summary>Adds a handle to wait on; returns its index, for <see cref="IsReady"/>.</summary>
    public int Add(SafeHandle handle)
    {
        if (_count == _handles.Length)
        {
            Array.Resize(ref _handles, _count * 2);
            Array.Resize(ref _fds, _count * 2);
        }
        _handles[_count] = handle;
        return _count++;
    }

    /// <summary>Blocks until one of the handles is ready or <paramref name="timeoutMs"/> passes (-1: no limit).</summary>
    public void Wait(int timeoutMs)
    {
        int held = 0;
        try
        {
            for (; held < _count; held++)
            {
                bool added = false;
                _handles[held].DangerousAddRef(ref added);
                _fds[held] = new Libc.PollFd { Fd = (int)_handles[held].DangerousGetHandle(), Events = Libc.POLLIN };
            }
            fixed (Libc.PollFd* fds = _fds) Libc.Poll(fds, (nuint)_count, timeoutMs);
        }
        finally
        {
            for (int i = 0; i < held; i++) _handles[i].DangerousRelease();
        }
    }

    /// <summary>Whether the last wait found the handle at <paramref name="index"/> readable, hung up or failed.</summary>
    public bool IsReady(int index) => _fds[index].Revents != 0;
}
