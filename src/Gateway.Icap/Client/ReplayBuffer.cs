using System.Buffers;

namespace Gateway.Icap.Client;

/// <summary>
/// The first bytes of the original body, read before anything is sent: the preview comes from here, and when the whole
/// body fits (<see cref="Complete"/>) it can be replayed after a 204 or used after a 206. Pooled memory, returned on dispose.
/// </summary>
internal sealed class ReplayBuffer : IDisposable
{
    private byte[]? _array;

    public int Length { get; private set; }

    /// <summary>The source ended within the buffer: this is the whole body.</summary>
    public bool Complete { get; private set; }

    public ReadOnlyMemory<byte> Memory => _array is null ? ReadOnlyMemory<byte>.Empty : _array.AsMemory(0, Length);

    /// <summary>
    /// Reads until <paramref name="target"/> bytes are buffered or the source ends. The buffer starts at the known
    /// length (or 16 KB) and grows, so small bodies never rent large (LOH-sized) arrays.
    /// </summary>
    public async Task FillAsync(Stream? source, int target, long? knownLength, CancellationToken cancellationToken)
    {
        if (source is null)
        {
            Complete = true;
            return;
        }
        if (target <= 0) return;
        var initial = knownLength is { } known && known < target ? (int)known + 1 : Math.Min(target, 16 * 1024);
        _array = ArrayPool<byte>.Shared.Rent(Math.Max(initial, 16));
        try
        {
            while (Length < target)
            {
                if (Length == _array.Length)
                {
                    var bigger = ArrayPool<byte>.Shared.Rent(Math.Min(target, _array.Length * 2));
                    _array.AsSpan(0, Length).CopyTo(bigger);
                    ArrayPool<byte>.Shared.Return(_array);
                    _array = bigger;
                }
                var n = await source.ReadAsync(_array.AsMemory(Length, Math.Min(target, _array.Length) - Length), cancellationToken);
                if (n == 0)
                {
                    Complete = true;
                    return;
                }
                Length += n;
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException || !cancellationToken.IsCancellationRequested)
        {
            throw new IcapClientException(IcapClientError.BodySourceFailed, "reading the original body failed: " + ex.Message, ex);
        }
    }

    public void Dispose()
    {
        var a = Interlocked.Exchange(ref _array, null);
        if (a is not null) ArrayPool<byte>.Shared.Return(a);
    }
}

/// <summary>The original body from an offset: the rest of the replay buffer, then whatever the source still has.</summary>
internal sealed class OriginalTailStream : Stream
{
    private readonly ReplayBuffer _buffer;
    private readonly Stream? _source;
    private int _position;
    private bool _disposed;

    public OriginalTailStream(ReplayBuffer buffer, int offset, Stream? source)
    {
        _buffer = buffer;
        _position = offset;
        _source = source;
    }

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override async ValueTask<int> ReadAsync(Memory<byte> destination, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_position < _buffer.Length)
        {
            var n = Math.Min(destination.Length, _buffer.Length - _position);
            _buffer.Memory.Slice(_position, n).CopyTo(destination);
            _position += n;
            return n;
        }
        if (_source is null || _buffer.Complete) return 0;
        return await _source.ReadAsync(destination, cancellationToken);
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing && !_disposed)
        {
            _disposed = true;
            _buffer.Dispose();
            _source?.Dispose();
        }
        base.Dispose(disposing);
    }

    public override async ValueTask DisposeAsync()
    {
        if (!_disposed)
        {
            _disposed = true;
            _buffer.Dispose();
            if (_source is not null) await _source.DisposeAsync();
        }
        await base.DisposeAsync();
    }
}
