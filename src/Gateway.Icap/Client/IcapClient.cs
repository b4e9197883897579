using System.Buffers;
using System.Text;
using Gateway.Icap.Protocol;

namespace Gateway.Icap.Client;

/// <summary>
/// The ICAP client of one service (RFC 3507): a pool of persistent connections, the service's OPTIONS cached for its
/// <c>Options-TTL</c>, previews as the service asks, and the 100/204/206/200 answers, with bodies streamed both ways.
/// Failures are counted in <see cref="Health"/>; the service is down when it reaches its failure limit or its OPTIONS fails.
/// </summary>
public sealed class IcapClient : IAsyncDisposable
{
    private readonly IcapConnectionPool _pool;
    private readonly TimeProvider _time;
    private readonly SemaphoreSlim _optionsLock = new(1, 1);
    private IcapServiceOptions? _serviceOptions;
    private string? _isTag;

    public IcapClient(string name, IcapClientOptions options, TimeProvider? time = null)
    {
        Name = name;
        Options = options;
        _time = time ?? TimeProvider.System;
        _pool = new IcapConnectionPool(options, _time);
        Health = new IcapServiceHealth(options.FailureLimit, options.FailureWindow, options.RevivalDelay, _time);
        RequestUri = new UriBuilder(options.Uri) { Scheme = "icap", Port = options.Port }.Uri.GetComponents(UriComponents.SchemeAndServer | UriComponents.PathAndQuery, UriFormat.UriEscaped);
        HostHeader = options.Port == 1344 ? options.Host : options.Host + ":" + options.Port;
    }

    public string Name { get; }

    public IcapClientOptions Options { get; }

    public IcapServiceHealth Health { get; }

    /// <summary>The URI written on request lines (<c>icap://host:port/path?query</c>).</summary>
    public string RequestUri { get; }

    private string HostHeader { get; }

    /// <summary>The last OPTIONS answer, or null before the first successful fetch.</summary>
    public IcapServiceOptions? ServiceOptions => Volatile.Read(ref _serviceOptions);

    /// <summary>The service's current ISTag: from its latest answer or OPTIONS. A change means earlier adaptations are stale.</summary>
    public string? IsTag => Volatile.Read(ref _isTag);

    public int OpenConnections => _pool.Open;

    public int IdleConnections => _pool.Idle;

    public int ConnectionLimit => _pool.Limit;

    /// <summary>Raised when a failure marks the service down (argument: reason) — for logs and metrics.</summary>
    public event Action<IcapClient, string>? MarkedDown;

    /// <summary>Raised when a down service passed its revival probe.</summary>
    public event Action<IcapClient>? Revived;

    // ---------------- OPTIONS ----------------

    /// <summary>The service's OPTIONS, fetched when absent or expired (<c>Options-TTL</c>, 60 s by default).</summary>
    public async ValueTask<IcapServiceOptions> GetOptionsAsync(CancellationToken cancellationToken, bool forceRefresh = false)
    {
        var current = ServiceOptions;
        if (!forceRefresh && current is not null && _time.GetUtcNow() < current.ExpiresAt) return current;
        await _optionsLock.WaitAsync(cancellationToken);
        try
        {
            current = ServiceOptions;
            if (!forceRefresh && current is not null && _time.GetUtcNow() < current.ExpiresAt) return current;
            var fetched = await FetchOptionsAsync(cancellationToken);
            Volatile.Write(ref _serviceOptions, fetched);
            if (fetched.IsTag is not null) Volatile.Write(ref _isTag, fetched.IsTag);
            _pool.SetServiceLimit(fetched.MaxConnections);
            return fetched;
        }
        finally
        {
            _optionsLock.Release();
        }
    }

