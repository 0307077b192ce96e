using System.Runtime.InteropServices;

namespace Herd.Native;

/// <summary>
/// sendmsg/recvmsg with SCM_RIGHTS. cmsg lengths are built by hand (Tmds.LibC 0.5.0's CMSG_LEN is wrong
/// for odd fd counts), and fds past the caller's room are closed, since CMSG_SPACE rounding can deliver one extra.
/// </summary>
internal static unsafe class ScmRights
{
    private static int Align(int n) => (n + sizeof(nuint) - 1) & ~(sizeof(nuint) - 1);
    private static int CmsgSpace(int bytes) => Align(sizeof(Libc.CmsgHdr)) + Align(bytes);
    private static int CmsgLen(int bytes) => Align(sizeof(Libc.CmsgHdr)) + bytes;

    /// <summary>Sends one record, non-blocking, with <paramref name="fds"/>. Returns bytes sent, or -errno.</summary>
    public static int Send(int socket, ReadOnlySpan<byte> payload, ReadOnlySpan<SafeHandle> fds)
    {
        if (fds.IsEmpty) return Send(socket, payload, ReadOnlySpan<int>.Empty);
        Span<int> raw = stackalloc int[fds.Length];
        Span<bool> held = stackalloc bool[fds.Length];
        int count = 0;
        try
        {
            for (int i = 0; i < fds.Length; i++)
            {
                try
                {
                    fds[i].DangerousAddRef(ref held[i]);
                }
                catch (ObjectDisposedException)
                {
                    continue; // the fd's owner closed it first: deliver the message without it
                }
                raw[count++] = (int)fds[i].DangerousGetHandle();
            }
            return Send(socket, payload, raw[..count]);
        }
        finally
        {
            for (int i = 0; i < fds.Length; i++)
            {
                if (held[i]) fds[i].DangerousRelease();
            }
        }
    }

    private static int Send(int socket, ReadOnlySpan<byte> payload, ReadOnlySpan<int> fds)
    {
        int space = fds.IsEmpty ? 0 : CmsgSpace(fds.Length * sizeof(int));
        byte* control = stackalloc byte[space];
        if (space > 0)
        {
            new Span<byte>(control, space).Clear();
            var header = (Libc.CmsgHdr*)control;
            header->Length = (nuint)CmsgLen(fds.Length * sizeof(int));
            header->Level = Libc.SOL_SOCKET;
            header->Type = Libc.SCM_RIGHTS;
            fds.CopyTo(new Span<int>(control + Align(sizeof(Libc.CmsgHdr)), fds.Length));
        }
        fixed (byte* data = payload)
        {
            var iov = new Libc.IoVec { Base = data, Length = (nuint)payload.Length };
            var msg = new Libc.MsgHdr { Iov = &iov, IovLength = 1, Control = space > 0 ? control : null, ControlLength = (nuint)space };
            while (true)
            {
                nint n = Libc.SendMsg(socket, &msg, Libc.MSG_NOSIGNAL | Libc.MSG_DONTWAIT);
                if (n >= 0) return (int)n;
                int errno = Marshal.GetLastPInvokeError();
                if (errno != Libc.EINTR) return -errno;
            }
        }
    }

    /// <summary>
    /// Receives one record, waiting for it, with received fds close-on-exec. Returns bytes received (0 at end of
    /// stream), or -errno. Fds land in <paramref name="fds"/>; <paramref name="truncated"/> says some were lost;
    /// <paramref name="oversized"/> says the record did not fit <paramref name="payload"/> and its tail was lost.
    /// </summary>
    public static int Receive(int socket, Span<byte> payload, Span<int> fds, out int fdCount, out bool truncated, out bool oversized)
    {
        fdCount = 0;
        truncated = false;
        oversized = false;
        int space = CmsgSpace(fds.Length * sizeof(int));
        byte* control = stackalloc byte[space];
        fixed (byte* data = payload)
        {
            var iov = new Libc.IoVec { Base = data, Length = (nuint)payload.Length };
            var msg = new Libc.MsgHdr { Iov = &iov, IovLength = 1, Control = control, ControlLength = (nuint)space };
            nint n;
            while (true)
            {
                n = Libc.RecvMsg(socket, &msg, Libc.MSG_CMSG_CLOEXEC);
                if (n >= 0) break;
                int errno = Marshal.GetLastPInvokeError();
                if (errno != Libc.EINTR) return -errno;
            }
            truncated = (msg.Flags & Libc.MSG_CTRUNC) != 0;
            oversized = (msg.Flags & Libc.MSG_TRUNC) != 0;
            byte* end = control + (int)msg.ControlLength;
            for (byte* cursor = control; cursor + sizeof(Libc.CmsgHdr) <= end;)
            {
                var header = (Libc.CmsgHdr*)cursor;
                if ((int)header->Length < CmsgLen(0)) break;
                if (header->Level == Libc.SOL_SOCKET && header->Type == Libc.SCM_RIGHTS)
                {
                    var got = new ReadOnlySpan<int>(cursor + Align(sizeof(Libc.CmsgHdr)), ((int)header->Length - CmsgLen(0)) / sizeof(int));
                    int take = Math.Min(got.Length, fds.Length - fdCount);
                    got[..take].CopyTo(fds[fdCount..]);
                    foreach (int extra in got[take..])
                    {
                        Libc.Close(extra);
                        truncated = true;
                    }
                    fdCount += take;
                }
                cursor += Align((int)header->Length);
            }
            return (int)n;
        }
    }
}
