using System.Text;
using System.Text.RegularExpressions;
using Gateway.Proxy;
using Microsoft.Net.Http.Headers;

namespace Gateway.Rules;

/// <summary>Carries the rewrite rules that matched in the request phase to the response phase.</summary>
internal sealed class RulesResponseFeature
{
    public RulesResponseFeature(RewriteRule[] rules, RuleSet set)
    {
        Rules = rules;
        Set = set;
    }

    public RewriteRule[] Rules { get; }

    /// <summary>The generation the rules came from (its settings apply to the response too).</summary>
    public RuleSet Set { get; }
}

/// <summary>
/// Request phase of the rules (pipeline order 100): Drop answers locally and stops; NoCache and Sort set the cache
/// fields of <see cref="GatewayRequestFeature"/>; Rewrite changes the request URL (both <c>TargetUri</c> and
/// <c>Request.Path/QueryString/Host</c>), headers and a bounded form or JSON body, and hands its response part to
/// <see cref="RewriteResponseStage"/>.
/// </summary>
internal sealed class RulesStage : IProxyPipelineStage
{
    private readonly RuleStore _store;
    private readonly ILogger _logger;

    public RulesStage(RuleStore store, ILogger<RulesStage> logger)
    {
        _store = store;
        _logger = logger;
    }

    public int Order => ProxyStageOrder.Rules;

    public Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        var set = _store.Current;
        var feature = context.Features.Get<GatewayRequestFeature>();
        if (!set.HasRequestRules || feature is null)
        {
            return next(context);
        }
        var facts = new RequestFacts(context.Request.Method, feature.TargetUri, context.Request.Headers);
        var decision = set.Evaluate(facts);
        if (decision is null)
        {
            return next(context);
        }
        foreach (var timedOut in decision.TimedOut ?? [])
        {
            RulesLog.RegexTimeout(_logger, timedOut.Policy, timedOut.Id, feature.TargetUri.AbsoluteUri);
        }
        if (!decision.AnyApplied)
        {
            return next(context);
        }
        return ApplyAsync(context, next, set, feature, decision);
    }

    private async Task ApplyAsync(HttpContext context, RequestDelegate next, RuleSet set, GatewayRequestFeature feature, RuleDecision decision)
    {
        if (decision.Drop is { } drop)
        {
            RulesTelemetry.Count(drop);
            feature.Upstream = "drop/" + drop.Id; // the access log shows which rule answered
            var kind = DropPlaceholder.Classify(context.Request.Method, feature.TargetUri, context.Request.Headers);
            var status = await DropPlaceholder.WriteAsync(context, drop, kind, feature.TargetUri);
            RulesLog.Dropped(_logger, drop.Id, context.Request.Method, feature.TargetUri.AbsoluteUri, status, kind.ToString());
            return;
        }
        if (decision.NoCache is { } noCache)
        {
            RulesTelemetry.Count(noCache);
            feature.NoCache = true;
        }
        if (decision.Sort is { } sort)
        {
            RulesTelemetry.Count(sort);
            if (decision.LocationRefused is { } why)
            {
                RulesLog.LocationRefused(_logger, sort.Id, feature.TargetUri.AbsoluteUri, why);
            }
            feature.CacheLocation = decision.CacheLocation;
            feature.CacheKey = decision.CacheKey ?? feature.CacheKey;
            feature.CacheArchive = sort.Archive;
        }
        if (decision.Rewrites.Count > 0)
        {
            List<RewriteRule>? responseRules = null;
            foreach (var rule in decision.Rewrites)
            {
                RulesTelemetry.Count(rule);
                if (rule.RequestUrl.Length > 0)
                {
                    RewriteUrl(context, feature, rule);
                }
                rule.RequestHeaders?.ApplyTo(context.Request.Headers);
                if (rule.RequestBody.Length > 0)
                {
                    await RequestBodyRewriter.RewriteAsync(context, rule, set.Settings, _logger);
                }
                if (rule.HasResponsePart)
                {
                    (responseRules ??= []).Add(rule);
                }
            }
            if (responseRules is not null)
            {
                context.Features.Set(new RulesResponseFeature(responseRules.ToArray(), set));
            }
        }
        await next(context);
    }

    private void RewriteUrl(HttpContext context, GatewayRequestFeature feature, RewriteRule rule)
    {
        var original = feature.TargetUri.AbsoluteUri;
        string rewritten;
        try
        {
            rewritten = ApplyReplacements(original, rule.RequestUrl);
        }
        catch (RegexMatchTimeoutException)
        {
            RulesTelemetry.RegexTimeouts.Add(1, new KeyValuePair<string, object?>("rule", rule.Id));
            RulesLog.RegexTimeout(_logger, rule.Policy, rule.Id, original);
            return;
        }
        if (rewritten == original)
        {
            return;
        }
        if (!Uri.TryCreate(rewritten, UriKind.Absolute, out var target) || (target.Scheme != Uri.UriSchemeHttp && target.Scheme != Uri.UriSchemeHttps))
        {
            RulesLog.BadRewrittenUrl(_logger, rule.Id, original, rewritten);
            return;
        }
        feature.TargetUri = target;
        var request = context.Request;
        request.Path = PathString.FromUriComponent(target.AbsolutePath);
        request.QueryString = QueryString.FromUriComponent(target.Query);
        var host = HostString.FromUriComponent(target);
        if (!string.Equals(host.Value, request.Host.Value, StringComparison.OrdinalIgnoreCase))
        {
            request.Host = host;
        }
    }

    /// <summary>Applies replacements in order; throws <see cref="RegexMatchTimeoutException"/> on a timeout.</summary>
    internal static string ApplyReplacements(string text, Replacement[] replacements)
    {
        foreach (var r in replacements)
        {
            text = r.Pattern.Replace(text, r.Text);
        }
        return text;
    }
}

