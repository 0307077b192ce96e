using System.Net.Sockets;

namespace Herd.Child;

/// <summary>A connection that is one busy unit of its worker from its accept until it is disposed or finalized.</summary>
internal sealed class CountedSocket : Socket
{
    private readonly LoadReporter _load;
    private int _counted; // set only once the base constructor succeeded: a socket never counted is never discounted

    public CountedSocket(SafeSocketHandle handle, LoadReporter load) : base(handle)
    {
        _load = load;
        load.Add(1);
        _counted = 1;
    }

    protected override void Dispose(bool disposing)
    {
        if (Interlocked.Exchange(ref _counted, 0) == 1) _load.Add(-1);
        base.Dispose(disposing);
    }
}
