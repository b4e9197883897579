using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using Gateway.Icap.Protocol;
using Gateway.Icap.Server;
using Microsoft.AspNetCore.WebUtilities;

namespace Gateway.Rules;

/// <summary>
/// The built-in ICAP service <c>rules</c> (<c>icap://host:1344/rules</c>): the gateway's Drop and Rewrite rules for
/// ICAP clients such as Squid. REQMOD: a Drop rule answers with the encapsulated placeholder response; Rewrite rules
/// give the modified request (URL, headers, form/JSON body). RESPMOD: a Drop rule replaces the response with the
/// placeholder; Rewrite rules give the modified response (headers, text body, streamed). NoCache and Sort rules concern
/// the gateway's own cache and do nothing here. Nothing to do: 204 (or the unchanged message when 204 is not allowed).
/// The ISTag changes whenever the rule set does.
/// </summary>
internal sealed class RulesIcapService : IcapService
{
    public const string ServiceName = "rules";

    private readonly RuleStore _store;
    private readonly ILogger _logger;

    public RulesIcapService(RuleStore store, ILogger<RulesIcapService> logger)
        : base(ServiceName)
    {
        _store = store;
        _logger = logger;
    }

    /// <summary>Preview 0: the decision needs only the heads, so a client can be told 204 before sending any body.</summary>
    public override IcapServiceDeclaration Declaration { get; } = new()
    {
        Description = "Gateway rules (drop, rewrite)",
        PreviewSize = 0,
        Allow204 = true,
    };

    public override string IsTag => _store.Current.Tag;

    protected override async ValueTask ReqmodAsync(IcapRequestContext context, CancellationToken cancellationToken)
    {
        var request = context.HttpRequest;
        if (request is null || !TryGetUrl(request, out var url))
        {
            await context.RespondErrorAsync(400, "No HTTP request with an http(s) URL to apply rules to", cancellationToken);
            return;
        }
        var set = _store.Current;
        var headers = ToDictionary(request.Headers);
        var decision = Evaluate(set, request.Method, url, headers);
        if (decision?.Drop is { } drop)
        {
            RulesTelemetry.Count(drop);
            await RespondPlaceholderAsync(context, drop, request.Method, url, headers, cancellationToken);
            return;
        }
        var rewrites = decision?.Rewrites.Where(r => r.HasRequestPart).ToArray() ?? [];
        if (rewrites.Length == 0)
        {
            await UnchangedAsync(context, request, cancellationToken);
            return;
        }
        var target = request.Target;
        Stream? body = context.HasBody ? context.Body : null;
        foreach (var rule in rewrites)
        {
            RulesTelemetry.Count(rule);
            if (rule.RequestUrl.Length > 0)
            {
                url = RewriteUrl(rule, url, headers, ref target);
            }
            rule.RequestHeaders?.ApplyTo(headers);
            if (rule.RequestBody.Length > 0 && body is not null)
            {
                body = await RewriteBodyAsync(rule, set.Settings, headers, body, cancellationToken);
            }
        }
        await context.RespondAsync(new HttpRequestHead(request.Method, target, request.Version, ToIcapHeaders(headers)), body, cancellationToken);
    }