    private async Task<IcapServiceOptions> FetchOptionsAsync(CancellationToken cancellationToken)
    {
        IcapResponseHead head;
        try
        {
            head = await ExchangeOptionsAsync(cancellationToken);
        }
        catch (IcapClientException ex)
        {
            RecordFailure("OPTIONS failed: " + ex.Message);
            throw;
        }
        if (head.StatusCode != 200)
        {
            var reason = $"OPTIONS answered {head.StatusCode} {head.ReasonPhrase}";
            MarkDown(reason);
            throw new IcapClientException(IcapClientError.ServiceError, $"service {Name}: {reason}", icapStatus: head.StatusCode);
        }
        return IcapServiceOptions.FromResponse(head, _time.GetUtcNow());
    }

    private async Task<IcapResponseHead> ExchangeOptionsAsync(CancellationToken cancellationToken)
    {
        var writer = new ArrayBufferWriter<byte>(256);
        var headers = new IcapHeaders(2) { { "Host", HostHeader }, { "Allow", "204" } };
        IcapWriter.WriteRequestHead(writer, new IcapRequestHead(IcapMethod.Options, RequestUri, headers, IcapEncapsulated.NullBody));
        for (var attempt = 0; ; attempt++)
        {
            var (connection, reused) = await _pool.RentAsync(fresh: attempt > 0, cancellationToken);
            var tx = new IcapTransaction(_pool, connection, reused, Options, cancellationToken);
            try
            {
                await tx.WriteAsync(writer.WrittenMemory);
                var (head, _, _) = await tx.ReadHeadAsync(IcapMethod.Options);
                if (head.Encapsulated is { HasBody: true }) await tx.SkipChunkedBodyAsync();
                await tx.CompleteAsync(leftoverBytes: false);
                return head;
            }
            catch (IcapClientException ex) when (attempt == 0 && reused && !tx.AnswerStarted && ex.Error is IcapClientError.ConnectionClosed)
            {
                await tx.ReleaseAsync(false);
            }
            catch
            {
                await tx.ReleaseAsync(false);
                throw;
            }
        }
    }

    // ---------------- REQMOD / RESPMOD ----------------

    /// <summary>
    /// Sends <paramref name="request"/> to the service and returns its answer; the result's body streams as it is read.
    /// Throws <see cref="IcapClientException"/> on any failure (the caller applies its Fail/Bypass policy); its
    /// <see cref="IcapClientException.OriginalBody"/> / <see cref="IcapClientException.BodyConsumed"/> say whether the
    /// original message can still go on.
    /// </summary>
    public async Task<IcapResult> SendAsync(IcapAdaptationRequest request, CancellationToken cancellationToken)
    {
        if (request.Method is not (IcapMethod.Reqmod or IcapMethod.Respmod)) throw new ArgumentException("REQMOD or RESPMOD", nameof(request));
        if (request.Method == IcapMethod.Respmod && request.HttpResponse is null) throw new ArgumentException("RESPMOD needs the HTTP response head", nameof(request));

        await EnsureAvailableAsync(cancellationToken);
        var options = await GetOptionsAsync(cancellationToken);
        if (!options.Supports(request.Method))
        {
            throw new IcapClientException(IcapClientError.ServiceError, $"service {Name} does not support {request.Method.ToToken()} (Methods: {string.Join(", ", options.Methods)})");
        }

        var mode = request.Body is null ? IcapTransferMode.Complete : options.GetTransferMode(GetExtension(request.HttpRequest.Target));
        if (mode == IcapTransferMode.Ignore)
        {
            return new IcapResult(IcapResultKind.Unchanged, 0, IsTag) { Body = request.Body, BodyLength = request.BodyLength };
        }
        int? preview = request.Body is not null && mode == IcapTransferMode.Preview && Options.PreviewEnabled ? options.Preview : null;

        // Squid's rule: buffer the start of the body; Allow 204/206 only when the whole body fits, so it can be replayed.
        var replay = new ReplayBuffer();
        var handedOff = false;
        try
        {
            var target = request.BodyLength is { } known && known > Options.ReplayBufferSize
                ? (preview is { } p1 ? p1 + 1 : 0)
                : Math.Max(Options.ReplayBufferSize + 1, (preview ?? 0) + 1);
            try
            {
                await replay.FillAsync(request.Body, target, request.BodyLength, cancellationToken);
            }
            catch (IcapClientException ex)
            {
                ex.BodyConsumed = true;
                throw;
            }

            for (var attempt = 0; ; attempt++)
            {
                var (connection, reused) = await _pool.RentAsync(fresh: attempt > 0, cancellationToken);
                var tx = new IcapTransaction(_pool, connection, reused, Options, cancellationToken);
                try
                {
                    var result = await ExchangeAsync(tx, request, options, preview, replay, cancellationToken);
                    handedOff = true;
                    Health.MarkUp();
                    return result;
                }
                catch (IcapClientException ex) when (attempt == 0 && reused && !tx.AnswerStarted && !tx.SourceTouched
                    && ex.Error is IcapClientError.ConnectionClosed)
                {
                    // A pooled connection the service had closed: one retry on a fresh connection.
                    await tx.ReleaseAsync(false);
                }
                catch (IcapClientException ex)
                {
                    await tx.ReleaseAsync(false);
                    if (ex.CountsAsServiceFailure) RecordFailure(ex.Message);
                    if (tx.SourceTouched || ex.Error == IcapClientError.BodySourceFailed)
                    {
                        ex.BodyConsumed = true;
                    }
                    else if (request.Body is not null && ex.OriginalBody is null)
                    {
                        ex.OriginalBody = new OriginalTailStream(replay, 0, replay.Complete ? null : request.Body);
                        handedOff = true;
                    }
                    throw;
                }
                catch
                {
                    await tx.ReleaseAsync(false);
                    throw;
                }
            }
        }
        finally
        {
            if (!handedOff) replay.Dispose();
        }
    }

