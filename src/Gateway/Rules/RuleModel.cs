using System.Text;
using System.Text.RegularExpressions;

namespace Gateway.Rules;

/// <summary>The four policies, in the order the request phase applies them.</summary>
internal enum RulePolicy
{
    Drop,
    NoCache,
    Sort,
    Rewrite,
}

/// <summary>
/// What the request phase of the rules looks at: method, absolute URL and request headers. Independent of
/// HttpContext so the ICAP <c>rules</c> service evaluates the same rules over an encapsulated request.
/// </summary>
internal readonly struct RequestFacts
{
    public RequestFacts(string method, Uri url, IHeaderDictionary headers)
    {
        Method = method;
        Url = url;
        Headers = headers;
    }

    public string Method { get; }
    public Uri Url { get; }
    public IHeaderDictionary Headers { get; }
}

/// <summary>A status condition: one code or an inclusive range (<c>404</c>, <c>2xx</c>, <c>500-504</c>).</summary>
internal readonly record struct StatusRange(int From, int To)
{
    public bool Contains(int status) => status >= From && status <= To;

    public static bool TryParse(string text, out StatusRange range)
    {
        range = default;
        text = text.Trim();
        if (text.Length == 3 && text[0] is >= '1' and <= '5' && text.EndsWith("xx", StringComparison.OrdinalIgnoreCase))
        {
            var hundred = (text[0] - '0') * 100;
            range = new StatusRange(hundred, hundred + 99);
            return true;
        }
        var dash = text.IndexOf('-');
        if (dash > 0 && int.TryParse(text.AsSpan(0, dash), out var a) && int.TryParse(text.AsSpan(dash + 1), out var b) && a >= 100 && b <= 599 && a <= b)
        {
            range = new StatusRange(a, b);
            return true;
        }
        if (int.TryParse(text, out var code) && code >= 100 && code <= 599)
        {
            range = new StatusRange(code, code);
            return true;
        }
        return false;
    }

    public override string ToString() => From == To ? From.ToString() : $"{From}-{To}";
}

/// <summary>
/// The compiled <c>Match</c> of a rule. Request keys (scheme, host, port, path, URL, methods, headers) are checked in
/// the request phase; response keys (status, content type) in the response phase (rewrite rules only).
/// </summary>
internal sealed class RuleMatch
{
    public string? Scheme { get; init; }
    public Glob? Host { get; init; }
    public int? Port { get; init; }
    public Glob? Path { get; init; }
    public Regex? Url { get; init; }
    public string[]? Methods { get; init; }
    public (string Name, Regex Pattern)[]? Headers { get; init; }
    public StatusRange[]? Status { get; init; }
    public Glob[]? ContentTypes { get; init; }

    public bool HasResponseConditions => Status is not null || ContentTypes is not null;

