using System.Buffers;
using Gateway.Icap.Protocol;

namespace Gateway.Icap.Client;

/// <summary>
/// The body of a 200/206 answer, decoded from ICAP chunks as the consumer reads it (never buffered whole). At the end
/// of a 206 it continues with the original body from the <c>use-original-body</c> offset. Reaching the end gives the
/// connection back; disposing earlier closes it.
/// </summary>
internal sealed class IcapBodyStream : Stream
{
    private readonly IcapTransaction _transaction;
    private readonly IcapChunkedDecoder _decoder = new(IcapClientLimits.Value);
    private readonly Func<long, Stream?>? _originalFrom;
    private readonly Action<IcapClientException>? _onFailure;
    private Stream? _tail;
    private bool _icapDone;
    private bool _disposed;

    public IcapBodyStream(IcapTransaction transaction, Func<long, Stream?>? originalFrom, Action<IcapClientException>? onFailure)
    {
        _transaction = transaction;
        _originalFrom = originalFrom;
        _onFailure = onFailure;
    }

    /// <summary>Decoded bytes of the ICAP body so far (without the original tail of a 206).</summary>
    public long IcapBodyLength => _decoder.BodyLength;

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override async ValueTask<int> ReadAsync(Memory<byte> destination, CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (destination.IsEmpty) return 0;
        if (_icapDone) return _tail is null ? 0 : await _tail.ReadAsync(destination, cancellationToken);
        try
        {
            while (true)
            {
                var result = await _transaction.ReadAsync(cancellationToken);
                var buffer = result.Buffer;
                var reader = new SequenceReader<byte>(buffer);
                var written = 0;
                try
                {
                    while (written < destination.Length
                        && _decoder.Read(ref reader, destination.Length - written, out var data) == IcapChunkedReadStatus.Data)
                    {
                        data.CopyTo(destination.Span[written..]);
                        written += (int)data.Length;
                    }
                }
                catch (IcapProtocolException ex)
                {
                    _transaction.Connection.Reader.AdvanceTo(buffer.Start);
                    throw new IcapClientException(IcapClientError.ProtocolError, "invalid chunked body from the service: " + ex.Message, ex);
                }
                _transaction.CountReceived(buffer.Slice(0, reader.Position).Length);
                if (_decoder.IsCompleted)
                {
                    var leftover = reader.Remaining > 0;
                    _transaction.Connection.Reader.AdvanceTo(reader.Position);
                    await FinishIcapAsync(leftover);
                    if (written > 0) return written;
                    return _tail is null ? 0 : await _tail.ReadAsync(destination, cancellationToken);
                }
                if (written > 0)
                {
                    _transaction.Connection.Reader.AdvanceTo(reader.Position);
                    return written;
                }
                if (result.IsCompleted)
                {
                    _transaction.Connection.Reader.AdvanceTo(reader.Position, buffer.End);
                    throw _transaction.SenderError as IcapClientException
                        ?? new IcapClientException(IcapClientError.ConnectionClosed, "the service closed the connection in the middle of the body");
                }
                _transaction.Connection.Reader.AdvanceTo(reader.Position, buffer.End);
            }
        }
        catch (IcapClientException ex)
        {
            _onFailure?.Invoke(ex);
            await _transaction.ReleaseAsync(false);
            throw;
        }
    }

    private async ValueTask FinishIcapAsync(bool leftover)
    {
        _icapDone = true;
        if (_decoder.UseOriginalBody is { } offset)
        {
            _tail = _originalFrom?.Invoke(offset)
                ?? throw new IcapClientException(IcapClientError.ProtocolError, $"206 use-original-body={offset} but the original body from there is not available");
        }
        await _transaction.CompleteAsync(leftover);
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
        if (disposing) DisposeAsync().AsTask().GetAwaiter().GetResult();
    }

    public override async ValueTask DisposeAsync()
    {
        if (_disposed) return;
        _disposed = true;
        if (!_icapDone) await _transaction.ReleaseAsync(false);
        if (_tail is not null) await _tail.DisposeAsync();
        GC.SuppressFinalize(this);
    }
}