    /// <summary>REQMOD of a request head and its body (null: none).</summary>
    public Task<IcapResult> SendReqmodAsync(HttpRequestHead request, Stream? body, long? bodyLength = null, CancellationToken cancellationToken = default)
        => SendAsync(new IcapAdaptationRequest { Method = IcapMethod.Reqmod, HttpRequest = request, Body = body, BodyLength = bodyLength }, cancellationToken);

    /// <summary>RESPMOD of a response (with the request that produced it) and its body (null: none).</summary>
    public Task<IcapResult> SendRespmodAsync(HttpRequestHead request, HttpResponseHead response, Stream? body, long? bodyLength = null,
        CancellationToken cancellationToken = default)
        => SendAsync(new IcapAdaptationRequest { Method = IcapMethod.Respmod, HttpRequest = request, HttpResponse = response, Body = body, BodyLength = bodyLength },
            cancellationToken);

    private async ValueTask EnsureAvailableAsync(CancellationToken cancellationToken)
    {
        if (Health.IsDown)
        {
            throw new IcapClientException(IcapClientError.ServiceDown, $"service {Name} is down ({Health.DownReason})");
        }
        if (Health.NeedsProbe)
        {
            try
            {
                await GetOptionsAsync(cancellationToken, forceRefresh: true);
            }
            catch (IcapClientException ex)
            {
                MarkDown("revival probe failed: " + ex.Message);
                throw new IcapClientException(IcapClientError.ServiceDown, $"service {Name} is down (revival probe failed: {ex.Message})", ex);
            }
            if (Health.MarkUp()) Revived?.Invoke(this);
        }
    }

