using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.IO.Pipelines;
using System.Net;
using Gateway.Icap.Protocol;
using Microsoft.AspNetCore.Connections;
using Microsoft.Extensions.Logging;

namespace Gateway.Icap.Server;

/// <summary>
/// The ICAP server protocol loop over one duplex pipe: read a request head, its encapsulated HTTP heads, dispatch to
/// the service, write the answer, drain what is left of the body, repeat while the connection persists. Semantic
/// errors become ICAP replies on a kept-alive connection; broken framing gets a reply with <c>Connection: close</c>.
/// </summary>
internal sealed class IcapServerConnection
{
    private static readonly TimeSpan LingerTime = TimeSpan.FromMilliseconds(100);

    private readonly PipeReader _input;
    private readonly PipeWriter _output;
    private readonly IcapServiceRegistry _services;
    private readonly IcapServerOptions _options;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly string _connectionId;
    private readonly IPEndPoint? _remote;
    private readonly bool _overLimit;
    private ITimer? _timer;
    private long _deadline = long.MaxValue;
    private volatile bool _closeRequested;
    private volatile bool _idle;
    private bool _closeAfterResponse;
    private CancellationToken _aborted;

    public IcapServerConnection(IDuplexPipe transport, IcapServiceRegistry services, IcapServerOptions options, ILogger logger,
        TimeProvider time, string connectionId, IPEndPoint? remote, bool overLimit)
    {
        _input = transport.Input;
        _output = transport.Output;
        _services = services;
        _options = options;
        Limits = options.ToLimits();
        _logger = logger;
        _time = time;
        _connectionId = connectionId;
        _remote = remote;
        _overLimit = overLimit;
    }

    internal IcapParserLimits Limits { get; }

    internal PipeReader Input => _input;

    internal bool ResponseStarted { get; private set; }

    /// <summary>Serves requests until the peer closes, a timeout, broken framing, or <paramref name="closeRequested"/> between requests.</summary>
    public async Task RunAsync(CancellationToken closeRequested, CancellationToken aborted)
    {
        _aborted = aborted;
        _timer = _time.CreateTimer(static s => ((IcapServerConnection)s!).OnTimer(), this, Timeout.InfiniteTimeSpan, Timeout.InfiniteTimeSpan);
        using var closeRegistration = closeRequested.Register(static s => ((IcapServerConnection)s!).OnCloseRequested(), this);
        try
        {
            while (!aborted.IsCancellationRequested)
            {
                IcapRequestHead? head;
                try
                {
                    head = await ReadRequestHeadAsync();
                }
                catch (IcapProtocolException ex)
                {
                    IcapServerLog.BadRequest(_logger, _connectionId, ex.StatusCode, ex.Message);
                    IcapServerMetrics.RecordRequest("", "", ex.StatusCode, 0);
                    await WriteErrorAsync(ex.StatusCode, null, close: true, null, null, aborted);
                    await LingerAsync();
                    return;
                }
                if (head is null) return;
                if (!await ProcessAsync(head, aborted)) return;
                if (_closeRequested) return;
            }
        }
        catch (Exception ex) when (ex is OperationCanceledException or ConnectionAbortedException or ConnectionResetException or IOException
                                   || aborted.IsCancellationRequested)
        {
            IcapServerLog.ConnectionAborted(_logger, _connectionId, ex.Message);
        }
        finally
        {
            _timer.Dispose();
        }
    }

