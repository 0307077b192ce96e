namespace Herd.Ipc;

/// <summary>The first byte of every record on a channel.</summary>
internal enum FrameKind : byte
{
    /// <summary>A cluster control message (<see cref="InternalMessage"/>, JSON).</summary>
    Internal = 1,

    /// <summary>A user message: UTF-8 JSON, optionally with one fd.</summary>
    User = 2,

    /// <summary>Primary to worker: accepted connections (binary <see cref="NewConn"/>, one fd each).</summary>
    NewConn = 3,

    /// <summary>Worker to primary: the answer for one connection of a <see cref="NewConn"/> (binary <see cref="Accepted"/>).</summary>
    Accepted = 4,

    /// <summary>Worker to primary, under least-busy dispatch: how busy the worker is (binary <see cref="Ipc.Load"/>).</summary>
    Load = 5,

    /// <summary>
    /// Worker to primary, and the same bytes on from the primary to every other worker: an opaque payload for the
    /// workers' SignalR backplane (Herd.AspNetCore's HerdHubLifetimeManager), which the primary does not read.
    /// </summary>
    Relay = 6,
}