    private async Task<IcapResult> ExchangeAsync(IcapTransaction tx, IcapAdaptationRequest request, IcapServiceOptions options, int? preview,
        ReplayBuffer replay, CancellationToken cancellationToken)
    {
        var hasBody = request.Body is not null;
        var replayable = replay.Complete; // the whole body is in memory (or there is none)
        var writer = new ArrayBufferWriter<byte>(1024);
        WriteHeads(writer, request, options, preview, allowReplay: replayable);

        var previewing = false;
        if (!hasBody)
        {
            await tx.WriteAsync(writer.WrittenMemory);
        }
        else if (preview is { } p)
        {
            var bytes = replay.Memory;
            var ieof = replayable && bytes.Length <= p;
            IcapWriter.WriteChunk(writer, bytes.Span[..Math.Min(p, bytes.Length)]);
            IcapWriter.WriteLastChunk(writer, ieof);
            await tx.WriteAsync(writer.WrittenMemory);
            previewing = !ieof;
        }
        else if (replayable)
        {
            IcapWriter.WriteChunk(writer, replay.Memory.Span);
            IcapWriter.WriteLastChunk(writer);
            await tx.WriteAsync(writer.WrittenMemory);
        }
        else
        {
            await tx.WriteAsync(writer.WrittenMemory);
            tx.StartSender(replay.Memory, request.Body);
        }

        var (head, reqHead, resHead) = await tx.ReadHeadAsync(request.Method);
        if (head.StatusCode == 100)
        {
            if (!previewing) throw new IcapClientException(IcapClientError.ProtocolError, "100 Continue without a preview");
            previewing = false;
            // The rest of the body after the preview bytes.
            var rest = replay.Memory[Math.Min(preview!.Value, replay.Length)..];
            if (replayable)
            {
                var w = new ArrayBufferWriter<byte>(rest.Length + 32);
                IcapWriter.WriteChunk(w, rest.Span);
                IcapWriter.WriteLastChunk(w);
                await tx.WriteAsync(w.WrittenMemory);
            }
            else
            {
                tx.StartSender(rest, request.Body);
            }
            (head, reqHead, resHead) = await tx.ReadHeadAsync(request.Method);
            if (head.StatusCode == 100) throw new IcapClientException(IcapClientError.ProtocolError, "a second 100 Continue");
        }

        var isTag = head.IsTag ?? IsTag;
        if (head.IsTag is { } tag) Volatile.Write(ref _isTag, tag);
        // Before 100 Continue, the body past the preview was never sent: the original is the buffer plus the unread source.
        var originalAvailable = replayable || previewing;
        var source = replayable ? null : request.Body;

        switch (head.StatusCode)
        {
            case 204:
                if (!originalAvailable)
                {
                    throw new IcapClientException(IcapClientError.ServiceError, "204 outside of the preview, but Allow: 204 was not sent (the body could not be replayed)", icapStatus: 204);
                }
                if (head.Encapsulated is { HasBody: true }) await tx.SkipChunkedBodyAsync();
                await tx.CompleteAsync(leftoverBytes: false);
                return new IcapResult(IcapResultKind.Unchanged, 204, isTag)
                {
                    Body = hasBody ? new OriginalTailStream(replay, 0, source) : null,
                    BodyLength = hasBody ? (replayable ? replay.Length : request.BodyLength) : null,
                    Transaction = null,
                };
            case 200:
            case 206:
                break;
            default:
                {
                    throw new IcapClientException(IcapClientError.ServiceError, $"service {Name} answered ICAP {head.StatusCode} {head.ReasonPhrase}", icapStatus: head.StatusCode);
                }
        }

        var e = head.Encapsulated!.Value;
        var kind = IcapResultKind.Modified;
        if (request.Method == IcapMethod.Reqmod && e.HasResHdr) kind = IcapResultKind.Response;
        if (request.Method == IcapMethod.Reqmod && kind == IcapResultKind.Modified && reqHead is null && head.StatusCode == 200)
        {
            throw new IcapClientException(IcapClientError.ProtocolError, "REQMOD 200 without an HTTP request or response");
        }
        if (request.Method == IcapMethod.Respmod && resHead is null && head.StatusCode == 200)
        {
            throw new IcapClientException(IcapClientError.ProtocolError, "RESPMOD 200 without an HTTP response head");
        }
        if (head.StatusCode == 206 && !originalAvailable)
        {
            throw new IcapClientException(IcapClientError.ProtocolError, "206 but Allow: 206 was not sent (the original body is not available)");
        }

        Stream? body = null;
        if (e.HasBody)
        {
            Func<long, Stream?>? originalFrom = head.StatusCode == 206
                ? offset => offset >= 0 && offset <= replay.Length && (replayable || previewing) ? new OriginalTailStream(replay, (int)offset, source) : null
                : null;
            body = new IcapBodyStream(tx, originalFrom, ex => { if (ex.CountsAsServiceFailure) RecordFailure(ex.Message); });
            if (head.StatusCode != 206) replay.Dispose();
        }
        else
        {
            await tx.CompleteAsync(leftoverBytes: false);
            replay.Dispose();
        }
        return new IcapResult(kind, head.StatusCode, isTag)
        {
            HttpRequest = reqHead ?? (request.Method == IcapMethod.Reqmod && kind == IcapResultKind.Modified ? request.HttpRequest : null),
            HttpResponse = resHead ?? (request.Method == IcapMethod.Respmod ? request.HttpResponse : null),
            Body = body,
            BodyLength = e.HasBody ? null : 0,
            Transaction = tx,
        };
    }

