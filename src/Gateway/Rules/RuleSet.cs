using System.Text.RegularExpressions;

namespace Gateway.Rules;

/// <summary>
/// An immutable, indexed generation of compiled rules. Each rule sits in exactly one bucket: by exact host, by
/// <c>*.domain</c> suffix, by the literal first path segment of its path glob, or (when none applies) in the small
/// list scanned for every request. A request looks up its host, each parent domain and its first path segment,
/// so 1,000 host and path rules cost a few dictionary lookups, not 1,000 regex runs.
/// </summary>
internal sealed class RuleSet
{
    private static readonly int[] s_none = [];

    [ThreadStatic]
    private static List<int>? t_candidates;

    private readonly Rule[] _rules;
    private readonly Dictionary<string, int[]> _byHost;
    private readonly Dictionary<string, int[]>.AlternateLookup<ReadOnlySpan<char>> _byHostSpan;
    private readonly Dictionary<string, int[]> _byDomain;
    private readonly Dictionary<string, int[]>.AlternateLookup<ReadOnlySpan<char>> _byDomainSpan;
    private readonly Dictionary<string, int[]> _byFirstSegment;
    private readonly Dictionary<string, int[]>.AlternateLookup<ReadOnlySpan<char>> _byFirstSegmentSpan;
    private readonly int[] _scan;

    public static readonly RuleSet Empty = new([], RulesSettings.Default, DateTimeOffset.MinValue);

    public RuleSet(IEnumerable<Rule> rules, RulesSettings settings, DateTimeOffset loadedAt)
    {
        Settings = settings;
        LoadedAt = loadedAt;
        _rules = rules.OrderBy(r => r.Policy).ThenBy(r => r.Order).ThenBy(r => r.Id, StringComparer.Ordinal).ToArray();
        // Hosts are compared ordinally: globs are lower-cased when compiled and Uri lower-cases DNS hosts.
        var byHost = new Dictionary<string, List<int>>(StringComparer.Ordinal);
        var byDomain = new Dictionary<string, List<int>>(StringComparer.Ordinal);
        var bySegment = new Dictionary<string, List<int>>(StringComparer.Ordinal);
        var scan = new List<int>();
        for (var i = 0; i < _rules.Length; i++)
        {
            var rule = _rules[i];
            rule.Ordinal = i;
            var match = rule.Match;
            if (match.Host is { IsLiteral: true } exact)
            {
                Add(byHost, exact.Pattern, i);
                rule.Index = "host " + exact.Pattern;
            }
            else if (match.Host?.DomainSuffix is { } suffix)
            {
                Add(byDomain, suffix, i);
                rule.Index = "domain " + suffix;
            }
            else if (match.Url is not null && UrlHostHint(match.Url.ToString()) is { } urlHost)
            {
                Add(byHost, urlHost, i);
                rule.Index = "host " + urlHost + " (from Url)";
            }
            else if (match.Path is not null && FirstSegment(match.Path.LiteralPrefix, requireComplete: !match.Path.IsLiteral) is { } segment)
            {
                Add(bySegment, segment, i);
                rule.Index = "path /" + segment;
            }
            else
            {
                scan.Add(i);
                rule.Index = "scan";
            }
        }
        _byHost = byHost.ToDictionary(kv => kv.Key, kv => kv.Value.ToArray(), StringComparer.Ordinal);
        _byDomain = byDomain.ToDictionary(kv => kv.Key, kv => kv.Value.ToArray(), StringComparer.Ordinal);
        _byFirstSegment = bySegment.ToDictionary(kv => kv.Key, kv => kv.Value.ToArray(), StringComparer.Ordinal);
        _byHostSpan = _byHost.GetAlternateLookup<ReadOnlySpan<char>>();
        _byDomainSpan = _byDomain.GetAlternateLookup<ReadOnlySpan<char>>();
        _byFirstSegmentSpan = _byFirstSegment.GetAlternateLookup<ReadOnlySpan<char>>();
        _scan = scan.Count == 0 ? s_none : scan.ToArray();
        HasRequestRules = _rules.Length > 0;
        HasResponseRules = _rules.OfType<RewriteRule>().Any(r => r.HasResponsePart);
    }

    public RulesSettings Settings { get; }
    public DateTimeOffset LoadedAt { get; }

    /// <summary>An ISTag-style tag of this generation (changes with the configuration); set before publication.</summary>
    public string Tag { get; set; } = "\"GW-RULES-0\"";
    public IReadOnlyList<Rule> Rules => _rules;
    public bool HasRequestRules { get; }
    public bool HasResponseRules { get; }

    private static void Add(Dictionary<string, List<int>> index, string key, int i)
    {
        if (!index.TryGetValue(key, out var list))
        {
            index[key] = list = [];
        }
        list.Add(i);
    }

