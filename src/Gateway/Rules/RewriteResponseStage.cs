using Gateway.Proxy;
using Microsoft.Net.Http.Headers;

namespace Gateway.Rules;

/// <summary>
/// Response phase of the rewrite rules (response stage order 200, after RESPMOD). For each rewrite rule that matched
/// the request and whose response conditions (status, content type) hold: header edits, then body replacements.
/// Bodies are rewritten when they are text (see <see cref="TextCodec.IsText"/>) in a charset .NET knows and a coding
/// of identity, gzip, deflate or br; the result keeps its charset and content coding (re-compressed). Bodies of
/// origin length up to <c>BufferedRewriteLimit</c> get an exact Content-Length; longer or unknown ones stream
/// chunked. A strong ETag becomes weak; Content-MD5 and Accept-Ranges are removed.
/// </summary>
internal sealed class RewriteResponseStage : IResponseStage
{
    private readonly ILogger _logger;

    public RewriteResponseStage(ILogger<RewriteResponseStage> logger) => _logger = logger;

    public int Order => ProxyStageOrder.RewriteResponse;

    public async ValueTask ApplyAsync(ResponseStageContext context, CancellationToken cancellationToken)
    {
        var feature = context.HttpContext.Features.Get<RulesResponseFeature>();
        if (feature is null)
        {
            return;
        }
        var response = context.HttpContext.Response;
        List<Replacement>? body = null;
        RewriteRule? first = null;
        foreach (var rule in feature.Rules)
        {
            if (!rule.Match.MatchesResponse(response.StatusCode, response.ContentType))
            {
                continue;
            }
            rule.ResponseHeaders?.ApplyTo(response.Headers);
            if (rule.ResponseBody.Length > 0)
            {
                (body ??= []).AddRange(rule.ResponseBody);
                first ??= rule;
            }
        }
        if (body is null)
        {
            return;
        }
        var url = context.HttpContext.Features.Get<GatewayRequestFeature>()?.TargetUri.AbsoluteUri ?? context.HttpContext.Request.Path.ToString();
        if (WhyNot(context.HttpContext.Request.Method, response.StatusCode, response.ContentType, response.Headers.ContentEncoding.ToString(), out var coding, out var encoding) is { } reason)
        {
            RulesLog.ResponseBodyLeftAlone(_logger, first!.Id, url, reason);
            return;
        }
        var originLength = response.ContentLength;
        var source = await context.GetBodyAsync(cancellationToken);
        var rewritten = new TextRewriteStream(TextCodec.Decode(coding, source), encoding!, coding, body, feature.Set.Settings.MaxMatchLength,
            () => RulesLog.BodyRegexTimeout(_logger));

        var etag = response.Headers.ETag.ToString();
        if (etag.Length > 0 && !etag.StartsWith("W/", StringComparison.Ordinal))
        {
            response.Headers.ETag = "W/" + etag;
        }
        response.Headers.Remove("Content-MD5");
        response.Headers.Remove(HeaderNames.AcceptRanges);

        if (originLength is { } length && length <= feature.Set.Settings.BufferedRewriteLimit)
        {
            var buffered = new MemoryStream();
            await using (rewritten)
            {
                await rewritten.CopyToAsync(buffered, cancellationToken);
            }
            buffered.Position = 0;
            context.ReplaceBody(buffered, buffered.Length);
        }
        else
        {
            context.ReplaceBody(rewritten);
        }
    }

    /// <summary>Why a response body is not rewritten, or null (with its content coding and charset) when it is.</summary>
    internal static string? WhyNot(string method, int status, string? contentType, string? contentEncoding, out string coding, out System.Text.Encoding? encoding)
    {
        coding = string.Empty;
        encoding = null;
        if (HttpMethods.IsHead(method))
        {
            return "HEAD response";
        }
        if (status is StatusCodes.Status204NoContent or StatusCodes.Status304NotModified or StatusCodes.Status206PartialContent || status < 200)
        {
            return $"status {status} has no rewritable body";
        }
        var mediaType = RuleMatch.MediaTypeOf(contentType);
        if (!TextCodec.IsText(mediaType))
        {
            return $"content type '{contentType}' is not text";
        }
        var codings = (contentEncoding ?? string.Empty).Trim().ToLowerInvariant();
        if (codings.Contains(','))
        {
            return $"stacked content codings '{codings}' are not decoded";
        }
        if (!TextCodec.IsSupportedCoding(codings))
        {
            return $"content coding '{codings}' is not one of gzip, deflate, br";
        }
        coding = codings == "identity" ? string.Empty : codings;
        encoding = TextCodec.EncodingOf(contentType);
        if (encoding is null)
        {
            return $"charset of '{contentType}' is not known";
        }
        return null;
    }
}