    private async ValueTask<bool> ProcessAsync(IcapRequestHead head, CancellationToken aborted)
    {
        var started = _time.GetTimestamp();
        var serviceName = head.ServiceName;
        var method = head.Method.ToToken();
        var status = 0;
        using var activity = IcapTelemetry.ActivitySource.StartActivity($"ICAP {method}", ActivityKind.Server);
        activity?.SetTag("icap.method", method);
        activity?.SetTag("icap.service", serviceName);
        ResponseStarted = false;
        _closeAfterResponse = head.ConnectionClose || _closeRequested;
        IcapService? service = null;
        IcapBodyStream? body = null;
        try
        {
            HttpRequestHead? httpRequest;
            HttpResponseHead? httpResponse;
            try
            {
                (httpRequest, httpResponse) = await ReadEncapsulatedHeadsAsync(head.Encapsulated);
            }
            catch (IcapProtocolException ex)
            {
                status = ex.StatusCode;
                IcapServerLog.BadRequest(_logger, _connectionId, ex.StatusCode, ex.Message);
                await WriteErrorAsync(ex.StatusCode, null, close: true, null, null, aborted);
                await LingerAsync();
                return false;
            }
            finally
            {
                ClearDeadline();
            }

            if (_overLimit)
            {
                status = 503;
                await WriteErrorAsync(503, null, close: true, null, null, aborted);
                await LingerAsync();
                return false;
            }

            body = new IcapBodyStream(this, head);
            service = _services.Find(serviceName);
            if (service is null)
            {
                status = await DrainAndRejectAsync(body, 404, aborted);
                return !_closeAfterResponse;
            }
            if (head.Method == IcapMethod.Options)
            {
                await body.DrainAsync(aborted);
                status = 200;
                await WriteOptionsAsync(service, aborted);
                return !_closeAfterResponse;
            }
            if (!service.Declaration.Methods.Contains(head.Method))
            {
                status = await DrainAndRejectAsync(body, 405, aborted);
                return !_closeAfterResponse;
            }

            var context = new IcapRequestContext(this, service, head, httpRequest, httpResponse, body, _remote, aborted);
            try
            {
                await service.HandleAsync(context, aborted);
            }
            catch (Exception ex) when (ex is not IcapProtocolException && !aborted.IsCancellationRequested)
            {
                IcapServerLog.ServiceFailed(_logger, ex, _connectionId, service.Name);
                status = 500;
                if (!ResponseStarted) await WriteErrorAsync(500, null, close: true, service, null, aborted);
                return false;
            }
            if (!context.HasResponded)
            {
                IcapServerLog.ServiceDidNotRespond(_logger, _connectionId, service.Name);
                status = await DrainAndRejectAsync(body, 500, aborted, service);
                return !_closeAfterResponse;
            }
            status = context.ResponseStatus;
            await body.DrainAsync(aborted);
            return !_closeAfterResponse;
        }
        catch (IcapProtocolException ex)
        {
            // Broken framing inside the body: answer if nothing was written yet, then close.
            status = ex.StatusCode;
            IcapServerLog.BadRequest(_logger, _connectionId, ex.StatusCode, ex.Message);
            if (!ResponseStarted)
            {
                await WriteErrorAsync(ex.StatusCode, null, close: true, service, null, aborted);
                await LingerAsync();
            }
            return false;
        }
        finally
        {
            body?.Release();
            var elapsed = _time.GetElapsedTime(started).TotalSeconds;
            IcapServerMetrics.RecordRequest(service?.Name ?? "", method, status, elapsed);
            activity?.SetTag("icap.status_code", status);
            IcapServerLog.RequestCompleted(_logger, _connectionId, method, serviceName, status, elapsed * 1000);
        }
    }

    private async ValueTask<int> DrainAndRejectAsync(IcapBodyStream body, int status, CancellationToken aborted, IcapService? service = null)
    {
        await body.DrainAsync(aborted);
        await WriteErrorAsync(status, null, close: _closeAfterResponse, service, null, aborted);
        return status;
    }

    // ---- reading ----

