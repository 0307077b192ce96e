using System.Runtime.InteropServices;

namespace Herd.Native;

/// <summary>
/// A handle's fd number for the length of a native call: the reference it takes keeps the number the handle's, even
/// if another thread disposes the handle meanwhile, until <see cref="Dispose"/>. Throws ObjectDisposedException if
/// the handle is closed already.
/// </summary>
internal readonly ref struct HeldFd
{
    private readonly SafeHandle _handle;

    public HeldFd(SafeHandle handle)
    {
        bool added = false;
        handle.DangerousAddRef(ref added);
        _handle = handle;
        Fd = (int)handle.DangerousGetHandle();
    }

    public int Fd { get; }

    public void Dispose() => _handle.DangerousRelease();
}
