using System.IO.Pipelines;
using Microsoft.AspNetCore.Http.Features;

namespace Gateway.Caching;

/// <summary>What the capture does with the body once the response headers are final.</summary>
internal enum CaptureMode
{
    Undecided,
    /// <summary>Straight to the client.</summary>
    PassThrough,
    /// <summary>To the client and into a cache entry being written.</summary>
    Tee,
    /// <summary>Held back: the cache answers instead (a 304 from revalidation, or an error replaced by a stale entry).</summary>
    Swallow,
}

/// <summary>
/// Wraps the response body feature while a request goes to the origin. On the first use of the body (write,
/// flush, start, send-file, complete) the headers are final: <see cref="Decide"/> is asked what to do, once.
/// Then bytes go to the client, to the client and the entry being written, or nowhere.
/// </summary>
internal sealed class CaptureBodyFeature : IHttpResponseBodyFeature
{
    private readonly IHttpResponseBodyFeature _inner;
    private readonly Func<CaptureMode> _decide;
    private CaptureStream? _stream;
    private PipeWriter? _writer;

    public CaptureBodyFeature(IHttpResponseBodyFeature inner, Func<CaptureMode> decide)
    {
        _inner = inner;
        _decide = decide;
    }

    public CaptureMode Mode { get; private set; }

    /// <summary>Set by the decision when the body is teed into an entry.</summary>
    public CacheWriter? Writer { get; set; }

    public long BytesSeen { get; private set; }

    public Stream Stream => _stream ??= new CaptureStream(this);

    PipeWriter IHttpResponseBodyFeature.Writer => _writer ??= PipeWriter.Create(Stream, new StreamPipeWriterOptions(leaveOpen: true));

    public CaptureMode Decide()
    {
        if (Mode == CaptureMode.Undecided)
        {
            Mode = _decide();
        }
        return Mode;
    }

    public void DisableBuffering() => _inner.DisableBuffering();

    public Task StartAsync(CancellationToken cancellationToken = default)
        => Decide() == CaptureMode.Swallow ? Task.CompletedTask : _inner.StartAsync(cancellationToken);

    public async Task CompleteAsync()
    {
        if (Decide() == CaptureMode.Swallow)
        {
            return;
        }
        if (_writer is not null)
        {
            await _writer.FlushAsync();
        }
        await _inner.CompleteAsync();
    }

    public Task SendFileAsync(string path, long offset, long? count, CancellationToken cancellationToken = default)
    {
        return Decide() switch
        {
            CaptureMode.Swallow => Task.CompletedTask,
            CaptureMode.Tee => SendFileFallback.SendFileAsync(Stream, path, offset, count, cancellationToken),
            _ => _inner.SendFileAsync(path, offset, count, cancellationToken),
        };
    }

    private ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken)
    {
        switch (Decide())
        {
            case CaptureMode.Swallow:
                return ValueTask.CompletedTask;
            case CaptureMode.Tee:
                BytesSeen += buffer.Length;
                return TeeAsync(buffer, cancellationToken);
            default:
                BytesSeen += buffer.Length;
                return _inner.Stream.WriteAsync(buffer, cancellationToken);
        }
    }

    private async ValueTask TeeAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken)
    {
        await _inner.Stream.WriteAsync(buffer, cancellationToken);
        Writer?.Write(buffer.Span);
    }

    private Task FlushAsync(CancellationToken cancellationToken)
        => Decide() == CaptureMode.Swallow ? Task.CompletedTask : _inner.Stream.FlushAsync(cancellationToken);

    private sealed class CaptureStream(CaptureBodyFeature owner) : Stream
    {
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
        public override void Flush() => owner.FlushAsync(default).GetAwaiter().GetResult();
        public override Task FlushAsync(CancellationToken cancellationToken) => owner.FlushAsync(cancellationToken);
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => owner.WriteAsync(buffer.AsMemory(offset, count), default).AsTask().GetAwaiter().GetResult();
        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => owner.WriteAsync(buffer, cancellationToken);
        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
            => owner.WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();
    }
}
