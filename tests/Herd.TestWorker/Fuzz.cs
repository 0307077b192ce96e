using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using Herd.Native;

namespace Herd.TestWorker;

/// <summary>
/// A worker gone bad: once it serves, it writes hostile records straight onto its channel, beside Herd's own
/// traffic. The primary must cut it off with a logged reason and lose nothing else. Which attack: HERD_TEST_FUZZ.
/// </summary>
internal static unsafe class Fuzz
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
        int space = fds.Length == 0 ? 0 : sizeof(Libc.CmsgHdr) + ((fds.Length * sizeof(int) + 7) & ~7);
        byte* control = stackalloc byte[Math.Max(space, 1)];
        if (space > 0)
        {
            new Span<byte>(control, space).Clear();
            *(Libc.CmsgHdr*)control = new Libc.CmsgHdr { Length = (nuint)(sizeof(Libc.CmsgHdr) + fds.Length * sizeof(int)), Level = Libc.SOL_SOCKET, Type = Libc.SCM_RIGHTS };
            fds.CopyTo(new Span<int>(control + sizeof(Libc.CmsgHdr), fds.Length));
        }
        fixed (byte* data = record)
        {
            var iov = new Libc.IoVec { Base = data, Length = (nuint)record.Length };
            var msg = new Libc.MsgHdr { Iov = &iov, IovLength = 1, Control = space > 0 ? control : null, ControlLength = (nuint)space };
            return Libc.SendMsg(s_channel, &msg, Libc.MSG_NOSIGNAL) >= 0;
        }
    }
}
