using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;
using Gateway.Icap.Protocol;

namespace Gateway.Icap.Client;

/// <summary>
/// One ICAP exchange on one rented connection: the writer side (heads, preview, the body pump running concurrently
/// with the answer) and the reader side (answer head, encapsulated heads, chunked body). It decides at the end whether
/// the connection goes back to the pool.
/// </summary>
internal sealed class IcapTransaction : IAsyncDisposable
{
    private const int ChunkPrefix = 18; // room for "ffffffffffffffff\r\n"
    private const int ChunkData = 64 * 1024 - 32; // prefix + data + CRLF fit a 64 KB pooled array (not LOH-sized)

    private readonly IcapConnectionPool _pool;
    private readonly IcapClientOptions _options;
    private readonly CancellationTokenSource _readCts;
    private CancellationTokenSource _writeCts;
    private readonly CancellationToken _callerToken;
    private Task? _sender;
    private Exception? _senderError;
    private int _released;
    private long _bytesSent;
    private long _bytesReceived;

    public IcapTransaction(IcapConnectionPool pool, IcapConnection connection, bool reused, IcapClientOptions options, CancellationToken cancellationToken)
    {
        _pool = pool;
        Connection = connection;
        Reused = reused;
        _options = options;
        _callerToken = cancellationToken;
        // Sequential reads and writes share one timeout source; the body pump gets its own (StartSender).
        _readCts = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        _writeCts = _readCts;
    }

    public IcapConnection Connection { get; }

    public bool Reused { get; }

    public long BytesSent => Interlocked.Read(ref _bytesSent);

    public long BytesReceived => Interlocked.Read(ref _bytesReceived);

    /// <summary>True once any byte of the answer has arrived (no retry after that).</summary>
    public bool AnswerStarted { get; private set; }

    /// <summary>The body pump has read from the original source beyond the replay buffer (no retry after that).</summary>
    public bool SourceTouched { get; private set; }

    public bool ConnectionCloseRequested { get; set; }

    private PipeReader Reader => Connection.Reader;

    // ---------------- writing ----------------

    public async ValueTask WriteAsync(ReadOnlyMemory<byte> data)
    {
        _writeCts.CancelAfter(_options.IoTimeout);
        try
        {
            await Connection.WriteAsync(data, _writeCts.Token);
            Interlocked.Add(ref _bytesSent, data.Length);
        }
        catch (Exception ex) when (ex is not IcapClientException)
        {
            _callerToken.ThrowIfCancellationRequested();
            throw MapIoError(ex, _writeCts, "sending to the service");
        }
        finally
        {
            _writeCts.CancelAfter(Timeout.InfiniteTimeSpan);
        }
    }

    /// <summary>Appends one chunk (size line, data, CRLF) for <paramref name="data"/> to <paramref name="writer"/>.</summary>
    public static void AppendChunk(ArrayBufferWriter<byte> writer, ReadOnlySpan<byte> data) => IcapWriter.WriteChunk(writer, data);

    /// <summary>Starts the body pump: the rest of the buffered bytes, then the source to its end, then the last chunk.</summary>
    public void StartSender(ReadOnlyMemory<byte> bufferedRest, Stream? source)
    {
        _writeCts = CancellationTokenSource.CreateLinkedTokenSource(_callerToken);
        _sender = Task.Run(() => PumpAsync(bufferedRest, source));
    }