/// <summary>
/// Request-body rewrite for form (<c>application/x-www-form-urlencoded</c>) and JSON bodies, read whole up to
/// <c>MaxBodySize</c>; the patterns apply to the body text as sent (form bodies stay URL-encoded). Bodies that are
/// bigger, encoded (Content-Encoding) or of another type pass unchanged, with a debug log line.
/// </summary>
internal static class RequestBodyRewriter
{
    public static async Task RewriteAsync(HttpContext context, RewriteRule rule, RulesSettings settings, ILogger logger)
    {
        var request = context.Request;
        if (context.Features.Get<Microsoft.AspNetCore.Http.Features.IHttpRequestBodyDetectionFeature>() is { CanHaveBody: false })
        {
            return; // no body to rewrite (e.g. a GET)
        }
        if (WhyNot(request.ContentType, request.Headers.ContentEncoding.ToString(), request.ContentLength, settings.MaxBodySize) is { } reason)
        {
            RulesLog.RequestBodyLeftAlone(logger, rule.Id, reason);
            return;
        }
        var body = request.Body;
        var (read, complete) = await ReadBoundedAsync(body, settings.MaxBodySize, context.RequestAborted);
        if (!complete)
        {
            // Too big after all (no Content-Length): pass what was read, then the rest, unchanged.
            request.Body = new PrefixedStream(read, body);
            RulesLog.RequestBodyLeftAlone(logger, rule.Id, $"the body is longer than MaxBodySize {settings.MaxBodySize}");
            return;
        }
        byte[] bytes;
        try
        {
            bytes = Rewrite(read, request.ContentType, rule.RequestBody);
        }
        catch (RegexMatchTimeoutException)
        {
            RulesTelemetry.RegexTimeouts.Add(1, new KeyValuePair<string, object?>("rule", rule.Id));
            RulesLog.RequestBodyLeftAlone(logger, rule.Id, "a regex exceeded the match timeout");
            bytes = read;
        }
        request.Body = new MemoryStream(bytes, writable: false);
        request.ContentLength = bytes.Length;
        request.Headers.Remove(HeaderNames.TransferEncoding);
    }

    /// <summary>Why a request body with these headers is not rewritten, or null when it is.</summary>
    public static string? WhyNot(string? contentType, string? contentEncoding, long? contentLength, long maxBodySize)
    {
        var mediaType = RuleMatch.MediaTypeOf(contentType);
        var isForm = mediaType.Equals("application/x-www-form-urlencoded", StringComparison.OrdinalIgnoreCase);
        var isJson = mediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase) || mediaType.EndsWith("+json", StringComparison.OrdinalIgnoreCase);
        if (!isForm && !isJson)
        {
            return $"content type '{contentType}' is not a form or JSON body";
        }
        if (!string.IsNullOrEmpty(contentEncoding) && !contentEncoding.Equals("identity", StringComparison.OrdinalIgnoreCase))
        {
            return $"the body has Content-Encoding '{contentEncoding}'";
        }
        if (contentLength > maxBodySize)
        {
            return $"Content-Length {contentLength} is above MaxBodySize {maxBodySize}";
        }
        if (TextCodec.EncodingOf(contentType) is null)
        {
            return $"charset of '{contentType}' is not known";
        }
        return null;
    }

    /// <summary>Reads at most <paramref name="max"/> bytes; <c>Complete</c> is false when the body is longer (then
    /// <c>Read</c> holds what was consumed, a little more than the limit).</summary>
    public static async Task<(byte[] Read, bool Complete)> ReadBoundedAsync(Stream body, long max, CancellationToken cancellationToken)
    {
        var buffer = new MemoryStream();
        var chunk = new byte[16 * 1024];
        while (true)
        {
            var n = await body.ReadAsync(chunk, cancellationToken);
            if (n == 0)
            {
                return (buffer.ToArray(), true);
            }
            buffer.Write(chunk, 0, n);
            if (buffer.Length > max)
            {
                return (buffer.ToArray(), false);
            }
        }
    }

    /// <summary>The body after the replacements, in its charset (the same array when nothing changed). Throws
    /// <see cref="RegexMatchTimeoutException"/>.</summary>
    public static byte[] Rewrite(byte[] body, string? contentType, Replacement[] replacements)
    {
        var encoding = TextCodec.EncodingOf(contentType) ?? Encoding.UTF8;
        var text = encoding.GetString(body);
        var rewritten = RulesStage.ApplyReplacements(text, replacements);
        return string.Equals(rewritten, text, StringComparison.Ordinal) ? body : encoding.GetBytes(rewritten);
    }
}

/// <summary>A read-only stream: some bytes already read, then the rest of the original stream.</summary>
internal sealed class PrefixedStream : Stream
{
    private readonly byte[] _prefix;
    private readonly Stream _rest;
    private int _position;

    public PrefixedStream(byte[] prefix, Stream rest)
    {
        _prefix = prefix;
        _rest = rest;
    }

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));

    public override int Read(Span<byte> buffer)
    {
        if (_position < _prefix.Length)
        {
            var n = Math.Min(buffer.Length, _prefix.Length - _position);
            _prefix.AsSpan(_position, n).CopyTo(buffer);
            _position += n;
            return n;
        }
        return _rest.Read(buffer);
    }

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (_position < _prefix.Length)
        {
            return ValueTask.FromResult(Read(buffer.Span));
        }
        return _rest.ReadAsync(buffer, cancellationToken);
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