    private void WriteHeads(ArrayBufferWriter<byte> writer, IcapAdaptationRequest request, IcapServiceOptions options, int? preview, bool allowReplay)
    {
        var headers = new IcapHeaders(6) { { "Host", HostHeader } };
        if (allowReplay)
        {
            headers.Add("Allow", options.Allows206 ? "204, 206" : "204");
        }
        if (preview is { } p) headers.Add("Preview", p.ToString(System.Globalization.CultureInfo.InvariantCulture));
        if (!string.IsNullOrEmpty(request.ClientIp)) headers.Add("X-Client-IP", request.ClientIp);
        if (!string.IsNullOrEmpty(request.AuthenticatedUser))
        {
            headers.Add("X-Authenticated-User", Convert.ToBase64String(Encoding.UTF8.GetBytes(request.AuthenticatedUser)));
        }

        var reqLength = IcapWriter.GetLength(request.HttpRequest);
        var resLength = request.HttpResponse is null ? 0 : IcapWriter.GetLength(request.HttpResponse);
        var bodySection = request.Body is null ? IcapSection.NullBody : request.Method == IcapMethod.Reqmod ? IcapSection.ReqBody : IcapSection.ResBody;
        var encapsulated = IcapEncapsulated.Create(reqLength, resLength, bodySection);
        IcapWriter.WriteRequestHead(writer, new IcapRequestHead(request.Method, RequestUri, headers, encapsulated));
        IcapWriter.WriteHttpRequestHead(writer, request.HttpRequest);
        if (request.HttpResponse is not null) IcapWriter.WriteHttpResponseHead(writer, request.HttpResponse);
    }

    /// <summary>The file extension of a request target's path (no dot, lower-case), or empty.</summary>
    internal static string GetExtension(string target)
    {
        var s = target.AsSpan();
        var scheme = s.IndexOf("://");
        if (scheme >= 0)
        {
            s = s[(scheme + 3)..];
            var slash = s.IndexOf('/');
            s = slash < 0 ? ReadOnlySpan<char>.Empty : s[slash..];
        }
        var q = s.IndexOfAny('?', '#');
        if (q >= 0) s = s[..q];
        var lastSlash = s.LastIndexOf('/');
        if (lastSlash >= 0) s = s[(lastSlash + 1)..];
        var dot = s.LastIndexOf('.');
        return dot < 0 || dot == s.Length - 1 ? string.Empty : s[(dot + 1)..].ToString().ToLowerInvariant();
    }

    private void RecordFailure(string reason)
    {
        if (Health.RecordFailure(reason)) MarkedDown?.Invoke(this, reason);
    }

    private void MarkDown(string reason)
    {
        Health.MarkDown(reason);
        MarkedDown?.Invoke(this, reason);
    }

    public ValueTask DisposeAsync() => _pool.DisposeAsync();
}
