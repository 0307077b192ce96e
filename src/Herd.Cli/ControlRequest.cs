using System.Text.Json.Serialization;

namespace Herd.Cli;

/// <summary>
/// One request to a running primary: one type per command, told apart on the wire by <c>"command"</c>
/// (<c>{"command":"scale","count":2,"relative":true}</c>). A line that is not one of these gets an error answer.
/// </summary>
[JsonPolymorphic(TypeDiscriminatorPropertyName = "command", UnknownDerivedTypeHandling = JsonUnknownDerivedTypeHandling.FailSerialization)]
[JsonDerivedType(typeof(LsRequest), "ls")]
[JsonDerivedType(typeof(ReloadRequest), "reload")]
[JsonDerivedType(typeof(RestartRequest), "restart")]
[JsonDerivedType(typeof(ScaleRequest), "scale")]
[JsonDerivedType(typeof(StopRequest), "stop")]
[JsonDerivedType(typeof(LogsRequest), "logs")]
[JsonDerivedType(typeof(UpgradeRequest), "upgrade")]
internal abstract record ControlRequest;

/// <summary><c>herd ls</c>: the workers and slots.</summary>
internal sealed record LsRequest : ControlRequest;

/// <summary><c>herd reload</c>: replace every worker.</summary>
internal sealed record ReloadRequest : ControlRequest;

/// <summary><c>herd restart ID</c>: replace the worker with that id.</summary>
internal sealed record RestartRequest(int Id) : ControlRequest;

/// <summary><c>herd scale N</c> (<paramref name="Count"/> workers, at least 0) or <c>herd scale +N/-N</c> (<paramref name="Relative"/>: that many more or fewer).</summary>
internal sealed record ScaleRequest(int Count, bool Relative = false) : ControlRequest;

/// <summary><c>herd stop</c>: answered, then the app stops.</summary>
internal sealed record StopRequest : ControlRequest;

/// <summary><c>herd logs</c>: the latest lines, then, when following, every new one.</summary>
internal sealed record LogsRequest(bool Follow = false) : ControlRequest;

/// <summary><c>herd upgrade</c>: start the herd now on disk, hand it the sockets, and drain this primary once it is ready.</summary>
internal sealed record UpgradeRequest : ControlRequest;
