namespace Gateway.Rules;

/// <summary>
/// A glob over hosts, paths or media types: <c>*</c> matches any run of characters (including <c>/</c> and <c>.</c>),
/// <c>?</c> exactly one; everything else is literal. Matching is case-insensitive for hosts and media types and
/// case-sensitive for paths. Also describes how a rule can be indexed (exact value, <c>*.suffix</c>, literal prefix).
/// </summary>
internal sealed class Glob
{
    private readonly StringComparison _comparison;

    private Glob(string pattern, bool ignoreCase)
    {
        Pattern = pattern;
        _comparison = ignoreCase ? StringComparison.OrdinalIgnoreCase : StringComparison.Ordinal;
        var firstWildcard = pattern.AsSpan().IndexOfAny('*', '?');
        IsLiteral = firstWildcard < 0;
        LiteralPrefix = firstWildcard < 0 ? pattern : pattern[..firstWildcard];
        if (pattern.StartsWith("*.", StringComparison.Ordinal) && pattern.AsSpan(2).IndexOfAny('*', '?') < 0 && pattern.Length > 2)
        {
            DomainSuffix = pattern[2..];
        }
    }

    public string Pattern { get; }

    /// <summary>True when the pattern has no wildcard (an exact comparison).</summary>
    public bool IsLiteral { get; }

    /// <summary>The literal text before the first wildcard.</summary>
    public string LiteralPrefix { get; }

    /// <summary>For <c>*.example.com</c>: <c>example.com</c> (matches every host below it, not the domain itself).</summary>
    public string? DomainSuffix { get; }

    public static Glob Host(string pattern) => new(pattern.ToLowerInvariant(), ignoreCase: true);

    public static Glob PathGlob(string pattern) => new(pattern, ignoreCase: false);

    public static Glob MediaType(string pattern) => new(pattern.ToLowerInvariant(), ignoreCase: true);

    /// <summary>Why a host glob is not valid, or null.</summary>
    public static string? CheckHost(string pattern)
    {
        if (pattern.Length == 0)
        {
            return "is empty";
        }
        foreach (var c in pattern)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '-' or '.' or '*' or '?' or '_' or ':' or '[' or ']'))
            {
                return $"'{pattern}' is not a host glob (letters, digits, '-', '.', '_', and the wildcards '*' and '?')";
            }
        }
        if (pattern.Contains("..", StringComparison.Ordinal))
        {
            return $"'{pattern}' has an empty label ('..')";
        }
        return null;
    }

    /// <summary>Why a path glob is not valid, or null.</summary>
    public static string? CheckPath(string pattern)
    {
        if (pattern.Length == 0)
        {
            return "is empty";
        }
        if (pattern[0] != '/' && pattern[0] != '*')
        {
            return $"'{pattern}' must start with '/' or '*'";
        }
        foreach (var c in pattern)
        {
            if (c <= ' ' || c == 0x7f || c == '#')
            {
                return $"'{pattern}' contains a space, control character or '#'";
            }
        }
        return null;
    }

    /// <summary>Why a media-type glob is not valid, or null.</summary>
    public static string? CheckMediaType(string pattern)
    {
        var slash = pattern.IndexOf('/');
        if (slash <= 0 || slash == pattern.Length - 1 || pattern.IndexOf('/', slash + 1) >= 0)
        {
            return $"'{pattern}' is not a media type glob such as text/html or text/*";
        }
        foreach (var c in pattern)
        {
            if (c <= ' ' || c is ';' or ',' or '"')
            {
                return $"'{pattern}' is not a media type glob (no parameters, spaces or lists)";
            }
        }
        return null;
    }

    public bool IsMatch(ReadOnlySpan<char> text)
    {
        if (IsLiteral)
        {
            return text.Equals(Pattern, _comparison);
        }
        return WildcardMatch(Pattern, text, _comparison == StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>Iterative wildcard match with single-star backtracking: O(n·m) worst case, no allocation, no recursion.</summary>
    private static bool WildcardMatch(ReadOnlySpan<char> pattern, ReadOnlySpan<char> text, bool ignoreCase)
    {
        int p = 0, t = 0, star = -1, mark = 0;
        while (t < text.Length)
        {
            if (p < pattern.Length && (pattern[p] == '?' || Same(pattern[p], text[t], ignoreCase)))
            {
                p++;
                t++;
            }
            else if (p < pattern.Length && pattern[p] == '*')
            {
                star = p++;
                mark = t;
            }
            else if (star >= 0)
            {
                p = star + 1;
                t = ++mark;
            }
            else
            {
                return false;
            }
        }
        while (p < pattern.Length && pattern[p] == '*')
        {
            p++;
        }
        return p == pattern.Length;
    }

    private static bool Same(char a, char b, bool ignoreCase)
        => a == b || (ignoreCase && char.ToLowerInvariant(a) == char.ToLowerInvariant(b));

    public override string ToString() => Pattern;
}
