using System.Collections.Concurrent;
using System.Globalization;
using System.Net;
using Gateway.Proxy;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Primitives;
using Microsoft.Net.Http.Headers;
using Yarp.ReverseProxy.Forwarder;

namespace Gateway.Caching;

/// <summary>
/// Seam for the adaptation capability: the ISTags of the ICAP services that would adapt this response now.
/// An entry recorded with other tags is never served. Null means "don't check".
/// </summary>
public interface IAdaptationTagSource
{
    IReadOnlyDictionary<string, string>? GetCurrentTags(HttpContext context);
}

internal sealed class NoAdaptationTags : IAdaptationTagSource
{
    public IReadOnlyDictionary<string, string>? GetCurrentTags(HttpContext context) => null;
}

/// <summary>
/// The cache stage of the proxy pipeline (order 300, after rules and REQMOD): answers from the store (fresh hits,
/// allowed stale, conditional and range requests, HEAD), revalidates stale entries with the origin, collapses
/// concurrent misses, stores what the origin (after RESPMOD) sent, invalidates on unsafe methods, answers PURGE,
/// and puts a <c>Cache-Status</c> (RFC 9211) on every response.
/// </summary>
internal sealed class CacheStage : IProxyPipelineStage
{
    internal const string RefreshHeader = "X-Gateway-Cache-Refresh";

    private readonly CacheStore _store;
    private readonly CacheSettings _settings;
    private readonly ForwardProxySettings _forwardProxy;
    private readonly IAdaptationTagSource _tags;
    private readonly ListenerRegistry _listeners;
    private readonly ILogger _logger;
    private readonly string _name;
    private readonly string _refreshToken = Guid.NewGuid().ToString("N");
    private readonly ConcurrentDictionary<string, TaskCompletionSource> _inFlight = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, byte> _refreshing = new(StringComparer.Ordinal);
    private HttpClient? _refreshClient;
    private HttpClient? _refreshProxyClient;

    public CacheStage(CacheStore store, ForwardProxySettings forwardProxy, IAdaptationTagSource tags, ListenerRegistry listeners, ViaHeader via, ILogger<CacheStage> logger)
    {
        _store = store;
        _settings = store.Settings;
        _forwardProxy = forwardProxy;
        _tags = tags;
        _listeners = listeners;
        _logger = logger;
        _name = via.Name;
    }

    public int Order => ProxyStageOrder.Cache;

    private int _active;

    /// <summary>Requests inside this stage now (an entry is committed before its request leaves the stage).</summary>
    internal int Active => Volatile.Read(ref _active);

    private CacheStats Stats => _store.Stats;