    private async ValueTask<IcapRequestHead?> ReadRequestHeadAsync()
    {
        var started = false;
        _idle = true;
        SetDeadline(_options.IdleTimeout);
        try
        {
            while (true)
            {
                if (_closeRequested && !started) return null;
                var result = await _input.ReadAsync();
                var buffer = result.Buffer;
                var consumed = buffer.Start;
                var examined = buffer.End;
                try
                {
                    if (!buffer.IsEmpty && !started)
                    {
                        started = true;
                        _idle = false;
                        SetDeadline(_options.RequestHeadersTimeout);
                    }
                    if (!buffer.IsEmpty)
                    {
                        var reader = new SequenceReader<byte>(buffer);
                        if (IcapParser.TryParseRequestHead(ref reader, Limits, out var head))
                        {
                            consumed = examined = reader.Position;
                            return head;
                        }
                    }
                    if (result.IsCompleted)
                    {
                        if (buffer.IsEmpty) return null;
                        IcapThrow.Reject(IcapRejectionReason.UnexpectedEndOfMessage);
                    }
                    if (result.IsCanceled && DeadlinePassed())
                    {
                        if (!started) return null; // idle keep-alive timeout: close quietly
                        IcapThrow.Reject(IcapRejectionReason.RequestTimeout);
                    }
                }
                finally
                {
                    _input.AdvanceTo(consumed, examined);
                }
            }
        }
        finally
        {
            _idle = false;
        }
    }

    private delegate bool HeadsParser(ref SequenceReader<byte> reader, out HttpRequestHead? request, out HttpResponseHead? response);

    private async ValueTask<(HttpRequestHead?, HttpResponseHead?)> ReadEncapsulatedHeadsAsync(IcapEncapsulated encapsulated)
    {
        if (!encapsulated.HasReqHdr && !encapsulated.HasResHdr)
        {
            var empty = new SequenceReader<byte>(ReadOnlySequence<byte>.Empty);
            IcapParser.TryParseEncapsulatedHeads(ref empty, encapsulated, Limits, out _, out _); // validates the offsets
            return (null, null);
        }
        while (true)
        {
            var result = await _input.ReadAsync();
            var buffer = result.Buffer;
            var consumed = buffer.Start;
            var examined = buffer.End;
            try
            {
                var reader = new SequenceReader<byte>(buffer);
                if (IcapParser.TryParseEncapsulatedHeads(ref reader, encapsulated, Limits, out var request, out var response))
                {
                    consumed = examined = reader.Position;
                    return (request, response);
                }
                if (result.IsCompleted) IcapThrow.Reject(IcapRejectionReason.UnexpectedEndOfMessage);
                if (result.IsCanceled && DeadlinePassed()) IcapThrow.Reject(IcapRejectionReason.RequestTimeout);
            }
            finally
            {
                _input.AdvanceTo(consumed, examined);
            }
        }
    }

    /// <summary>One read of body bytes, bounded by the idle timeout.</summary>
    internal async ValueTask<ReadResult> ReadBodyAsync(CancellationToken cancellationToken)
    {
        SetDeadline(_options.IdleTimeout);
        while (true)
        {
            var result = await _input.ReadAsync(cancellationToken);
            if (!result.IsCanceled) return result;
            if (DeadlinePassed())
            {
                _input.AdvanceTo(result.Buffer.Start, result.Buffer.End);
                IcapThrow.Reject(IcapRejectionReason.RequestTimeout);
            }
            if (!result.Buffer.IsEmpty || result.IsCompleted) return result;
            _input.AdvanceTo(result.Buffer.Start, result.Buffer.End);
        }
    }

    /// <summary>After a reply with Connection: close, read and discard briefly so the peer can read the reply before the socket closes.</summary>
    private async ValueTask LingerAsync()
    {
        SetDeadline(LingerTime);
        try
        {
            long discarded = 0;
            while (discarded < 4 * 1024 * 1024)
            {
                var result = await _input.ReadAsync();
                discarded += result.Buffer.Length;
                _input.AdvanceTo(result.Buffer.End);
                if (result.IsCompleted || (result.IsCanceled && DeadlinePassed())) return;
            }
        }
        catch (Exception ex) when (ex is IOException or ConnectionResetException or ConnectionAbortedException or InvalidOperationException)
        {
        }
        finally
        {
            ClearDeadline();
        }
    }

    // ---- timeouts ----

