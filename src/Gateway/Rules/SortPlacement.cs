using System.Text;
using System.Text.RegularExpressions;

namespace Gateway.Rules;

/// <summary>
/// Sort rules: the logical location of a cache entry and its key. A location is a relative path below the cache
/// directory made of safe segments; anything that could escape it (<c>..</c>, absolute paths, drive letters,
/// backslashes, encoded dots) is refused, at validation for the template and at run time for what captures produce.
/// </summary>
internal static class SortPlacement
{
    public const int MaxLocationLength = 1024;

    /// <summary>
    /// Why <paramref name="location"/> is not a safe relative location, or null when it is: segments of ASCII letters,
    /// digits, <c>-</c>, <c>_</c> and <c>.</c> separated by <c>/</c>, none of them <c>.</c> or <c>..</c> (the character set
    /// the disk cache accepts for locations).
    /// </summary>
    public static string? CheckLocation(string location)
    {
        if (location.Length == 0)
        {
            return "is empty";
        }
        if (location.Length > MaxLocationLength)
        {
            return $"is longer than {MaxLocationLength} characters";
        }
        if (location[0] == '/' || location[0] == '\\' || (location.Length >= 2 && location[1] == ':'))
        {
            return $"'{Truncate(location)}' is absolute: a location is relative to the cache directory";
        }
        foreach (var c in location)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' or '/'))
            {
                return $"'{Truncate(location)}' contains '{(char.IsControl(c) ? "\\u" + ((int)c).ToString("x4") : c.ToString())}': a location is made of segments of letters, digits, '-', '_' and '.' separated by '/'";
            }
        }
        foreach (var range in location.AsSpan().Split('/'))
        {
            var segment = location.AsSpan()[range];
            if (segment.IsEmpty)
            {
                return $"'{Truncate(location)}' has an empty segment ('//' or a trailing '/')";
            }
            if (segment is "." or "..")
            {
                return $"'{Truncate(location)}' escapes the cache directory ('.' or '..' segment)";
            }
        }
        return null;
    }

    private static string Truncate(string s) => s.Length <= 80 ? s : s[..80] + "…";

    /// <summary>Computes location and key for a request URL; a refused location is reported, not used.</summary>
    internal static (string? Location, string? Key, string? Refused) Compute(SortRule rule, Uri url)
    {
        Match? match = null;
        if (rule.Match.Url is not null && ((rule.Location?.Contains('$') ?? false) || (rule.Key?.Template?.Contains('$') ?? false)))
        {
            match = rule.Match.Url.Match(url.AbsoluteUri);
        }
        string? location = null;
        string? refused = null;
        if (rule.Location is not null)
        {
            location = match is { Success: true } ? match.Result(rule.Location) : rule.Location;
            if (CheckLocation(location) is { } why)
            {
                refused = why;
                location = null;
            }
        }
        string? key = null;
        if (rule.Key is { } options)
        {
            key = options.Template is not null
                ? (match is { Success: true } ? match.Result(options.Template) : options.Template)
                : NormalizedKey(url, options);
        }
        return (location, key, refused);
    }

    /// <summary>The URL as a cache key, with the query filtered and ordered as configured.</summary>
    internal static string NormalizedKey(Uri url, CacheKeyOptions options)
    {
        var sb = new StringBuilder(url.GetLeftPart(UriPartial.Path));
        if (options.IgnoreQuery || url.Query.Length <= 1)
        {
            return sb.ToString();
        }
        var pairs = new List<string>();
        foreach (var range in url.Query.AsSpan(1).Split('&'))
        {
            var pair = url.Query.AsSpan(1)[range];
            if (pair.IsEmpty)
            {
                continue;
            }
            var eq = pair.IndexOf('=');
            var name = Uri.UnescapeDataString((eq < 0 ? pair : pair[..eq]).ToString());
            if (Array.Exists(options.DropQuery, g => g.IsMatch(name)))
            {
                continue;
            }
            pairs.Add(pair.ToString());
        }
        if (options.SortQuery)
        {
            pairs.Sort(StringComparer.Ordinal);
        }
        if (pairs.Count > 0)
        {
            sb.Append('?').AppendJoin('&', pairs);
        }
        return sb.ToString();
    }
}
