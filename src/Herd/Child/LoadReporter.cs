using System.Diagnostics;
using Herd.Ipc;

namespace Herd.Child;

/// <summary>
/// How busy this worker is, in busy units, and its reports to a primary that dispatches to the least busy worker.
/// Reports are coalesced: the first change after a quiet <see cref="Interval"/> goes out at once, later ones wait for
/// the interval's end and go out as one. A busy worker so sends at most one frame per interval, never one per
/// request, and its last change, a drop to zero included, reaches the primary within one interval or two.
/// </summary>
/// <remarks>
/// A report carries the fewest units the worker had since the previous one, not the count at the instant it is sent:
/// a worker that came back to zero meanwhile is idle to the primary, so equally loaded workers of short connections
/// are not told apart by where their reports happened to fall. If the count then stands higher, another report follows.
/// </remarks>
internal sealed class LoadReporter(WorkerChannel channel)
{
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(5);

    private static readonly long s_intervalTicks = (long)(Interval.TotalSeconds * Stopwatch.Frequency);

    private readonly Lock _sendGate = new();
    private Timer? _timer;
    private int _busy;
    private int _least; // the fewest units since the last report
    private int _due; // 1 while a report is on its way: sent by whoever set it, now or when the timer fires
    private long _lastSent;
    private volatile bool _reporting;
    private volatile bool _appCounts;

    /// <summary>True once a server of this worker is dispatched by least busy: from then on changes are reported.</summary>
    public bool IsReporting => _reporting;

    /// <summary>Connections from round-robin listeners are busy units until closed while reporting, unless the app counts its own.</summary>
    public bool CountsConnections => _reporting && !_appCounts;

    /// <summary>The app counts its own busy units (Herd.AspNetCore: requests in progress); call before listening.</summary>
    public void AppCounts() => _appCounts = true;

    /// <summary>Starts reporting; the first report says where the count stands.</summary>
    public void Start()
    {
        lock (_sendGate)
        {
            if (_reporting) return;
            _timer = new Timer(static reporter => ((LoadReporter)reporter!).Report(), this, Timeout.Infinite, Timeout.Infinite);
            Volatile.Write(ref _least, Volatile.Read(ref _busy));
            _reporting = true;
        }
        Changed();
    }

    /// <summary>Adds to (or, negative, takes from) the busy units; every unit added must be taken away once.</summary>
    public void Add(int units)
    {
        int busy = Interlocked.Add(ref _busy, units);
        if (!_reporting) return;
        int least;
        while (busy < (least = Volatile.Read(ref _least)) && Interlocked.CompareExchange(ref _least, busy, least) != least) { }
        Changed();
    }

    private void Changed()
    {
        if (Interlocked.Exchange(ref _due, 1) == 1) return; // the report on its way reads the count after this change
        long wait = Volatile.Read(ref _lastSent) + s_intervalTicks - Stopwatch.GetTimestamp();
        if (wait <= 0) Report();
        else _timer!.Change(TimeSpan.FromSeconds((double)wait / Stopwatch.Frequency), Timeout.InfiniteTimeSpan);
    }

    // Under the lock, so that of two reports racing, the one that reads the count later is also sent later.
    private void Report()
    {
        Span<byte> frame = stackalloc byte[Load.Size];
        int busy, least;
        lock (_sendGate)
        {
            Volatile.Write(ref _lastSent, Stopwatch.GetTimestamp());
            Volatile.Write(ref _due, 0); // a change from here on schedules another report
            busy = Volatile.Read(ref _busy);
            least = Math.Min(Interlocked.Exchange(ref _least, busy), busy);
            new Load(least).Write(frame);
            channel.Send(frame);
        }
        if (least != busy) Changed(); // the primary has heard less than there is: tell it, an interval from now
    }
}