    /// <summary>
    /// The literal host a URL regex is anchored to, when it is plain enough to be sure: <c>^https?://mail\.example/</c>,
    /// <c>^http://a\.example:8080</c> → <c>a.example</c>. Patterns with alternation, inline options, classes or
    /// quantifiers in the host are not indexed (they are scanned).
    /// </summary>
    internal static string? UrlHostHint(string pattern)
    {
        if (pattern.Contains('|'))
        {
            return null;
        }
        string[] prefixes = ["^https?://", "^http://", "^https://", "^(?:https?)://", "^(https?)://"];
        var prefix = Array.Find(prefixes, p => pattern.StartsWith(p, StringComparison.Ordinal));
        if (prefix is null)
        {
            return null;
        }
        var host = new System.Text.StringBuilder();
        var i = prefix.Length;
        for (; i < pattern.Length; i++)
        {
            var c = pattern[i];
            if (char.IsAsciiLetterOrDigit(c) || c == '-')
            {
                host.Append(char.ToLowerInvariant(c));
            }
            else if (c == '\\' && i + 1 < pattern.Length && pattern[i + 1] == '.')
            {
                host.Append('.');
                i++;
            }
            else
            {
                break;
            }
        }
        // The host must end where the authority does: '/', ':' (port) or '$'. At the end of the pattern it would be a
        // prefix of longer hosts (mail.example.evil), so that is not indexed.
        if (host.Length == 0 || i >= pattern.Length || pattern[i] is not ('/' or ':' or '$'))
        {
            return null;
        }
        // A quantifier right after the terminator (e.g. "/?") could make it optional: not indexed.
        return i + 1 < pattern.Length && pattern[i + 1] is '?' or '*' or '+' or '{' ? null : host.ToString();
    }

    /// <summary>
    /// The first path segment of a literal path prefix (<c>/videos/…</c> → <c>videos</c>). With
    /// <paramref name="requireComplete"/> (a wildcard follows the prefix), the segment must end with '/' in the prefix.
    /// </summary>
    private static string? FirstSegment(string prefix, bool requireComplete)
    {
        if (prefix.Length < 2 || prefix[0] != '/')
        {
            return null;
        }
        var end = prefix.IndexOf('/', 1);
        if (end < 0)
        {
            return requireComplete ? null : prefix[1..];
        }
        return end == 1 ? null : prefix[1..end];
    }

    /// <summary>
    /// Evaluates the request phase. Returns null when no rule matches (the common case allocates nothing). With
    /// <paramref name="explain"/>, every matching rule is listed, including those a higher rule shadows.
    /// </summary>
    public RuleDecision? Evaluate(in RequestFacts facts, bool explain = false)
    {
        if (_rules.Length == 0)
        {
            return null;
        }
        var candidates = t_candidates ??= new List<int>(16);
        candidates.Clear();
        var host = facts.Url.IdnHost.AsSpan();
        if (_byHost.Count > 0 && _byHostSpan.TryGetValue(host, out var hits))
        {
            candidates.AddRange(hits);
        }
        if (_byDomain.Count > 0)
        {
            var rest = host;
            while (true)
            {
                var dot = rest.IndexOf('.');
                if (dot < 0)
                {
                    break;
                }
                rest = rest[(dot + 1)..];
                if (_byDomainSpan.TryGetValue(rest, out hits))
                {
                    candidates.AddRange(hits);
                }
            }
        }
        if (_byFirstSegment.Count > 0)
        {
            var path = facts.Url.AbsolutePath.AsSpan();
            if (path.Length > 1)
            {
                var segment = path[1..];
                var slash = segment.IndexOf('/');
                if (slash >= 0)
                {
                    segment = segment[..slash];
                }
                if (_byFirstSegmentSpan.TryGetValue(segment, out hits))
                {
                    candidates.AddRange(hits);
                }
            }
        }
        candidates.AddRange(_scan);
        if (candidates.Count == 0)
        {
            return null;
        }
        candidates.Sort();

        RuleDecision? decision = null;
        foreach (var index in candidates)
        {
            var rule = _rules[index];
            bool matched;
            try
            {
                matched = rule.Match.MatchesRequest(facts);
            }
            catch (RegexMatchTimeoutException)
            {
                RulesTelemetry.RegexTimeouts.Add(1, new KeyValuePair<string, object?>("rule", rule.Id));
                decision ??= new RuleDecision();
                (decision.TimedOut ??= []).Add(rule);
                continue;
            }
            if (!matched)
            {
                continue;
            }
            decision ??= new RuleDecision();
            var applies = decision.Add(rule, facts);
            if (explain)
            {
                (decision.Explained ??= []).Add(new RuleDecision.Entry(rule, applies));
            }
            else if (decision.Drop is not null)
            {
                break; // dropped: nothing else matters
            }
        }
        return decision;
    }
}

/// <summary>What the request phase decided for one request.</summary>
internal sealed class RuleDecision
{
    public readonly record struct Entry(Rule Rule, bool Applies);

    public DropRule? Drop { get; private set; }
    public NoCacheRule? NoCache { get; private set; }
    public SortRule? Sort { get; private set; }
    public string? CacheLocation { get; private set; }
    public string? CacheKey { get; private set; }
    /// <summary>Why the sort rule's location was refused (e.g. a capture tried to escape the cache directory).</summary>
    public string? LocationRefused { get; private set; }
    public List<RewriteRule> Rewrites { get; } = [];
    public List<Rule>? TimedOut { get; set; }
    public List<Entry>? Explained { get; set; }

    public bool AnyApplied => Drop is not null || NoCache is not null || Sort is not null || Rewrites.Count > 0;

    /// <summary>Records a matching rule; returns whether it applies (false when an earlier rule of its policy wins).</summary>
    public bool Add(Rule rule, in RequestFacts facts)
    {
        switch (rule)
        {
            case DropRule drop:
                if (Drop is not null) return false;
                Drop = drop;
                return true;
            case NoCacheRule noCache:
                if (Drop is not null || NoCache is not null) return false;
                NoCache = noCache;
                return true;
            case SortRule sort:
                if (Drop is not null || Sort is not null) return false;
                Sort = sort;
                (CacheLocation, CacheKey, LocationRefused) = SortPlacement.Compute(sort, facts.Url);
                return true;
            case RewriteRule rewrite:
                if (Drop is not null) return false;
                Rewrites.Add(rewrite);
                return true;
            default:
                return false;
        }
    }
}