    /// <summary>True when every request condition holds. Cheap checks run first; regexes last.</summary>
    public bool MatchesRequest(in RequestFacts facts)
    {
        var url = facts.Url;
        if (Scheme is not null && !string.Equals(Scheme, url.Scheme, StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }
        if (Port is { } port && port != url.Port)
        {
            return false;
        }
        if (Methods is not null && !ContainsMethod(Methods, facts.Method))
        {
            return false;
        }
        if (Host is not null && !Host.IsMatch(url.IdnHost))
        {
            return false;
        }
        if (Path is not null && !Path.IsMatch(url.AbsolutePath))
        {
            return false;
        }
        if (Headers is not null)
        {
            foreach (var (name, pattern) in Headers)
            {
                if (!facts.Headers.TryGetValue(name, out var values) || values.Count == 0 || !pattern.IsMatch(values.ToString()))
                {
                    return false;
                }
            }
        }
        if (Url is not null && !Url.IsMatch(url.AbsoluteUri))
        {
            return false;
        }
        return true;
    }

    private static bool ContainsMethod(string[] methods, string method)
    {
        foreach (var m in methods)
        {
            if (string.Equals(m, method, StringComparison.OrdinalIgnoreCase))
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>True when the response conditions hold (always true when there are none).</summary>
    public bool MatchesResponse(int status, string? contentType)
    {
        if (Status is not null && Array.FindIndex(Status, s => s.Contains(status)) < 0)
        {
            return false;
        }
        if (ContentTypes is not null)
        {
            var mediaType = MediaTypeOf(contentType);
            if (mediaType.IsEmpty)
            {
                return false;
            }
            foreach (var glob in ContentTypes)
            {
                if (glob.IsMatch(mediaType))
                {
                    return true;
                }
            }
            return false;
        }
        return true;
    }

    public static ReadOnlySpan<char> MediaTypeOf(string? contentType)
    {
        if (string.IsNullOrEmpty(contentType))
        {
            return default;
        }
        var span = contentType.AsSpan();
        var semi = span.IndexOf(';');
        return (semi >= 0 ? span[..semi] : span).Trim();
    }

    public string Describe()
    {
        var parts = new List<string>();
        if (Scheme is not null) parts.Add("scheme " + Scheme);
        if (Host is not null) parts.Add("host " + Host);
        if (Port is not null) parts.Add("port " + Port);
        if (Path is not null) parts.Add("path " + Path);
        if (Url is not null) parts.Add("url ~ " + Url);
        if (Methods is not null) parts.Add("method " + string.Join("|", Methods));
        if (Headers is not null) parts.AddRange(Headers.Select(h => $"header {h.Name} ~ {h.Pattern}"));
        if (Status is not null) parts.Add("status " + string.Join("|", Status));
        if (ContentTypes is not null) parts.Add("content-type " + string.Join("|", ContentTypes.Select(g => g.Pattern)));
        return string.Join(", ", parts);
    }
}

/// <summary>A regex replacement (<c>Pattern</c> → <c>Replacement</c>, with <c>$1</c>, <c>${name}</c> substitutions).</summary>
internal sealed record Replacement(Regex Pattern, string Text);

/// <summary>Counts how often a rule applied; survives reloads (kept by policy and id).</summary>
internal sealed class RuleCounter
{
    private long _matches;

    public long Matches => Interlocked.Read(ref _matches);

    public void Increment() => Interlocked.Increment(ref _matches);
}

/// <summary>A compiled rule: immutable, shared by every request of one rule-set generation.</summary>
internal abstract class Rule
{
    protected Rule(string id, int order, RuleMatch match, RuleCounter counter)
    {
        Id = id;
        Order = order;
        Match = match;
        Counter = counter;
    }

    public abstract RulePolicy Policy { get; }
    public string Id { get; }
    public int Order { get; }
    public RuleMatch Match { get; }
    public RuleCounter Counter { get; }

    /// <summary>Position in the rule set (policy, then order, then id): lower runs first.</summary>
    public int Ordinal { get; set; }

    /// <summary>How the rule set indexes this rule (for /rules).</summary>
    public string Index { get; set; } = "scan";

    public abstract string Describe();
}

/// <summary>Drop: answered locally with a placeholder fitting what the client asked for.</summary>
internal sealed class DropRule : Rule
{
    public DropRule(string id, int order, RuleMatch match, RuleCounter counter) : base(id, order, match, counter) { }

    public override RulePolicy Policy => RulePolicy.Drop;

    /// <summary>Fixed status, or null for the placeholder's own (200 for html/image/script/style, 204 otherwise).</summary>
    public int? Status { get; init; }

    /// <summary>Fixed body, or null for the placeholder's own.</summary>
    public string? Body { get; init; }

    /// <summary>Content type of a fixed body (default <c>text/plain; charset=utf-8</c>).</summary>
    public string? ContentType { get; init; }

    public override string Describe()
        => Body is null && Status is null
            ? "answer locally with a placeholder fitting the request (html page, 1x1 gif, empty script/style, or 204)"
            : $"answer locally with {(Status?.ToString() ?? "the placeholder status")}{(Body is null ? "" : " and the configured body")}";
}

/// <summary>NoCache: neither looked up nor stored in the cache.</summary>
internal sealed class NoCacheRule : Rule
{
    public NoCacheRule(string id, int order, RuleMatch match, RuleCounter counter) : base(id, order, match, counter) { }

    public override RulePolicy Policy => RulePolicy.NoCache;

    public override string Describe() => "bypass the cache (no lookup, no store)";
}

/// <summary>Sort: where a cache entry lives (location, dated archive copies) and under which key.</summary>
internal sealed class SortRule : Rule
{
    public SortRule(string id, int order, RuleMatch match, RuleCounter counter) : base(id, order, match, counter) { }

    public override RulePolicy Policy => RulePolicy.Sort;

    /// <summary>Location template (<c>videos/$1.mp4</c>): substitutions from the <c>Match:Url</c> regex.</summary>
    public string? Location { get; init; }

    /// <summary>Archive period format (<c>yyyy/MM/dd</c>): keep a dated copy per period.</summary>
    public string? Archive { get; init; }

    public CacheKeyOptions? Key { get; init; }

    public override string Describe()
    {
        var sb = new StringBuilder("store in the cache");
        if (Location is not null) sb.Append(" at location '").Append(Location).Append('\'');
        if (Archive is not null) sb.Append(", archived per period '").Append(Archive).Append('\'');
        if (Key is not null) sb.Append(", key ").Append(Key.Describe());
        return sb.ToString();
    }
}

/// <summary>Options that turn a URL into a cache key.</summary>
internal sealed class CacheKeyOptions
{
    /// <summary>Replacement over the <c>Match:Url</c> regex giving the key (e.g. <c>video:$1</c>), instead of the URL.</summary>
    public string? Template { get; init; }

    /// <summary>Query parameters (globs on names) left out of the key.</summary>
    public Glob[] DropQuery { get; init; } = [];

    /// <summary>Order query parameters by name (then value) so that <c>?b=1&amp;a=2</c> and <c>?a=2&amp;b=1</c> share an entry.</summary>
    public bool SortQuery { get; init; }

    /// <summary>Leave the whole query out of the key.</summary>
    public bool IgnoreQuery { get; init; }

    public string Describe()
    {
        var parts = new List<string>();
        if (Template is not null) parts.Add($"'{Template}'");
        if (IgnoreQuery) parts.Add("without query");
        if (DropQuery.Length > 0) parts.Add("dropping query " + string.Join(",", DropQuery.Select(g => g.Pattern)));
        if (SortQuery) parts.Add("with sorted query");
        return string.Join(", ", parts);
    }
}

/// <summary>Header edits: set (replace), append, remove.</summary>
internal sealed class HeaderEdits
{
    public KeyValuePair<string, string>[] Set { get; init; } = [];
    public KeyValuePair<string, string>[] Append { get; init; } = [];
    public string[] Remove { get; init; } = [];

    public bool IsEmpty => Set.Length == 0 && Append.Length == 0 && Remove.Length == 0;

    public void ApplyTo(IHeaderDictionary headers)
    {
        foreach (var name in Remove)
        {
            headers.Remove(name);
        }
        foreach (var (name, value) in Set)
        {
            headers[name] = value;
        }
        foreach (var (name, value) in Append)
        {
            headers.Append(name, value);
        }
    }

    public string Describe()
    {
        var parts = new List<string>();
        if (Remove.Length > 0) parts.Add("remove " + string.Join(",", Remove));
        if (Set.Length > 0) parts.Add("set " + string.Join(",", Set.Select(kv => kv.Key)));
        if (Append.Length > 0) parts.Add("append " + string.Join(",", Append.Select(kv => kv.Key)));
        return string.Join("; ", parts);
    }
}

/// <summary>Rewrite: request URL/headers/body and response headers/body.</summary>
internal sealed class RewriteRule : Rule
{
    public RewriteRule(string id, int order, RuleMatch match, RuleCounter counter) : base(id, order, match, counter) { }

    public override RulePolicy Policy => RulePolicy.Rewrite;

    public Replacement[] RequestUrl { get; init; } = [];
    public HeaderEdits? RequestHeaders { get; init; }
    public Replacement[] RequestBody { get; init; } = [];
    public HeaderEdits? ResponseHeaders { get; init; }
    public Replacement[] ResponseBody { get; init; } = [];

    public bool HasRequestPart => RequestUrl.Length > 0 || RequestHeaders is not null || RequestBody.Length > 0;
    public bool HasResponsePart => ResponseHeaders is not null || ResponseBody.Length > 0;

    public override string Describe()
    {
        var parts = new List<string>();
        if (RequestUrl.Length > 0) parts.Add("request url: " + string.Join(" then ", RequestUrl.Select(r => $"s/{r.Pattern}/{r.Text}/")));
        if (RequestHeaders is not null) parts.Add("request headers: " + RequestHeaders.Describe());
        if (RequestBody.Length > 0) parts.Add("request body: " + string.Join(" then ", RequestBody.Select(r => $"s/{r.Pattern}/{r.Text}/")));
        if (ResponseHeaders is not null) parts.Add("response headers: " + ResponseHeaders.Describe());
        if (ResponseBody.Length > 0) parts.Add("response body: " + string.Join(" then ", ResponseBody.Select(r => $"s/{r.Pattern}/{r.Text}/")));
        if (Match.HasResponseConditions) parts.Add("(response part only when " + Match.Describe() + ")");
        return string.Join("; ", parts);
    }
}
