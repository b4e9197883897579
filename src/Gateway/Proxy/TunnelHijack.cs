using System.IO.Pipelines;

namespace Gateway.Proxy;

/// <summary>
/// Wraps a connection's transport under Kestrel's HTTP/1.1 so that a CONNECT arriving mid-connection can take the raw
/// transport over: after <see cref="Hijack"/>, everything Kestrel writes is discarded and Kestrel's next read waits
/// until the tunnel ends (<see cref="Release"/>), then sees the connection completed.
/// </summary>
internal sealed class TunnelHijack : IDuplexPipe
{
    private readonly IDuplexPipe _inner;
    private readonly HijackableReader _reader;
    private readonly HijackableWriter _writer;
    private readonly TaskCompletionSource _released = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile bool _hijacked;

    public TunnelHijack(IDuplexPipe inner)
    {
        _inner = inner;
        _reader = new HijackableReader(this);
        _writer = new HijackableWriter(this);
    }

    public PipeReader Input => _reader;
    public PipeWriter Output => _writer;

    /// <summary>Takes the raw transport away from Kestrel.</summary>
    public IDuplexPipe Hijack()
    {
        _hijacked = true;
        return _inner;
    }

    /// <summary>The tunnel is over: Kestrel's pending read completes and it closes the connection.</summary>
    public void Release() => _released.TrySetResult();

    private sealed class HijackableReader(TunnelHijack owner) : PipeReader
    {
        private PipeReader Inner => owner._inner.Input;

        public override void AdvanceTo(SequencePosition consumed)
        {
            if (!owner._hijacked)
            {
                Inner.AdvanceTo(consumed);
            }
        }

        public override void AdvanceTo(SequencePosition consumed, SequencePosition examined)
        {
            if (!owner._hijacked)
            {
                Inner.AdvanceTo(consumed, examined);
            }
        }

        public override void CancelPendingRead() => Inner.CancelPendingRead();

        public override void Complete(Exception? exception = null)
        {
            if (!owner._hijacked)
            {
                Inner.Complete(exception);
            }
        }

        public override ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default)
            => owner._hijacked ? WaitForReleaseAsync(cancellationToken) : Inner.ReadAsync(cancellationToken);

        public override bool TryRead(out ReadResult result)
        {
            if (owner._hijacked)
            {
                result = new ReadResult(default, isCanceled: false, isCompleted: owner._released.Task.IsCompleted);
                return owner._released.Task.IsCompleted;
            }
            return Inner.TryRead(out result);
        }

        private async ValueTask<ReadResult> WaitForReleaseAsync(CancellationToken cancellationToken)
        {
            await owner._released.Task.WaitAsync(cancellationToken);
            return new ReadResult(default, isCanceled: false, isCompleted: true);
        }
    }

    private sealed class HijackableWriter(TunnelHijack owner) : PipeWriter
    {
        private byte[] _discard = [];
        private PipeWriter Inner => owner._inner.Output;

        public override void Advance(int bytes)
        {
            if (!owner._hijacked)
            {
                Inner.Advance(bytes);
            }
        }

        public override void CancelPendingFlush() => Inner.CancelPendingFlush();

        public override void Complete(Exception? exception = null)
        {
            if (!owner._hijacked)
            {
                Inner.Complete(exception);
            }
        }

        public override ValueTask<FlushResult> FlushAsync(CancellationToken cancellationToken = default)
            => owner._hijacked ? new ValueTask<FlushResult>(new FlushResult(isCanceled: false, isCompleted: false)) : Inner.FlushAsync(cancellationToken);

        public override Memory<byte> GetMemory(int sizeHint = 0) => owner._hijacked ? Discard(sizeHint) : Inner.GetMemory(sizeHint);

        public override Span<byte> GetSpan(int sizeHint = 0) => owner._hijacked ? Discard(sizeHint).Span : Inner.GetSpan(sizeHint);

        private Memory<byte> Discard(int sizeHint)
        {
            if (_discard.Length < Math.Max(sizeHint, 4096))
            {
                _discard = new byte[Math.Max(sizeHint, 4096)];
            }
            return _discard;
        }
    }
}