    private async Task PumpAsync(ReadOnlyMemory<byte> bufferedRest, Stream? source)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(ChunkPrefix + ChunkData + 2);
        try
        {
            while (!bufferedRest.IsEmpty)
            {
                var n = Math.Min(ChunkData, bufferedRest.Length);
                bufferedRest.Span[..n].CopyTo(buffer.AsSpan(ChunkPrefix));
                await WriteChunkAsync(buffer, n);
                bufferedRest = bufferedRest[n..];
            }
            if (source is not null)
            {
                SourceTouched = true;
                while (true)
                {
                    int n;
                    try
                    {
                        n = await source.ReadAsync(buffer.AsMemory(ChunkPrefix, ChunkData), _writeCts.Token);
                    }
                    catch (Exception ex) when (ex is not OperationCanceledException || !_writeCts.IsCancellationRequested)
                    {
                        throw new IcapClientException(IcapClientError.BodySourceFailed, "reading the original body failed: " + ex.Message, ex);
                    }
                    if (n == 0) break;
                    await WriteChunkAsync(buffer, n);
                }
            }
            await WriteAsync("0\r\n\r\n"u8.ToArray());
        }
        catch (Exception ex)
        {
            _senderError = ex;
            // The message cannot be completed: close the connection so the reader fails now, not at its timeout.
            // (After a complete answer the connection is not reused anyway.)
            if (!_answerComplete) Connection.Abort();
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private volatile bool _answerComplete;

    private ValueTask WriteChunkAsync(byte[] buffer, int n)
    {
        Span<byte> header = stackalloc byte[ChunkPrefix];
        n.TryFormat(header, out var hex, "x", System.Globalization.CultureInfo.InvariantCulture);
        header[hex++] = (byte)'\r';
        header[hex++] = (byte)'\n';
        var start = ChunkPrefix - hex;
        header[..hex].CopyTo(buffer.AsSpan(start));
        buffer[ChunkPrefix + n] = (byte)'\r';
        buffer[ChunkPrefix + n + 1] = (byte)'\n';
        return WriteAsync(buffer.AsMemory(start, hex + n + 2));
    }

    // ---------------- reading ----------------

    /// <summary>Reads the answer's status line and headers, and for 200/206 the encapsulated HTTP heads.</summary>
    public async Task<(IcapResponseHead Head, HttpRequestHead? Request, HttpResponseHead? Response)> ReadHeadAsync(IcapMethod method)
    {
        IcapResponseHead? head = null;
        while (true)
        {
            var result = await ReadAsync();
            var buffer = result.Buffer;
            if (buffer.Length > 0) AnswerStarted = true;
            var reader = new SequenceReader<byte>(buffer);
            try
            {
                if (head is null && IcapParser.TryParseResponseHead(ref reader, IcapClientLimits.Value, method, out var parsed))
                {
                    head = parsed;
                    if (head.ConnectionClose) ConnectionCloseRequested = true;
                }
                if (head is not null)
                {
                    if (head.Encapsulated is not { } e || head.StatusCode is not (200 or 206))
                    {
                        CountReceived(reader.Consumed);
                        Reader.AdvanceTo(reader.Position);
                        return (head, null, null);
                    }
                    if (IcapParser.TryParseEncapsulatedHeads(ref reader, e, IcapClientLimits.Value, out var req, out var res))
                    {
                        CountReceived(reader.Consumed);
                        Reader.AdvanceTo(reader.Position);
                        return (head, req, res);
                    }
                }
            }
            catch (IcapProtocolException ex)
            {
                Reader.AdvanceTo(buffer.Start);
                throw new IcapClientException(IcapClientError.ProtocolError, "invalid answer from the service: " + ex.Message, ex);
            }
            if (result.IsCompleted)
            {
                Reader.AdvanceTo(reader.Position, buffer.End);
                throw ClosedError(buffer.Length == 0 && !AnswerStarted);
            }
            Reader.AdvanceTo(reader.Position, buffer.End);
        }
    }

    /// <summary>Reads the next buffer from the service, within the I/O timeout.</summary>
    public async ValueTask<ReadResult> ReadAsync(CancellationToken consumerToken = default)
    {
        _readCts.CancelAfter(_options.IoTimeout);
        CancellationTokenRegistration registration = default;
        if (consumerToken.CanBeCanceled) registration = consumerToken.UnsafeRegister(static s => ((CancellationTokenSource)s!).Cancel(), _readCts);
        try
        {
            var result = await Reader.ReadAsync(_readCts.Token);
            if (result.IsCanceled) throw new OperationCanceledException();
            return result;
        }
        catch (Exception ex) when (ex is not IcapClientException)
        {
            consumerToken.ThrowIfCancellationRequested();
            _callerToken.ThrowIfCancellationRequested();
            throw MapIoError(ex, _readCts, "reading from the service");
        }
        finally
        {
            registration.Dispose();
            _readCts.CancelAfter(Timeout.InfiniteTimeSpan);
        }
    }

    public void CountReceived(long n) => Interlocked.Add(ref _bytesReceived, n);

    /// <summary>Reads and discards a chunked body (an OPTIONS opt-body, an error answer's body).</summary>
    public async Task SkipChunkedBodyAsync()
    {
        var decoder = new IcapChunkedDecoder(IcapClientLimits.Value);
        while (true)
        {
            var result = await ReadAsync();
            var reader = new SequenceReader<byte>(result.Buffer);
            try
            {
                while (decoder.Read(ref reader, long.MaxValue, out _) == IcapChunkedReadStatus.Data)
                {
                }
            }
            catch (IcapProtocolException ex)
            {
                throw new IcapClientException(IcapClientError.ProtocolError, "invalid chunked body from the service: " + ex.Message, ex);
            }
            Reader.AdvanceTo(reader.Position, result.Buffer.End);
            if (decoder.IsCompleted) return;
            if (result.IsCompleted) throw ClosedError(false);
        }
    }

    // ---------------- completion ----------------

    /// <summary>The answer was read completely; the connection goes back to the pool if the exchange ended cleanly.</summary>
    public async ValueTask CompleteAsync(bool leftoverBytes)
    {
        _answerComplete = true;
        var clean = !leftoverBytes && !ConnectionCloseRequested;
        if (_sender is { } sender)
        {
            if (!sender.IsCompleted)
            {
                // An early answer: the service may still read the rest; give the pump a moment, then stop it.
                try
                {
                    await sender.WaitAsync(TimeSpan.FromMilliseconds(200));
                }
                catch (TimeoutException)
                {
                    clean = false;
                    _writeCts.Cancel();
                    Connection.Abort();
                    try { await sender; } catch (Exception) { }
                }
            }
            if (_senderError is not null) clean = false;
        }
        await ReleaseAsync(clean);
    }

    /// <summary>The pump's failure, if any: a failing origin body explains a broken answer better than the broken answer.</summary>
    public Exception? SenderError => _senderError;

    public async ValueTask ReleaseAsync(bool reusable)
    {
        if (Interlocked.Exchange(ref _released, 1) != 0) return;
        if (!reusable)
        {
            _writeCts.Cancel();
            Connection.Abort();
        }
        if (_sender is { } s)
        {
            try { await s; } catch (Exception) { }
        }
        _readCts.Dispose();
        if (!ReferenceEquals(_writeCts, _readCts)) _writeCts.Dispose();
        await _pool.ReturnAsync(Connection, reusable);
    }

    public ValueTask DisposeAsync() => ReleaseAsync(false);

    private IcapClientException MapIoError(Exception ex, CancellationTokenSource cts, string what)
    {
        if (ex is OperationCanceledException && !_callerToken.IsCancellationRequested && cts.IsCancellationRequested)
        {
            return new IcapClientException(IcapClientError.Timeout, $"timed out {what} (no progress within {_options.IoTimeout.TotalSeconds:0.###} s)", ex);
        }
        if (ex is OperationCanceledException) return new IcapClientException(IcapClientError.ConnectionClosed, "canceled", ex);
        if (_senderError is IcapClientException { Error: IcapClientError.BodySourceFailed } source) return source;
        return ex is IOException or SocketException or ObjectDisposedException
            ? new IcapClientException(IcapClientError.ConnectionClosed, $"connection failed {what}: {ex.GetBaseException().Message}", ex)
            : new IcapClientException(IcapClientError.ProtocolError, $"error {what}: {ex.Message}", ex);
    }

    private IcapClientException ClosedError(bool beforeAnyByte)
    {
        if (_senderError is IcapClientException { Error: IcapClientError.BodySourceFailed } source) return source;
        return new IcapClientException(IcapClientError.ConnectionClosed,
            beforeAnyByte ? "the service closed the connection without answering" : "the service closed the connection in the middle of its answer");
    }
}
