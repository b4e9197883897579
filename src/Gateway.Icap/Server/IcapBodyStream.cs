using System.Buffers;
using System.IO.Pipelines;
using Gateway.Icap.Protocol;

namespace Gateway.Icap.Server;

/// <summary>
/// The decoded encapsulated body of one request, read straight from the connection's pipe. Reading past the end of a
/// preview (0 chunk without <c>ieof</c>) sends <c>100 Continue</c> and goes on with the rest of the body.
/// </summary>
internal sealed class IcapBodyStream : Stream
{
    private const int MaxReplayBytes = 1024 * 1024;

    private readonly IcapServerConnection _connection;
    private readonly IcapChunkedDecoder? _decoder;
    private readonly bool _preview;
    private bool _atPreviewEnd;
    private bool _completed;
    private bool _readStarted;
    private byte[]? _replay;
    private int _replayLength;
    private int _replayOffset;

    public IcapBodyStream(IcapServerConnection connection, IcapRequestHead head)
    {
        _connection = connection;
        if (head.Encapsulated.HasBody)
        {
            _decoder = new IcapChunkedDecoder(connection.Limits);
            _preview = head.Preview is not null;
        }
        else
        {
            _completed = true;
        }
    }

    public bool ContinueSent { get; private set; }

    public bool Ieof => _decoder?.Ieof == true && !ContinueSent;

    public bool IsCompleted => _completed;

    public IcapHeaders? Trailers => _completed ? _decoder?.Trailers : null;

    /// <summary>The client holds body bytes it sends only after 100 Continue.</summary>
    public bool PreviewPending => _preview && !ContinueSent && !_completed;

    public override bool CanRead => true;

    public override bool CanSeek => false;

    public override bool CanWrite => false;

    public override long Length => throw new NotSupportedException();

    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override void Flush()
    {
    }

    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();