    public async Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        var feature = context.Features.Get<GatewayRequestFeature>();
        if (feature is null || !_settings.Enabled)
        {
            await next(context);
            return;
        }
        if (!_store.IsLoaded)
        {
            await _store.EnsureLoadedAsync();
        }
        Interlocked.Increment(ref _active);
        try
        {
            await InvokeCoreAsync(context, next, feature);
        }
        finally
        {
            Interlocked.Decrement(ref _active);
            if (feature.CacheStatus is { } status)
            {
                System.Diagnostics.Activity.Current?.SetTag("gateway.cache.status", status);
            }
        }
    }

    private async Task InvokeCoreAsync(HttpContext context, RequestDelegate next, GatewayRequestFeature feature)
    {
        var request = context.Request;
        var method = request.Method;
        var isGet = HttpMethods.IsGet(method);
        var isHead = !isGet && HttpMethods.IsHead(method);
        var key = feature.CacheKey ?? feature.TargetUri.AbsoluteUri;

        if (request.Headers.ContainsKey(HeaderNames.Upgrade))
        {
            // WebSocket and other upgrades are tunnels, not cacheable exchanges.
            feature.CacheStatus = "BYPASS";
            AppendCacheStatus(context.Response.Headers, _name + "; fwd=bypass; detail=upgrade");
            await next(context);
            return;
        }

        if (!isGet && !isHead)
        {
            if (string.Equals(method, "PURGE", StringComparison.OrdinalIgnoreCase) && _settings.AllowPurge)
            {
                await PurgeAsync(context, feature, key);
                return;
            }
            if (_settings.Offline)
            {
                await WriteGatewayTimeoutAsync(context, feature, "OFFLINE_MISS", "offline");
                return;
            }
            await ForwardUnsafeAsync(context, next, feature, key);
            return;
        }

        if (feature.NoCache)
        {
            feature.CacheStatus = "BYPASS";
            Stats.Bypass();
            AppendCacheStatus(context.Response.Headers, _name + "; fwd=bypass; detail=rule");
            await next(context);
            return;
        }

        var requestCc = CacheControl.Parse(request.Headers.CacheControl);
        if (request.Headers.CacheControl.Count == 0 && HasPragmaNoCache(request.Headers))
        {
            requestCc.NoCache = true;
        }
        var isRefresh = false;
        if (request.Headers.TryGetValue(RefreshHeader, out var refresh))
        {
            isRefresh = refresh.Count == 1 && refresh[0] == _refreshToken;
            request.Headers.Remove(RefreshHeader);
        }

        var entry = _store.Lookup(key, request.Headers, out var varyMiss);
        if (entry is not null && !TagsMatch(context, entry))
        {
            entry = null;
        }
        var now = _store.NowMs;
        if (entry is not null && !isRefresh)
        {
            var ttl = entry.TtlMs(now);
            var fresh = ttl > 0;
            if (_settings.Offline)
            {
                if (!await ServeEntryAsync(context, feature, entry, now, fresh ? "HIT" : "STALE", fresh ? null : "offline"))
                {
                    await WriteGatewayTimeoutAsync(context, feature, "OFFLINE_MISS", "offline");
                }
                return;
            }
            if (!requestCc.NoCache && !entry.NoCache)
            {
                var usable = fresh;
                if (requestCc.MaxAge >= 0 && entry.AgeMs(now) > requestCc.MaxAge * 1000L)
                {
                    usable = false;
                }
                if (usable && requestCc.MinFresh >= 0 && ttl < requestCc.MinFresh * 1000L)
                {
                    usable = false;
                }
                if (!fresh && requestCc.MaxStale >= 0 && !entry.MustRevalidate && (requestCc.MaxStale == int.MaxValue || -ttl <= requestCc.MaxStale * 1000L)
                    && (requestCc.MaxAge < 0 || entry.AgeMs(now) <= requestCc.MaxAge * 1000L))
                {
                    usable = true;
                }
                if (usable)
                {
                    if (await ServeEntryAsync(context, feature, entry, now, fresh ? "HIT" : "STALE", fresh ? null : "max-stale"))
                    {
                        return;
                    }
                    entry = null;
                }
                else if (!fresh && !entry.MustRevalidate && entry.StaleWhileRevalidate >= 0 && -ttl <= entry.StaleWhileRevalidate * 1000L
                    && requestCc.MaxAge < 0 && requestCc.MinFresh < 0 && isGet)
                {
                    if (await ServeEntryAsync(context, feature, entry, now, "STALE", "stale-while-revalidate"))
                    {
                        StartBackgroundRefresh(context, feature, key);
                        return;
                    }
                    entry = null;
                }
            }
        }
        if (_settings.Offline)
        {
            await WriteGatewayTimeoutAsync(context, feature, "OFFLINE_MISS", "offline");
            return;
        }
        if (requestCc.OnlyIfCached)
        {
            await WriteGatewayTimeoutAsync(context, feature, "ONLY_IF_CACHED_MISS", "only-if-cached");
            return;
        }

        var hasRange = request.Headers.ContainsKey(HeaderNames.Range);
        // RFC 9211 fwd: "request" when the stored response was fresh but the request's directives ruled it out.
        var fwd = entry is not null ? (requestCc.NoCache || isRefresh || (entry.TtlMs(now) > 0 && !entry.NoCache) ? "request" : "stale")
            : varyMiss ? "vary-miss" : "uri-miss";
        if (isGet && !hasRange && !isRefresh && !requestCc.NoCache && !request.Headers.ContainsKey(HeaderNames.Authorization))
        {
            var flight = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            while (!_inFlight.TryAdd(key, flight))
            {
                if (_inFlight.TryGetValue(key, out var leader))
                {
                    Stats.CollapsedWaiter();
                    try
                    {
                        await leader.Task.WaitAsync(_settings.CollapseTimeout, context.RequestAborted);
                    }
                    catch (TimeoutException)
                    {
                        await FetchAsync(context, next, feature, key, entry, requestCc, isGet, fwd, collapsed: true);
                        return;
                    }
                    var after = _store.Lookup(key, request.Headers, out _);
                    if (after is not null && !TagsMatch(context, after))
                    {
                        after = null;
                    }
                    if (after is not null && after.TtlMs(_store.NowMs) > 0
                        && await ServeEntryAsync(context, feature, after, _store.NowMs, "COLLAPSED", null, collapsed: true))
                    {
                        return;
                    }
                    // Not storable, or already stale for this request: go to the origin (revalidating what was stored).
                    await FetchAsync(context, next, feature, key, after ?? entry, requestCc, isGet, after is not null ? "stale" : fwd, collapsed: true);
                    return;
                }
            }
            try
            {
                await FetchAsync(context, next, feature, key, entry, requestCc, isGet, fwd, collapsed: false);
            }
            finally
            {
                _inFlight.TryRemove(new KeyValuePair<string, TaskCompletionSource>(key, flight));
                flight.TrySetResult();
            }
            return;
        }
        await FetchAsync(context, next, feature, key, entry, requestCc, isGet, fwd, collapsed: false);
    }

    private bool TagsMatch(HttpContext context, CacheEntry entry)
    {
        var current = _tags.GetCurrentTags(context);
        return current is null || FormatTags(current) == entry.AdaptationTags;
    }

    internal static string FormatTags(IReadOnlyDictionary<string, string>? tags)
    {
        if (tags is null || tags.Count == 0)
        {
            return "";
        }
        var parts = new List<string>(tags.Count);
        foreach (var kv in tags)
        {
            parts.Add(kv.Key + "=" + kv.Value);
        }
        parts.Sort(StringComparer.Ordinal);
        return string.Join(';', parts);
    }

    private static bool HasPragmaNoCache(IHeaderDictionary headers)
    {
        foreach (var v in headers.Pragma)
        {
            if (v is not null && v.Contains("no-cache", StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }
        return false;
    }

    // ---- going to the origin ----

    private async Task FetchAsync(HttpContext context, RequestDelegate next, GatewayRequestFeature feature, string key, CacheEntry? stale,
        CacheControl requestCc, bool isGet, string fwd, bool collapsed)
    {
        var request = context.Request;
        var response = context.Response;
        var revalidate = stale is not null && isGet && (stale.ETag is not null || stale.LastModified is not null) && !request.Headers.ContainsKey(HeaderNames.Range);
        StringValues clientInm = default, clientIms = default;
        if (revalidate)
        {
            clientInm = request.Headers.IfNoneMatch;
            clientIms = request.Headers.IfModifiedSince;
            request.Headers.Remove(HeaderNames.IfNoneMatch);
            request.Headers.Remove(HeaderNames.IfModifiedSince);
            if (stale!.ETag is not null)
            {
                request.Headers.IfNoneMatch = stale.ETag;
            }
            if (stale.LastModified is not null)
            {
                request.Headers.IfModifiedSince = stale.LastModified;
            }
            Stats.Revalidation();
        }
        var requestTime = _store.NowMs;
        long responseTime = 0;
        IHeaderDictionary? notModifiedHeaders = null;
        var storing = false;
        var servedStale = false;
        var inner = context.Features.GetRequiredFeature<IHttpResponseBodyFeature>();
        CaptureBodyFeature? capture = null;
        capture = new CaptureBodyFeature(inner, () =>
        {
            responseTime = _store.NowMs;
            if (response.HasStarted)
            {
                return CaptureMode.PassThrough; // started by someone else (e.g. an upgrade): nothing to decide
            }
            var status = response.StatusCode;
            if (revalidate && status == StatusCodes.Status304NotModified)
            {
                notModifiedHeaders = new HeaderDictionary();
                foreach (var h in response.Headers)
                {
                    notModifiedHeaders[h.Key] = h.Value;
                }
                return CaptureMode.Swallow;
            }
            if (stale is not null && status >= 500 && StaleIfErrorAllows(stale, requestCc, responseTime))
            {
                servedStale = true;
                return CaptureMode.Swallow;
            }
            var status2 = "fwd=" + fwd + "; fwd-status=" + status.ToString(CultureInfo.InvariantCulture);
            if (collapsed)
            {
                status2 += "; collapsed";
            }
            feature.CacheStatus = stale is not null ? (revalidate ? "REVALIDATE_MISS" : "EXPIRED") : "MISS";
            var mode = CaptureMode.PassThrough;
            if (isGet)
            {
                var reason = WhyNotStoring(context, requestCc, out var responseCc);
                if (reason is null)
                {
                    var writer = BeginEntry(context, feature, key, responseCc, requestTime, responseTime);
                    if (writer is not null)
                    {
                        capture!.Writer = writer;
                        storing = true;
                        status2 += "; stored";
                        mode = CaptureMode.Tee;
                    }
                }
                else
                {
                    CacheLog.NotStored(_logger, feature.TargetUri.AbsoluteUri, reason);
                    if (stale is not null && status is >= 200 and < 400 && !request.Headers.ContainsKey(HeaderNames.Range))
                    {
                        _store.Remove(stale);
                    }
                }
            }
            AppendCacheStatus(response.Headers, _name + "; " + status2);
            return mode;
        });
        context.Features.Set<IHttpResponseBodyFeature>(capture);
        try
        {
            await next(context);
            capture.Decide();
        }
        catch
        {
            capture.Writer?.Abort();
            throw;
        }
        finally
        {
            context.Features.Set(inner);
        }

        if (notModifiedHeaders is not null)
        {
            var updated = _store.UpdateHeaders(stale!, notModifiedHeaders, requestTime, responseTime) ?? stale!;
            Stats.RevalidatedHit();
            RestoreClientConditionals(request, clientInm, clientIms);
            response.Clear();
            if (!await ServeEntryAsync(context, feature, updated, _store.NowMs, "REVALIDATED", null, revalidated: true))
            {
                await WriteGatewayTimeoutAsync(context, feature, "STORE_ERROR", "entry unreadable after revalidation");
            }
            return;
        }
        if (servedStale)
        {
            response.Clear();
            RestoreClientConditionals(request, clientInm, clientIms);
            if (!await ServeEntryAsync(context, feature, stale!, _store.NowMs, "STALE", "stale-if-error"))
            {
                await WriteGatewayTimeoutAsync(context, feature, "STORE_ERROR", "entry unreadable");
            }
            return;
        }
        if (stale is null)
        {
            Stats.Miss();
        }
        else
        {
            Stats.Lookup("expired");
        }
        if (storing && capture.Writer is { } w)
        {
            var complete = !context.RequestAborted.IsCancellationRequested && context.GetForwarderErrorFeature() is null;
            if (complete)
            {
                // Refused when the length does not match; failures are logged and counted by the store.
                w.Commit(response.ContentLength);
            }
            else
            {
                w.Abort();
            }
        }
    }

    private static void RestoreClientConditionals(HttpRequest request, StringValues inm, StringValues ims)
    {
        request.Headers.Remove(HeaderNames.IfNoneMatch);
        request.Headers.Remove(HeaderNames.IfModifiedSince);
        if (inm.Count > 0)
        {
            request.Headers.IfNoneMatch = inm;
        }
        if (ims.Count > 0)
        {
            request.Headers.IfModifiedSince = ims;
        }
    }

    private static bool StaleIfErrorAllows(CacheEntry stale, in CacheControl requestCc, long now)
    {
        if (stale.MustRevalidate)
        {
            return false;
        }
        var staleFor = -stale.TtlMs(now);
        var window = Math.Max(stale.StaleIfError, requestCc.StaleIfError);
        return window >= 0 && staleFor <= window * 1000L;
    }

    private string? WhyNotStoring(HttpContext context, in CacheControl requestCc, out CacheControl responseCc)
    {
        var response = context.Response;
        responseCc = CacheControl.Parse(response.Headers.CacheControl);
        if (context.Request.Headers.ContainsKey(HeaderNames.Range))
        {
            return "range request";
        }
        var reason = CachePolicy.WhyNotStorable(context.Request, response, requestCc, responseCc);
        if (reason is not null)
        {
            return reason;
        }
        if (response.ContentLength is { } length && length > _settings.MaxEntrySize)
        {
            return "larger than MaxEntrySize";
        }
        return null;
    }

    private CacheWriter? BeginEntry(HttpContext context, GatewayRequestFeature feature, string key, in CacheControl responseCc, long requestTime, long responseTime)
    {
        var response = context.Response;
        var varyNames = CachePolicy.VaryNames(response.Headers.Vary);
        var varyKey = varyNames.Length == 0 ? "" : CachePolicy.VaryKey(varyNames.Split(','), context.Request.Headers);
        var location = feature.CacheLocation ?? "";
        if (CacheStore.SafeRelative(location) is null)
        {
            CacheLog.BadLocation(_logger, location, feature.TargetUri.AbsoluteUri);
            return null;
        }
        var period = "";
        if (!string.IsNullOrEmpty(feature.CacheArchive))
        {
            try
            {
                period = _store.NowMs is var ms ? DateTimeOffset.FromUnixTimeMilliseconds(ms).UtcDateTime.ToString(feature.CacheArchive, CultureInfo.InvariantCulture) : "";
            }
            catch (FormatException)
            {
                period = "";
            }
            if (CacheStore.SafeRelative(period) is null)
            {
                CacheLog.BadLocation(_logger, period, feature.TargetUri.AbsoluteUri);
                period = "";
            }
        }
        if (!response.Headers.ContainsKey(HeaderNames.Date))
        {
            response.Headers.Date = DateTimeOffset.FromUnixTimeMilliseconds(responseTime).ToString("r", CultureInfo.InvariantCulture);
        }
        var meta = new EntryMeta
        {
            Key = key,
            Url = feature.TargetUri.AbsoluteUri,
            VaryNames = varyNames,
            VaryKey = varyKey,
            Location = location,
            ArchivePeriod = period,
            AdaptationTags = FormatTags(feature.AdaptationTags),
            RequestTime = requestTime,
            ResponseTime = responseTime,
            Status = response.StatusCode,
        };
        return _store.BeginWrite(meta, CachePolicy.StoredHeaders(response.Headers, responseCc));
    }

    /// <summary>Unsafe methods go through; a successful one invalidates the URL and its Location/Content-Location (RFC 9111 4.4).</summary>
    private async Task ForwardUnsafeAsync(HttpContext context, RequestDelegate next, GatewayRequestFeature feature, string key)
    {
        var safe = HttpMethods.IsOptions(context.Request.Method) || HttpMethods.IsTrace(context.Request.Method);
        feature.CacheStatus = "BYPASS";
        var inner = context.Features.GetRequiredFeature<IHttpResponseBodyFeature>();
        var capture = new CaptureBodyFeature(inner, () =>
        {
            var response = context.Response;
            if (response.HasStarted)
            {
                return CaptureMode.PassThrough;
            }
            if (!safe && response.StatusCode is >= 200 and < 400)
            {
                var removed = _store.RemoveKey(key);
                if (key != feature.TargetUri.AbsoluteUri)
                {
                    removed += _store.RemoveKey(feature.TargetUri.AbsoluteUri);
                }
                removed += InvalidateLocation(feature.TargetUri, response.Headers.Location);
                removed += InvalidateLocation(feature.TargetUri, response.Headers.ContentLocation);
                if (removed > 0)
                {
                    feature.CacheStatus = "INVALIDATED";
                }
            }
            AppendCacheStatus(response.Headers, _name + "; fwd=method; fwd-status=" + response.StatusCode.ToString(CultureInfo.InvariantCulture));
            return CaptureMode.PassThrough;
        });
        context.Features.Set<IHttpResponseBodyFeature>(capture);
        try
        {
            await next(context);
            capture.Decide();
        }
        finally
        {
            context.Features.Set(inner);
        }
    }

    private int InvalidateLocation(Uri target, StringValues location)
    {
        if (location.Count == 0 || location[0] is not { Length: > 0 } text || !Uri.TryCreate(target, text, out var uri))
        {
            return 0;
        }
        // Only the same origin (RFC 9111 4.4: prevents denial of service on other hosts).
        return string.Equals(uri.GetLeftPart(UriPartial.Authority), target.GetLeftPart(UriPartial.Authority), StringComparison.OrdinalIgnoreCase)
            ? _store.RemoveKey(uri.AbsoluteUri)
            : 0;
    }

    private async Task PurgeAsync(HttpContext context, GatewayRequestFeature feature, string key)
    {
        feature.CacheStatus = "PURGE";
        var response = context.Response;
        if (!_forwardProxy.IsAllowed(context.Connection.RemoteIpAddress))
        {
            await WritePlainAsync(context, StatusCodes.Status403Forbidden, "403 Forbidden: this client may not purge the cache\n");
            return;
        }
        var url = feature.TargetUri.AbsoluteUri;
        var n = _store.RemoveUrl(url);
        if (key != url)
        {
            n += _store.RemoveKey(key);
        }
        CacheLog.Purged(_logger, n, url);
        await WritePlainAsync(context, n > 0 ? StatusCodes.Status200OK : StatusCodes.Status404NotFound,
            n > 0 ? $"200 OK: purged {n} entr{(n == 1 ? "y" : "ies")} for {url}\n" : $"404 Not Found: nothing cached for {url}\n");
    }

    private static Task WritePlainAsync(HttpContext context, int status, string text)
    {
        var response = context.Response;
        response.StatusCode = status;
        response.ContentType = "text/plain; charset=utf-8";
        response.Headers.CacheControl = "no-store";
        var bytes = System.Text.Encoding.UTF8.GetBytes(text);
        response.ContentLength = bytes.Length;
        return HttpMethods.IsHead(context.Request.Method) ? Task.CompletedTask : response.Body.WriteAsync(bytes).AsTask();
    }

    private Task WriteGatewayTimeoutAsync(HttpContext context, GatewayRequestFeature feature, string status, string detail)
    {
        feature.CacheStatus = status;
        Stats.Lookup(status.ToLowerInvariant());
        AppendCacheStatus(context.Response.Headers, _name + "; fwd=uri-miss; detail=" + detail);
        return WritePlainAsync(context, StatusCodes.Status504GatewayTimeout,
            $"504 Gateway Timeout: no usable cached response ({detail})\n");
    }

    private static void AppendCacheStatus(IHeaderDictionary headers, string value)
    {
        var existing = headers["Cache-Status"];
        headers["Cache-Status"] = existing.Count == 0 ? new StringValues(value) : StringValues.Concat(existing, value);
    }

    // ---- serving from the store ----

    /// <summary>Answers from an entry. False (nothing written) when its file is gone, replaced or bad: the caller goes on as for a miss.</summary>
    private async Task<bool> ServeEntryAsync(HttpContext context, GatewayRequestFeature feature, CacheEntry entry, long now, string verdict, string? detail,
        bool revalidated = false, bool collapsed = false)
    {
        var hot = _store.GetHot(entry);
        if (hot is null)
        {
            return false;
        }
        Microsoft.Win32.SafeHandles.SafeFileHandle? handle = null;
        if (hot.Body is null && !HttpMethods.IsHead(context.Request.Method))
        {
            handle = _store.OpenBody(entry);
            if (handle is null)
            {
                return false;
            }
        }
        using var handleScope = handle;
        _store.Touch(entry);
        var request = context.Request;
        var response = context.Response;
        var headers = response.Headers;
        foreach (var h in hot.Headers)
        {
            headers[h.Key] = h.Value;
        }
        var ttl = entry.TtlMs(now);
        var age = entry.AgeMs(now) / 1000;
        headers.Age = age.ToString(CultureInfo.InvariantCulture);
        string cacheStatus;
        if (revalidated)
        {
            cacheStatus = _name + "; fwd=stale; fwd-status=304; ttl=" + (ttl / 1000).ToString(CultureInfo.InvariantCulture);
        }
        else if (collapsed)
        {
            cacheStatus = _name + "; hit; collapsed; ttl=" + (ttl / 1000).ToString(CultureInfo.InvariantCulture);
        }
        else
        {
            cacheStatus = _name + "; hit; ttl=" + (ttl / 1000).ToString(CultureInfo.InvariantCulture);
            if (detail is not null)
            {
                cacheStatus += "; detail=" + detail;
            }
        }
        AppendCacheStatus(headers, cacheStatus);
        feature.CacheStatus = verdict;
        if (verdict == "STALE")
        {
            Stats.Stale();
        }
        else if (!revalidated)
        {
            Stats.Hit();
        }

        var status = entry.Status;
        var length = entry.BodyLength;
        // Client conditionals answered from the cache (RFC 9110 13.1.2 / 13.1.3).
        if (status == StatusCodes.Status200OK && IsNotModified(request.Headers, entry))
        {
            response.StatusCode = StatusCodes.Status304NotModified;
            headers.Remove(HeaderNames.ContentLength);
            return true;
        }
        response.StatusCode = status;
        long offset = 0;
        if (status == StatusCodes.Status200OK)
        {
            if (!headers.ContainsKey(HeaderNames.AcceptRanges))
            {
                headers.AcceptRanges = "bytes";
            }
            if (request.Headers.Range is { Count: > 0 } range && HttpMethods.IsGet(request.Method) && IfRangeHolds(request.Headers, entry))
            {
                switch (TryParseRange(range, length, out var start, out var end))
                {
                    case RangeResult.Single:
                        response.StatusCode = StatusCodes.Status206PartialContent;
                        headers.ContentRange = $"bytes {start}-{end}/{length}";
                        offset = start;
                        length = end - start + 1;
                        break;
                    case RangeResult.Unsatisfiable:
                        response.StatusCode = StatusCodes.Status416RangeNotSatisfiable;
                        headers.ContentRange = $"bytes */{length}";
                        headers.Remove(HeaderNames.ContentType);
                        response.ContentLength = 0;
                        return true;
                }
            }
        }
        if (status is 204 or 304 || (status >= 100 && status < 200))
        {
            return true;
        }
        response.ContentLength = length;
        if (HttpMethods.IsHead(request.Method) || length == 0)
        {
            return true;
        }
        if (hot.Body is { } body)
        {
            await response.Body.WriteAsync(body.AsMemory((int)offset, (int)length), context.RequestAborted);
            Stats.Served(length);
            return true;
        }
        var writer = response.BodyWriter;
        var position = entry.BodyOffset + offset;
        var remaining = length;
        while (remaining > 0)
        {
            // Synchronous positional reads: entries being served are in the page cache, where a thread-pool hop per
            // read (RandomAccess.ReadAsync on Linux) costs more than the copy itself.
            var memory = writer.GetMemory(64 * 1024); // below the large-object heap threshold
            var want = (int)Math.Min(memory.Length, remaining);
            var n = RandomAccess.Read(handle!, memory.Span[..want], position);
            if (n <= 0)
            {
                context.Abort();
                return true;
            }
            writer.Advance(n);
            position += n;
            remaining -= n;
            var flush = await writer.FlushAsync(context.RequestAborted);
            if (flush.IsCompleted || flush.IsCanceled)
            {
                return true;
            }
        }
        Stats.Served(length);
        return true;
    }

    private static bool IsNotModified(IHeaderDictionary requestHeaders, CacheEntry entry)
    {
        var inm = requestHeaders.IfNoneMatch;
        if (inm.Count > 0)
        {
            return CachePolicy.WeakMatchAny(inm, entry.ETag);
        }
        var ims = requestHeaders.IfModifiedSince;
        if (ims.Count > 0 && CachePolicy.TryParseDate(ims[0], out var since))
        {
            if (CachePolicy.TryParseDate(entry.LastModified, out var lm))
            {
                return lm <= since;
            }
        }
        return false;
    }

    private static bool IfRangeHolds(IHeaderDictionary requestHeaders, CacheEntry entry)
    {
        var ifRange = requestHeaders.IfRange;
        if (ifRange.Count == 0 || ifRange[0] is not { } value)
        {
            return true;
        }
        value = value.Trim();
        if (value.StartsWith('"') || value.StartsWith("W/", StringComparison.Ordinal))
        {
            // Strong comparison only.
            return entry.ETag is { } etag && !etag.StartsWith("W/", StringComparison.Ordinal) && etag == value;
        }
        return CachePolicy.TryParseDate(value, out var date) && CachePolicy.TryParseDate(entry.LastModified, out var lm) && lm == date;
    }

    internal enum RangeResult { Ignore, Single, Unsatisfiable }

    /// <summary>One byte range (<c>bytes=a-b</c>, <c>a-</c>, <c>-n</c>); several ranges or a malformed header are ignored (full 200).</summary>
    internal static RangeResult TryParseRange(StringValues header, long length, out long start, out long end)
    {
        start = end = 0;
        if (header.Count != 1 || header[0] is not { } value)
        {
            return RangeResult.Ignore;
        }
        var s = value.AsSpan().Trim();
        if (!s.StartsWith("bytes=", StringComparison.OrdinalIgnoreCase))
        {
            return RangeResult.Ignore;
        }
        s = s[6..].Trim();
        if (s.Contains(','))
        {
            return RangeResult.Ignore;
        }
        var dash = s.IndexOf('-');
        if (dash < 0)
        {
            return RangeResult.Ignore;
        }
        var first = s[..dash].Trim();
        var last = s[(dash + 1)..].Trim();
        if (first.IsEmpty)
        {
            if (!long.TryParse(last, NumberStyles.None, CultureInfo.InvariantCulture, out var suffix))
            {
                return RangeResult.Ignore;
            }
            if (suffix == 0 || length == 0)
            {
                return RangeResult.Unsatisfiable;
            }
            start = Math.Max(0, length - suffix);
            end = length - 1;
            return RangeResult.Single;
        }
        if (!long.TryParse(first, NumberStyles.None, CultureInfo.InvariantCulture, out start))
        {
            return RangeResult.Ignore;
        }
        if (last.IsEmpty)
        {
            end = length - 1;
        }
        else if (!long.TryParse(last, NumberStyles.None, CultureInfo.InvariantCulture, out end) || end < start)
        {
            return RangeResult.Ignore;
        }
        if (start >= length)
        {
            return RangeResult.Unsatisfiable;
        }
        end = Math.Min(end, length - 1);
        return RangeResult.Single;
    }

    // ---- stale-while-revalidate ----

    /// <summary>
    /// Refreshes an entry in the background by sending the request again through our own proxy listener (so rules,
    /// REQMOD, routing and RESPMOD apply exactly as for a client), marked with a per-process token that makes this
    /// stage revalidate instead of answering from the cache.
    /// </summary>
    private void StartBackgroundRefresh(HttpContext context, GatewayRequestFeature feature, string key)
    {
        if (!_refreshing.TryAdd(key, 0))
        {
            return;
        }
        var endPoint = _listeners.GetEndPoint(ListenerRegistry.Proxy) as IPEndPoint;
        if (endPoint is null)
        {
            _refreshing.TryRemove(key, out _);
            return;
        }
        var address = endPoint.Address.Equals(IPAddress.Any) ? IPAddress.Loopback : endPoint.Address.Equals(IPAddress.IPv6Any) ? IPAddress.IPv6Loopback : endPoint.Address;
        var listener = new UriBuilder("http", address.ToString(), endPoint.Port).Uri;
        var request = context.Request;
        var forward = feature.Mode == ProxyMode.Forward;
        var target = forward ? feature.TargetUri : new Uri(listener, request.PathBase + request.Path + request.QueryString);
        var message = new HttpRequestMessage(HttpMethod.Get, target);
        foreach (var h in request.Headers)
        {
            if (h.Key.Equals(HeaderNames.Host, StringComparison.OrdinalIgnoreCase))
            {
                if (!forward)
                {
                    message.Headers.Host = h.Value.ToString();
                }
                continue;
            }
            if (h.Key is "Connection" or "Keep-Alive" or "Transfer-Encoding" or "Upgrade" or "Proxy-Connection" or "TE" or "Range" or "If-Range"
                || h.Key.Equals(HeaderNames.IfNoneMatch, StringComparison.OrdinalIgnoreCase) || h.Key.Equals(HeaderNames.IfModifiedSince, StringComparison.OrdinalIgnoreCase)
                || h.Key.Equals(HeaderNames.CacheControl, StringComparison.OrdinalIgnoreCase) || h.Key.Equals(HeaderNames.ContentLength, StringComparison.OrdinalIgnoreCase))
            {
                continue;
            }
            message.Headers.TryAddWithoutValidation(h.Key, (IEnumerable<string?>)h.Value);
        }
        message.Headers.TryAddWithoutValidation(RefreshHeader, _refreshToken);
        var client = forward ? (_refreshProxyClient ??= CreateClient(listener)) : (_refreshClient ??= CreateClient(null));
        var url = feature.TargetUri.AbsoluteUri;
        _ = Task.Run(async () =>
        {
            try
            {
                using var response = await client.SendAsync(message, HttpCompletionOption.ResponseContentRead);
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or IOException)
            {
                CacheLog.BackgroundRefreshFailed(_logger, url, ex.Message);
            }
            finally
            {
                message.Dispose();
                _refreshing.TryRemove(key, out _);
            }
        });
    }

    private static HttpClient CreateClient(Uri? proxy) => new(new SocketsHttpHandler
    {
        UseProxy = proxy is not null,
        Proxy = proxy is null ? null : new WebProxy(proxy),
        AllowAutoRedirect = false,
        AutomaticDecompression = DecompressionMethods.None,
        UseCookies = false,
    })
    { Timeout = TimeSpan.FromSeconds(100) };
}
