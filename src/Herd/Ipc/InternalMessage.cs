using System.Net.Sockets;
using System.Text.Json.Serialization;

namespace Herd.Ipc;

/// <summary>
/// A control message. Like Node's, one flat shape for every act: <c>seq</c> numbers a request, <c>ack</c> names
/// the request a reply answers, and each act uses the fields it needs.
/// </summary>
internal sealed class InternalMessage
{
    public string? Act { get; set; }
    public int Seq { get; set; }
    public int? Ack { get; set; }

    // queryServer / listening
    public string? Address { get; set; }
    public int Port { get; set; }
    public string? AddressType { get; set; }
    public int Index { get; set; }
    public int Backlog { get; set; }
    public bool ReusePort { get; set; } // queryServer: a socket of the worker's slot, not the policy's handle
    public bool PrefersSticky { get; set; } // queryServer: the app wants sticky routing unless a policy was chosen

    // reply to queryServer; close
    public string? Key { get; set; }
    // A .NET SocketError, not a POSIX errno (ScmRights' are those). Named errno on the wire, as Node's, so a herd
    // primary and an app's Herd of another version still read each other.
    [JsonPropertyName("errno")]
    public SocketError SocketError { get; set; }
    public int HandleId { get; set; }
    public bool LeastBusy { get; set; }

    // heartbeat answers: what the worker has served so far
    public long Requests { get; set; }
    public long Connections { get; set; }

    // reply to queryServer: the fd attached is the socket to accept on (a shared handle's, or a reuse-port slot's)
    public bool Shared { get; set; }

    // signal, kill: the signal's number
    public int Signal { get; set; }

    // reply to queryServer: report the SignalR tokens you issue (act sticky); sticky: the token
    public bool Sticky { get; set; }
    public string? Token { get; set; }
    // leader
    public bool Leader { get; set; }

    // metrics answers: the worker's meters
    public Herd.Metrics.MetricFamily[]? Metrics { get; set; }
}