    public override void SetLength(long value) => throw new NotSupportedException();

    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        _readStarted = true;
        if (buffer.IsEmpty) return ValueTask.FromResult(0);
        if (_replayOffset < _replayLength)
        {
            var n = Math.Min(buffer.Length, _replayLength - _replayOffset);
            _replay.AsSpan(_replayOffset, n).CopyTo(buffer.Span);
            _replayOffset += n;
            return ValueTask.FromResult(n);
        }
        return ReadDecodedAsync(buffer, allowContinue: true, cancellationToken);
    }

    /// <summary>Reads up to <paramref name="max"/> bytes without sending 100 Continue; they stay readable from the stream.</summary>
    public async ValueTask<ReadOnlyMemory<byte>> ReadPreviewAsync(int max, CancellationToken cancellationToken)
    {
        if (_replay is not null) return _replay.AsMemory(0, _replayLength);
        if (_readStarted) throw new InvalidOperationException("The body has already been read from.");
        await FillReplayAsync(Math.Clamp(max, 0, MaxReplayBytes), cancellationToken);
        return _replay.AsMemory(0, _replayLength);
    }

    /// <summary>
    /// Before a response that streams a body: read the rest of the preview (kept for replay) and, unless it ended with
    /// <c>ieof</c>, send 100 Continue so that the whole body can be read after the response head is written.
    /// </summary>
    public async ValueTask EnsureFullBodyAsync(CancellationToken cancellationToken)
    {
        if (!PreviewPending) return;
        while (!_atPreviewEnd && !_completed)
        {
            var before = _replayLength;
            await FillReplayAsync(int.MaxValue, cancellationToken);
            if (_replayLength == before && !_atPreviewEnd && !_completed) throw new InvalidOperationException("no progress");
        }
        if (_atPreviewEnd) await SendContinueAsync(cancellationToken);
    }

    private async ValueTask FillReplayAsync(int max, CancellationToken cancellationToken)
    {
        _replay ??= ArrayPool<byte>.Shared.Rent(Math.Min(Math.Max(max, 1), 16 * 1024));
        while (_replayLength < max)
        {
            if (_replayLength == _replay.Length)
            {
                if (_replay.Length >= MaxReplayBytes) IcapThrow.Reject(IcapRejectionReason.InvalidPreview, "preview larger than 1 MiB");
                var bigger = ArrayPool<byte>.Shared.Rent(Math.Min(_replay.Length * 2, MaxReplayBytes));
                _replay.AsSpan(0, _replayLength).CopyTo(bigger);
                ArrayPool<byte>.Shared.Return(_replay);
                _replay = bigger;
            }
            var room = Math.Min(_replay.Length, max) - _replayLength;
            var n = await ReadDecodedAsync(_replay.AsMemory(_replayLength, room), allowContinue: false, cancellationToken);
            if (n == 0) return;
            _replayLength += n;
        }
    }

    /// <summary>Discards what is left of the body the client will send: up to the end of the preview when no 100 Continue was sent.</summary>
    public async ValueTask DrainAsync(CancellationToken cancellationToken)
    {
        while (!_completed && !_atPreviewEnd)
        {
            var result = await _connection.ReadBodyAsync(cancellationToken);
            var buffer = result.Buffer;
            var reader = new SequenceReader<byte>(buffer);
            var needMore = false;
            try
            {
                while (true)
                {
                    var status = _decoder!.Read(ref reader, long.MaxValue, out _);
                    if (status == IcapChunkedReadStatus.Data) continue;
                    if (status == IcapChunkedReadStatus.Completed) OnLastChunk();
                    else needMore = true;
                    break;
                }
            }
            finally
            {
                _connection.Input.AdvanceTo(reader.Position, needMore ? buffer.End : reader.Position);
            }
            if (needMore && result.IsCompleted) IcapThrow.Reject(IcapRejectionReason.UnexpectedEndOfMessage);
        }
    }

    /// <summary>
    /// Copies the rest of the body, re-chunked, to <paramref name="output"/> without an intermediate buffer. Flushes only
    /// before waiting for more input or after 64 KiB, so a body that is already buffered leaves in one write.
    /// </summary>
    public async ValueTask CopyChunkedToAsync(PipeWriter output, CancellationToken cancellationToken)
    {
        const long FlushThreshold = 64 * 1024;
        _readStarted = true;
        long unflushed = 0;
        var mustWait = false; // after an incomplete element, TryRead would return the same bytes again
        if (_replayOffset < _replayLength)
        {
            IcapWriter.WriteChunk(output, _replay.AsSpan(_replayOffset, _replayLength - _replayOffset));
            unflushed += _replayLength - _replayOffset;
            _replayOffset = _replayLength;
        }
        while (true)
        {
            if (_atPreviewEnd) await SendContinueAsync(cancellationToken);
            if (_completed) return;
            ReadResult result = default;
            if (mustWait || !_connection.Input.TryRead(out result))
            {
                if (unflushed > 0)
                {
                    await _connection.FlushAsync(cancellationToken);
                    unflushed = 0;
                }
                result = await _connection.ReadBodyAsync(cancellationToken);
            }
            var buffer = result.Buffer;
            var reader = new SequenceReader<byte>(buffer);
            var needMore = false;
            try
            {
                while (true)
                {
                    var status = _decoder!.Read(ref reader, long.MaxValue, out var data);
                    if (status == IcapChunkedReadStatus.Data)
                    {
                        IcapWriter.WriteChunkHeader(output, data.Length);
                        foreach (var segment in data) output.Write(segment.Span);
                        IcapWriter.WriteChunkEnd(output);
                        unflushed += data.Length;
                        continue;
                    }
                    if (status == IcapChunkedReadStatus.Completed) OnLastChunk();
                    else needMore = true;
                    break;
                }
            }
            finally
            {
                _connection.Input.AdvanceTo(reader.Position, needMore ? buffer.End : reader.Position);
            }
            if (unflushed >= FlushThreshold)
            {
                await _connection.FlushAsync(cancellationToken);
                unflushed = 0;
            }
            if (needMore && result.IsCompleted) IcapThrow.Reject(IcapRejectionReason.UnexpectedEndOfMessage);
            mustWait = needMore;
        }
    }

    private async ValueTask<int> ReadDecodedAsync(Memory<byte> destination, bool allowContinue, CancellationToken cancellationToken)
    {
        while (true)
        {
            if (_completed) return 0;
            if (_atPreviewEnd)
            {
                if (!allowContinue) return 0;
                await SendContinueAsync(cancellationToken);
            }
            var result = await _connection.ReadBodyAsync(cancellationToken);
            var buffer = result.Buffer;
            var reader = new SequenceReader<byte>(buffer);
            var copied = 0;
            var needMore = false;
            try
            {
                while (copied < destination.Length)
                {
                    var status = _decoder!.Read(ref reader, destination.Length - copied, out var data);
                    if (status == IcapChunkedReadStatus.Data)
                    {
                        data.CopyTo(destination.Span[copied..]);
                        copied += (int)data.Length;
                        continue;
                    }
                    if (status == IcapChunkedReadStatus.Completed) OnLastChunk();
                    else needMore = true;
                    break;
                }
            }
            finally
            {
                _connection.Input.AdvanceTo(reader.Position, needMore ? buffer.End : reader.Position);
            }
            if (copied > 0) return copied;
            if (needMore && result.IsCompleted) IcapThrow.Reject(IcapRejectionReason.UnexpectedEndOfMessage);
        }
    }

    /// <summary>Returns the preview buffer to the pool once the request is over.</summary>
    public void Release()
    {
        if (_replay is null) return;
        ArrayPool<byte>.Shared.Return(_replay);
        _replay = null;
        _replayLength = _replayOffset = 0;
    }

    private void OnLastChunk()
    {
        if (_preview && !ContinueSent && !_decoder!.Ieof) _atPreviewEnd = true;
        else _completed = true;
    }

    private async ValueTask SendContinueAsync(CancellationToken cancellationToken)
    {
        if (_connection.ResponseStarted) throw new InvalidOperationException("Cannot read past the preview once the response has started.");
        await _connection.WriteContinueAsync(cancellationToken);
        _decoder!.ContinueAfterPreview();
        _atPreviewEnd = false;
        ContinueSent = true;
    }
}