    private void SetDeadline(TimeSpan timeout)
    {
        Volatile.Write(ref _deadline, _time.GetTimestamp() + (long)(timeout.TotalSeconds * _time.TimestampFrequency));
        _timer?.Change(timeout, Timeout.InfiniteTimeSpan);
    }

    private void ClearDeadline() => Volatile.Write(ref _deadline, long.MaxValue);

    private bool DeadlinePassed() => _time.GetTimestamp() >= Volatile.Read(ref _deadline);

    private void OnTimer()
    {
        var deadline = Volatile.Read(ref _deadline);
        if (deadline == long.MaxValue) return;
        var now = _time.GetTimestamp();
        if (now >= deadline)
        {
            _input.CancelPendingRead();
            return;
        }
        var remaining = TimeSpan.FromSeconds((double)(deadline - now) / _time.TimestampFrequency);
        try
        {
            _timer?.Change(remaining + TimeSpan.FromMilliseconds(1), Timeout.InfiniteTimeSpan);
        }
        catch (ObjectDisposedException)
        {
        }
    }

    private void OnCloseRequested()
    {
        _closeRequested = true;
        if (_idle) _input.CancelPendingRead();
    }

    // ---- writing ----

    internal async ValueTask FlushAsync(CancellationToken cancellationToken)
    {
        var result = await _output.FlushAsync(cancellationToken);
        if (result.IsCompleted || result.IsCanceled) throw new ConnectionAbortedException("The ICAP client stopped reading.");
    }

    internal ValueTask WriteContinueAsync(CancellationToken cancellationToken)
    {
        _output.Write(IcapWriter.Continue);
        return FlushAsync(cancellationToken);
    }

    private IcapHeaders CommonHeaders(IcapService? service, IcapHeaders? extra, bool close)
    {
        // A graceful shutdown that arrived during the request closes the connection after this answer.
        _closeAfterResponse |= _closeRequested;
        close |= _closeAfterResponse;
        var headers = new IcapHeaders(8);
        if (service is not null) headers.Add("ISTag", service.IsTag);
        headers.Add("Date", HttpDate.Now(_time));
        headers.Add("Server", _options.ServerName);
        if (extra is not null)
        {
            foreach (var (name, value) in extra) headers.Add(name, value);
        }
        if (close) headers.Add("Connection", "close");
        return headers;
    }

    internal async ValueTask WriteErrorAsync(int status, string? reason, bool close, IcapService? service, IcapHeaders? extra,
        CancellationToken cancellationToken)
    {
        // Every error answer ends the connection (as c-icap does): some clients (c-icap-client) wait for the close.
        _closeAfterResponse = true;
        ResponseStarted = true;
        var head = new IcapResponseHead(status, reason ?? IcapRejection.GetReasonPhrase(status), CommonHeaders(service, extra, close || _closeAfterResponse),
            IcapEncapsulated.NullBody);
        IcapWriter.WriteResponseHead(_output, head);
        await FlushAsync(cancellationToken);
    }

    internal async ValueTask WriteResponseAsync(IcapRequestContext context, int status, HttpRequestHead? request, HttpResponseHead? response,
        Stream? body, ReadOnlyMemory<byte> content, long? useOriginalBody, CancellationToken cancellationToken, bool bodyIsContent = false)
    {
        // A streamed body may come from the request body: get the client to send all of it before the head goes out.
        if (body is not null) await context.BodyStream.EnsureFullBodyAsync(cancellationToken);

        ResponseStarted = true;
        context.ResponseStatus = status;
        var hasBody = status == 206 || body is not null || (bodyIsContent && !content.IsEmpty);
        var section = request is not null || (response is null && context.Method == IcapMethod.Reqmod) ? IcapSection.ReqBody : IcapSection.ResBody;
        var encapsulated = status == 204
            ? IcapEncapsulated.NullBody
            : IcapEncapsulated.Create(request is null ? 0 : IcapWriter.GetLength(request), response is null ? 0 : IcapWriter.GetLength(response),
                hasBody ? section : IcapSection.NullBody);
        var head = new IcapResponseHead(status, IcapRejection.GetReasonPhrase(status), CommonHeaders(context.Service, context.ResponseHeaders, _closeAfterResponse),
            encapsulated);
        IcapWriter.WriteResponseHead(_output, head);
        if (request is not null) IcapWriter.WriteHttpRequestHead(_output, request);
        if (response is not null) IcapWriter.WriteHttpResponseHead(_output, response);

        if (status == 206)
        {
            IcapWriter.WriteChunk(_output, content.Span);
            IcapWriter.WriteUseOriginalBody(_output, useOriginalBody ?? 0);
        }
        else if (body is not null)
        {
            await CopyBodyAsync(context, body, cancellationToken);
            IcapWriter.WriteLastChunk(_output);
        }
        else if (hasBody)
        {
            IcapWriter.WriteChunk(_output, content.Span);
            IcapWriter.WriteLastChunk(_output);
        }
        await FlushAsync(cancellationToken);
    }

