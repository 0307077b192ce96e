using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;

namespace Herd.AspNetCore;

/// <summary>
/// The upgrade of a WebSocket request, seen through, so that a leaving worker can close the WebSocket with 1001 (going
/// away). The app's WebSocket (from <c>UseWebSockets</c>, whatever its options) is built over the stream this upgrade
/// returns, and a 1001 close frame goes out between two of its frames; the app's writes after it are dropped, as a
/// WebSocket sends nothing after its close frame, and the client's answering close reaches the app as usual.
/// </summary>
internal sealed class GoingAwayUpgrade(IHttpUpgradeFeature inner, HttpContext context, WorkerDrain drain) : IHttpUpgradeFeature
{
    private GoingAwayStream? _stream;

    public bool IsUpgradableRequest => inner.IsUpgradableRequest;

    /// <summary>Sees through the upgrade of a WebSocket request; null for any other request.</summary>
    public static GoingAwayUpgrade? TryAttach(HttpContext context, WorkerDrain drain)
    {
        var upgrade = context.Request.Headers.Upgrade;
        if (upgrade.Count == 0 || context.Features.Get<IHttpUpgradeFeature>() is not { IsUpgradableRequest: true } inner) return null;
        if (!upgrade.Any(value => value?.Contains("websocket", StringComparison.OrdinalIgnoreCase) == true)) return null;
        var attached = new GoingAwayUpgrade(inner, context, drain);
        context.Features.Set<IHttpUpgradeFeature>(attached);
        drain.Add(attached);
        return attached;
    }

    public async Task<Stream> UpgradeAsync()
    {
        var stream = new GoingAwayStream(await inner.UpgradeAsync().ConfigureAwait(false));
        Volatile.Write(ref _stream, stream);
        if (drain.IsDraining) await stream.GoAwayAsync().ConfigureAwait(false); // upgraded as the drain went by
        return stream;
    }

    public Task GoAwayAsync() => Volatile.Read(ref _stream)?.GoAwayAsync() ?? Task.CompletedTask;

    public void Abort() => context.Abort();

    private sealed class GoingAwayStream(Stream inner) : Stream
    {
        // FIN and the close opcode, a 2-byte payload: status 1001, unmasked as a server's frames are (RFC 6455 5.5.1).
        private static readonly byte[] GoingAway = [0x88, 0x02, 0x03, 0xE9];

        // The app's WebSocket writes each frame in one call: holding this between calls keeps ours out of theirs.
        private readonly SemaphoreSlim _writing = new(1, 1);
        private bool _goneAway;

        public async Task GoAwayAsync()
        {
            await _writing.WaitAsync().ConfigureAwait(false);
            try
            {
                if (_goneAway) return;
                _goneAway = true;
                await inner.WriteAsync(GoingAway).ConfigureAwait(false);
                await inner.FlushAsync().ConfigureAwait(false);
            }
            catch (Exception ex) when (ex is IOException or ObjectDisposedException or OperationCanceledException)
            {
                // The connection is gone already.
            }
            finally
            {
                _writing.Release();
            }
        }

        // Each write is one whole frame, so its first byte holds the opcode: 8 is close.
        private static bool IsClose(ReadOnlySpan<byte> frame) => frame.Length > 0 && (frame[0] & 0x0F) == 0x8;

        public override bool CanRead => inner.CanRead;
        public override bool CanSeek => false;
        public override bool CanWrite => inner.CanWrite;
        public override long Length => throw new NotSupportedException();

        public override long Position
        {
            get => throw new NotSupportedException();
            set => throw new NotSupportedException();
        }

        public override int Read(byte[] buffer, int offset, int count) => inner.Read(buffer, offset, count);

        public override int Read(Span<byte> buffer) => inner.Read(buffer);

        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            inner.ReadAsync(buffer, offset, count, cancellationToken);

        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) =>
            inner.ReadAsync(buffer, cancellationToken);

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            _writing.Wait();
            try
            {
                if (_goneAway) return;
                _goneAway = IsClose(buffer);
                inner.Write(buffer);
            }
            finally
            {
                _writing.Release();
            }
        }

        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
            WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            await _writing.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                if (_goneAway) return;
                _goneAway = IsClose(buffer.Span); // the app closed first: it needs no 1001 after its own close
                await inner.WriteAsync(buffer, cancellationToken).ConfigureAwait(false);
            }
            finally
            {
                _writing.Release();
            }
        }

        public override void Flush() => inner.Flush();

        public override Task FlushAsync(CancellationToken cancellationToken) => inner.FlushAsync(cancellationToken);

        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

        public override void SetLength(long value) => throw new NotSupportedException();

        // The semaphore is left to the collector: the drain may still be waiting on it as the app lets go.
        protected override void Dispose(bool disposing)
        {
            if (disposing) inner.Dispose();
            base.Dispose(disposing);
        }
    }
}