    protected override async ValueTask RespmodAsync(IcapRequestContext context, CancellationToken cancellationToken)
    {
        var request = context.HttpRequest;
        var response = context.HttpResponse;
        if (response is null)
        {
            await context.RespondErrorAsync(400, "No HTTP response to apply rules to", cancellationToken);
            return;
        }
        if (request is null || !TryGetUrl(request, out var url))
        {
            // Rules are keyed on the request: without it there is nothing to match.
            await UnchangedAsync(context, response, cancellationToken);
            return;
        }
        var set = _store.Current;
        var requestHeaders = ToDictionary(request.Headers);
        var decision = Evaluate(set, request.Method, url, requestHeaders);
        if (decision?.Drop is { } drop)
        {
            RulesTelemetry.Count(drop);
            await RespondPlaceholderAsync(context, drop, request.Method, url, requestHeaders, cancellationToken);
            return;
        }
        var headers = ToDictionary(response.Headers);
        var contentType = headers.ContentType.ToString();
        var rules = decision?.Rewrites.Where(r => r.HasResponsePart && r.Match.MatchesResponse(response.StatusCode, contentType)).ToArray() ?? [];
        if (rules.Length == 0)
        {
            await UnchangedAsync(context, response, cancellationToken);
            return;
        }
        var replacements = new List<Replacement>();
        foreach (var rule in rules)
        {
            RulesTelemetry.Count(rule);
            rule.ResponseHeaders?.ApplyTo(headers);
            replacements.AddRange(rule.ResponseBody);
        }
        Stream? body = context.HasBody ? context.Body : null;
        if (replacements.Count > 0 && body is not null)
        {
            var why = RewriteResponseStage.WhyNot(request.Method, response.StatusCode, headers.ContentType.ToString(), headers.ContentEncoding.ToString(), out var coding, out var encoding);
            if (why is null)
            {
                body = new TextRewriteStream(TextCodec.Decode(coding, body), encoding!, coding, replacements, set.Settings.MaxMatchLength,
                    () => RulesLog.BodyRegexTimeout(_logger));
                headers.ContentLength = null; // the ICAP framing carries the new length
                var etag = headers.ETag.ToString();
                if (etag.Length > 0 && !etag.StartsWith("W/", StringComparison.Ordinal))
                {
                    headers.ETag = "W/" + etag;
                }
                headers.Remove("Content-MD5");
                headers.Remove("Accept-Ranges");
            }
            else
            {
                RulesLog.ResponseBodyLeftAlone(_logger, rules[0].Id, url.AbsoluteUri, why);
            }
        }
        await context.RespondAsync(new HttpResponseHead(response.Version, response.StatusCode, response.ReasonPhrase, ToIcapHeaders(headers)), body, cancellationToken);
    }

    private RuleDecision? Evaluate(RuleSet set, string method, Uri url, IHeaderDictionary headers)
    {
        var decision = set.Evaluate(new RequestFacts(method, url, headers));
        foreach (var timedOut in decision?.TimedOut ?? [])
        {
            RulesLog.RegexTimeout(_logger, timedOut.Policy, timedOut.Id, url.AbsoluteUri);
        }
        return decision;
    }

    private Uri RewriteUrl(RewriteRule rule, Uri url, IHeaderDictionary headers, ref string target)
    {
        string rewritten;
        try
        {
            rewritten = RulesStage.ApplyReplacements(url.AbsoluteUri, rule.RequestUrl);
        }
        catch (RegexMatchTimeoutException)
        {
            RulesTelemetry.RegexTimeouts.Add(1, new KeyValuePair<string, object?>("rule", rule.Id));
            RulesLog.RegexTimeout(_logger, rule.Policy, rule.Id, url.AbsoluteUri);
            return url;
        }
        if (rewritten == url.AbsoluteUri)
        {
            return url;
        }
        if (!Uri.TryCreate(rewritten, UriKind.Absolute, out var next) || (next.Scheme != Uri.UriSchemeHttp && next.Scheme != Uri.UriSchemeHttps))
        {
            RulesLog.BadRewrittenUrl(_logger, rule.Id, url.AbsoluteUri, rewritten);
            return url;
        }
        // Keep the request-target form the client used: absolute stays absolute, origin-form gets a new Host.
        target = target.StartsWith('/') ? next.PathAndQuery : next.AbsoluteUri;
        headers.Host = next.Authority;
        return next;
    }