    private async ValueTask CopyBodyAsync(IcapRequestContext context, Stream body, CancellationToken cancellationToken)
    {
        if (ReferenceEquals(body, context.BodyStream))
        {
            await context.BodyStream.CopyChunkedToAsync(_output, cancellationToken);
            return;
        }
        var buffer = ArrayPool<byte>.Shared.Rent(64 * 1024);
        try
        {
            int n;
            while ((n = await body.ReadAsync(buffer, cancellationToken)) > 0)
            {
                IcapWriter.WriteChunk(_output, buffer.AsSpan(0, n));
                await FlushAsync(cancellationToken);
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private ValueTask WriteOptionsAsync(IcapService service, CancellationToken cancellationToken)
    {
        ResponseStarted = true;
        var d = service.Declaration;
        var headers = new IcapHeaders(16)
        {
            { "Methods", string.Join(", ", d.Methods.Select(m => m.ToToken())) },
            { "Service", d.Description ?? $"Gateway ICAP service {service.Name}" },
            { "ISTag", service.IsTag },
            { "Max-Connections", (d.MaxConnections ?? _options.MaxConnections).ToString(CultureInfo.InvariantCulture) },
            { "Options-TTL", ((long)(d.OptionsTtl ?? _options.OptionsTtl).TotalSeconds).ToString(CultureInfo.InvariantCulture) },
        };
        var allow = (d.Allow204, d.Allow206) switch
        {
            (true, true) => "204, 206",
            (true, false) => "204",
            (false, true) => "206",
            _ => null,
        };
        if (allow is not null) headers.Add("Allow", allow);
        if (d.PreviewSize is { } preview) headers.Add("Preview", preview.ToString(CultureInfo.InvariantCulture));
        if (d.TransferPreview.Count > 0) headers.Add("Transfer-Preview", string.Join(", ", d.TransferPreview));
        if (d.TransferIgnore.Count > 0) headers.Add("Transfer-Ignore", string.Join(", ", d.TransferIgnore));
        if (d.TransferComplete.Count > 0) headers.Add("Transfer-Complete", string.Join(", ", d.TransferComplete));
        headers.Add("Date", HttpDate.Now(_time));
        headers.Add("Server", _options.ServerName);
        _closeAfterResponse |= _closeRequested;
        if (_closeAfterResponse) headers.Add("Connection", "close");
        IcapWriter.WriteResponseHead(_output, new IcapResponseHead(200, "OK", headers, IcapEncapsulated.NullBody));
        return FlushAsync(cancellationToken);
    }
}

/// <summary>IMF-fixdate, formatted at most once per second.</summary>
internal static class HttpDate
{
    private static (long Second, string Value) s_cache;

    public static string Now(TimeProvider time)
    {
        var now = time.GetUtcNow();
        var second = now.ToUnixTimeSeconds();
        var cache = s_cache;
        if (cache.Second == second && cache.Value is not null) return cache.Value;
        var value = now.ToString("r", CultureInfo.InvariantCulture);
        s_cache = (second, value);
        return value;
    }
}
