using Gateway.Admin;

namespace Gateway.Rules;

/// <summary>
/// Admin endpoints: <c>GET /rules</c> (the rule set in force, each rule's index bucket and match counter, the errors of
/// a rejected reload) and <c>GET /rules/explain?url=…&amp;method=…&amp;header=Name:value</c> (which rules match that
/// request and what each would do).
/// </summary>
internal sealed class RulesAdminHandler : IAdminHandler
{
    private readonly RuleStore _store;

    public RulesAdminHandler(RuleStore store) => _store = store;

    public string Prefix => "/rules";

    public Task HandleAsync(HttpContext context)
    {
        var path = context.Request.Path.Value ?? "";
        if (!HttpMethods.IsGet(context.Request.Method) && !HttpMethods.IsHead(context.Request.Method))
        {
            context.Response.Headers.Allow = "GET, HEAD";
            return AdminDispatcher.WriteJsonAsync(context, new { error = "method not allowed: use GET" }, StatusCodes.Status405MethodNotAllowed);
        }
        if (path.Equals("/rules", StringComparison.OrdinalIgnoreCase) || path.Equals("/rules/", StringComparison.OrdinalIgnoreCase))
        {
            return AdminDispatcher.WriteJsonAsync(context, Summary());
        }
        if (path.Equals("/rules/explain", StringComparison.OrdinalIgnoreCase))
        {
            return Explain(context);
        }
        return AdminDispatcher.WriteJsonAsync(context, new { error = "no such rules endpoint: use /rules or /rules/explain?url=…" }, StatusCodes.Status404NotFound);
    }

    private object Summary() => SummaryOf(_store.Current, _store);

    /// <summary>The rule set as <c>GET /rules</c> shows it (<paramref name="store"/> null: no reload state).</summary>
    internal static object SummaryOf(RuleSet set, RuleStore? store)
    {
        return new
        {
            loadedAt = set.LoadedAt == DateTimeOffset.MinValue ? (DateTimeOffset?)null : set.LoadedAt,
            count = set.Rules.Count,
            settings = new
            {
                regexTimeout = set.Settings.RegexTimeout.ToString(),
                maxBodySize = set.Settings.MaxBodySize,
                maxMatchLength = set.Settings.MaxMatchLength,
                bufferedRewriteLimit = set.Settings.BufferedRewriteLimit,
            },
            lastReload = store is null ? null : new
            {
                status = store.LastErrors.Count == 0 ? "applied" : "rejected",
                rejectedAt = store.LastRejectedAt,
                errors = store.LastErrors.Select(e => new { key = e.Key, reason = e.Reason }),
            },
            rules = set.Rules.Select(r => new
            {
                policy = r.Policy.ToString(),
                id = r.Id,
                order = r.Order,
                match = r.Match.Describe(),
                action = r.Describe(),
                index = r.Index,
                matches = r.Counter.Matches,
            }),
        };
    }

    private Task Explain(HttpContext context)
    {
        var query = context.Request.Query;
        var urlText = query["url"].ToString();
        if (!Uri.TryCreate(urlText, UriKind.Absolute, out var url) || (url.Scheme != Uri.UriSchemeHttp && url.Scheme != Uri.UriSchemeHttps))
        {
            return AdminDispatcher.WriteJsonAsync(context, new { error = $"url '{urlText}' is not an absolute http:// or https:// URL" }, StatusCodes.Status400BadRequest);
        }
        var method = query["method"].ToString();
        method = method.Length == 0 ? "GET" : method.ToUpperInvariant();
        var headers = new HeaderDictionary();
        foreach (var header in query["header"])
        {
            var colon = header?.IndexOf(':') ?? -1;
            if (colon <= 0)
            {
                return AdminDispatcher.WriteJsonAsync(context, new { error = $"header '{header}' is not 'Name: value'" }, StatusCodes.Status400BadRequest);
            }
            headers.Append(header![..colon].Trim(), header[(colon + 1)..].Trim());
        }
        return AdminDispatcher.WriteJsonAsync(context, ExplainResult(_store.Current, url, method, headers));
    }

    /// <summary>What the rules of <paramref name="set"/> would do with a request (admin endpoint and <c>gateway rules explain</c>).</summary>
    internal static object ExplainResult(RuleSet set, Uri url, string method, IHeaderDictionary headers)
    {
        var decision = set.Evaluate(new RequestFacts(method, url, headers), explain: true);
        var matches = decision?.Explained?.Select(e => new
        {
            policy = e.Rule.Policy.ToString(),
            id = e.Rule.Id,
            applies = e.Applies,
            action = e.Applies ? e.Rule.Describe() : "shadowed by an earlier " + (decision.Drop is not null && e.Rule.Policy != RulePolicy.Drop ? "Drop" : e.Rule.Policy.ToString()) + " rule",
            match = e.Rule.Match.Describe(),
        }).ToArray() ?? [];
        string? rewrittenUrl = null;
        if (decision?.Drop is null && decision?.Rewrites.Count > 0)
        {
            try
            {
                var text = url.AbsoluteUri;
                foreach (var rule in decision.Rewrites)
                {
                    text = RulesStage.ApplyReplacements(text, rule.RequestUrl);
                }
                rewrittenUrl = text == url.AbsoluteUri ? null : text;
            }
            catch (System.Text.RegularExpressions.RegexMatchTimeoutException)
            {
                rewrittenUrl = "(regex timeout)";
            }
        }
        return new
        {
            url = url.AbsoluteUri,
            method,
            outcome = new
            {
                drop = decision?.Drop?.Id,
                placeholder = decision?.Drop is { } drop
                    ? DropPlaceholder.Classify(method, url, headers).ToString().ToLowerInvariant()
                    : null,
                noCache = decision?.Drop is null && decision?.NoCache is not null,
                cacheLocation = decision?.Drop is null ? decision?.CacheLocation : null,
                cacheLocationRefused = decision?.LocationRefused,
                cacheKey = decision?.Drop is null ? decision?.CacheKey : null,
                cacheArchive = decision?.Drop is null ? decision?.Sort?.Archive : null,
                rewrittenUrl,
                timedOut = decision?.TimedOut?.Select(r => r.Policy + ":" + r.Id).ToArray() ?? [],
            },
            matches,
        };
    }
}