    private async Task<Stream> RewriteBodyAsync(RewriteRule rule, RulesSettings settings, IHeaderDictionary headers, Stream body, CancellationToken cancellationToken)
    {
        var contentType = headers.ContentType.ToString();
        if (RequestBodyRewriter.WhyNot(contentType, headers.ContentEncoding.ToString(), headers.ContentLength, settings.MaxBodySize) is { } why)
        {
            RulesLog.RequestBodyLeftAlone(_logger, rule.Id, why);
            return body;
        }
        var (read, complete) = await RequestBodyRewriter.ReadBoundedAsync(body, settings.MaxBodySize, cancellationToken);
        if (!complete)
        {
            RulesLog.RequestBodyLeftAlone(_logger, rule.Id, $"the body is longer than MaxBodySize {settings.MaxBodySize}");
            return new PrefixedStream(read, body);
        }
        byte[] bytes;
        try
        {
            bytes = RequestBodyRewriter.Rewrite(read, contentType, rule.RequestBody);
        }
        catch (RegexMatchTimeoutException)
        {
            RulesTelemetry.RegexTimeouts.Add(1, new KeyValuePair<string, object?>("rule", rule.Id));
            bytes = read;
        }
        headers.ContentLength = bytes.Length;
        headers.Remove("Transfer-Encoding");
        return new MemoryStream(bytes, writable: false);
    }

    private static ValueTask RespondPlaceholderAsync(IcapRequestContext context, DropRule drop, string method, Uri url, IHeaderDictionary requestHeaders, CancellationToken cancellationToken)
    {
        var kind = DropPlaceholder.Classify(method, url, requestHeaders);
        var (status, contentType, body) = DropPlaceholder.Build(drop, kind, url);
        var headers = new IcapHeaders
        {
            { "Cache-Control", "no-store" },
            { "X-Gateway-Rule", "drop/" + drop.Id },
        };
        if (contentType is not null)
        {
            headers.Add("Content-Type", contentType);
        }
        context.ResponseHeaders.Set("X-Gateway-Rule", "drop/" + drop.Id);
        var reason = ReasonPhrases.GetReasonPhrase(status);
        if (status is 204 or 304)
        {
            return context.RespondAsync(new HttpResponseHead("HTTP/1.1", status, reason, headers), null, cancellationToken);
        }
        return context.RespondHttpAsync(status, reason.Length == 0 ? "Blocked" : reason, headers, body, cancellationToken);
    }

    private static ValueTask UnchangedAsync(IcapRequestContext context, HttpRequestHead request, CancellationToken cancellationToken)
        => context.CanRespondNoContent
            ? context.RespondNoContentAsync(cancellationToken)
            : context.RespondAsync(request, context.HasBody ? context.Body : null, cancellationToken);

    private static ValueTask UnchangedAsync(IcapRequestContext context, HttpResponseHead response, CancellationToken cancellationToken)
        => context.CanRespondNoContent
            ? context.RespondNoContentAsync(cancellationToken)
            : context.RespondAsync(response, context.HasBody ? context.Body : null, cancellationToken);

    /// <summary>The absolute URL of an encapsulated request: its absolute target, or Host + origin-form target.</summary>
    internal static bool TryGetUrl(HttpRequestHead request, out Uri url)
    {
        var target = request.Target;
        if (target.StartsWith('/'))
        {
            var host = request.Headers["Host"];
            if (string.IsNullOrEmpty(host))
            {
                url = null!;
                return false;
            }
            target = "http://" + host + target;
        }
        return Uri.TryCreate(target, UriKind.Absolute, out url!) && (url.Scheme == Uri.UriSchemeHttp || url.Scheme == Uri.UriSchemeHttps);
    }

    private static IHeaderDictionary ToDictionary(IcapHeaders headers)
    {
        var dictionary = new HeaderDictionary();
        foreach (var (name, value) in headers)
        {
            dictionary.Append(name, value);
        }
        return dictionary;
    }

    private static IcapHeaders ToIcapHeaders(IHeaderDictionary headers)
    {
        var result = new IcapHeaders(headers.Count);
        foreach (var (name, values) in headers)
        {
            foreach (var value in values)
            {
                if (value is not null)
                {
                    result.Add(name, value);
                }
            }
        }
        return result;
    }

    /// <summary>An ISTag for a rule-set generation: a hash of its configuration.</summary>
    internal static string TagOf(string fingerprint)
        => "\"GW-RULES-" + Convert.ToHexString(SHA256.HashData(Encoding.UTF8.GetBytes(fingerprint)), 0, 10) + "\"";
}
