namespace Herd.Net;

/// <summary>
/// How an accept loop that owns its thread waits out a failed accept4 (EMFILE, ENFILE, ENOBUFS): logged, then 10 ms
/// doubling to 1 s, the listener kept, while the kernel's queue holds connections. Reset by the next success.
/// </summary>
internal struct AcceptBackoff
{
    private int _delayMs;

    /// <summary>True for failures that are no failure of the loop: a signal, a client gone from the queue, nothing there.</summary>
    public static bool IsTransient(int errno) => errno is Native.Libc.EINTR or Native.Libc.ECONNABORTED or Native.Libc.EAGAIN;

    public void Succeeded() => _delayMs = 0;

    /// <summary>Logs the failure; returns how long to wait before the next accept.</summary>
    public int Failed(string listener, int errno)
    {
        _delayMs = Math.Clamp(_delayMs * 2, 10, 1000);
        HerdLog.AcceptFailed(Cluster.Logger, listener, new System.ComponentModel.Win32Exception(errno).Message, _delayMs);
        return _delayMs;
    }
}
