using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;

namespace Herd.TestWorker;

/// <summary>
/// A worker gone bad: once it serves, it writes hostile records straight onto its channel, beside Herd's own
/// traffic. The primary must cut it off with a logged reason and lose nothing else. Which attack: HERD_TEST_FUZZ.
/// </summary>
internal static unsafe partial class Fuzz
{
    public const string Variable = "HERD_TEST_FUZZ";

    private static int s_channel = -1;

    /// <summary>Arms the attack on the channel, which a worker always has at fd 3.</summary>
    public static void Arm()
    {
        if (Environment.GetEnvironmentVariable(Variable) is not null) s_channel = 3;
    }

    public static void Attack()
    {
        if (s_channel < 0) return;
        switch (Environment.GetEnvironmentVariable(Variable))
        {
            case "random":
                var random = new Random(20261128); // seeded: a failure replays
                for (int i = 0; i < 1000; i++)
                {
                    var record = new byte[random.Next(1, 300)];
                    random.NextBytes(record);
                    if (!TrySend(record)) return; // cut off: the channel is gone
                }
                break;
            case "oversized-record":
                Send(new byte[100 * 1024]); // one record larger than any the channel takes
                break;
            case "oversized-frame":
                var chunk = new byte[60 * 1024];
                chunk[0] = 0x80 | 2; // a user frame that never ends
                while (TrySend(chunk)) { }
                break;
            case "truncated":
                Send(Encoding.UTF8.GetBytes("\u0001{\"act\":\"queryServer\",\"addr")); // JSON cut short
                break;
            case "truncated-binary":
                Send([4, 1, 0, 0]); // half an accepted frame
                break;
            case "truncated-load":
                Send([5, 1, 0]); // half a load frame
                break;
            case "negative-load":
                Send([5, 0xff, 0xff, 0xff, 0xff]); // -1 busy units
                break;
            case "interleaved":
                Send([0x80 | 2, (byte)'{']); // the start of a user frame...
                Send([1, (byte)'}']); // ...then a control frame before its end
                break;
            case "unknown-kind":
                Send([99, 1, 2, 3]);
                break;
            case "fd-on-control":
                Send(Encoding.UTF8.GetBytes("\u0001{\"act\":\"online\"}"), 0); // stdin's fd on a message that takes none
                break;
            case "fds-on-message":
                Send(Encoding.UTF8.GetBytes("\u0002{}"), 0, 1); // two fds where a message takes one
                break;
            case "flood":
                var message = Encoding.UTF8.GetBytes("\u0002{\"cmd\":\"flood\"}");
                while (TrySend(message)) { }
                break;
            default:
                throw new InvalidOperationException($"unknown attack {Environment.GetEnvironmentVariable(Variable)}");
        }
    }

    private static void Send(byte[] record, params int[] fds)
    {
        if (!TrySend(record, fds)) throw new IOException($"send failed: errno {Marshal.GetLastPInvokeError()}");
    }

    // Blocking sendmsg with SCM_RIGHTS, for as many fds as given.
    private static bool TrySend(byte[] record, params int[] fds)
    {
        int space = fds.Length == 0 ? 0 : 16 + ((fds.Length * 4 + 7) & ~7);
        byte* control = stackalloc byte[Math.Max(space, 1)];
        if (space > 0)
        {
            new Span<byte>(control, space).Clear();
            *(ulong*)control = (ulong)(16 + fds.Length * 4); // cmsg_len
            *(int*)(control + 8) = 1; // SOL_SOCKET
            *(int*)(control + 12) = 1; // SCM_RIGHTS
            fds.CopyTo(new Span<int>(control + 16, fds.Length));
        }
        fixed (byte* data = record)
        {
            var iov = new IoVec { Base = data, Length = (nuint)record.Length };
            var msg = new MsgHdr { Iov = &iov, IovLength = 1, Control = space > 0 ? control : null, ControlLength = (nuint)space };
            return SendMsg(s_channel, &msg, 0x4000 /* MSG_NOSIGNAL */) >= 0;
        }
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct IoVec
    {
        public byte* Base;
        public nuint Length;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct MsgHdr
    {
        public void* Name;
        public uint NameLength;
        public IoVec* Iov;
        public nuint IovLength;
        public void* Control;
        public nuint ControlLength;
        public int Flags;
    }

    [LibraryImport("libc", EntryPoint = "sendmsg", SetLastError = true)]
    private static partial nint SendMsg(int socket, MsgHdr* message, int flags);
}
