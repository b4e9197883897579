using System.Globalization;
using Microsoft.Extensions.Primitives;

namespace Gateway.Caching;

/// <summary>
/// The <c>Cache-Control</c> directives the cache acts on (RFC 9111 section 5.2), parsed from all field lines.
/// Delta-seconds are <c>-1</c> when absent; <c>max-stale</c> without a value is <see cref="int.MaxValue"/>.
/// Unknown directives are ignored, as the RFC requires.
/// </summary>
internal struct CacheControl
{
    public int MaxAge;
    public int SMaxAge;
    public int MaxStale;
    public int MinFresh;
    public int StaleWhileRevalidate;
    public int StaleIfError;
    public bool NoCache;
    public bool NoStore;
    public bool Private;
    public bool Public;
    public bool MustRevalidate;
    public bool ProxyRevalidate;
    public bool OnlyIfCached;
    public bool NoTransform;

    /// <summary>Field names of qualified <c>no-cache="..."</c> / <c>private="..."</c>: the response may be stored without them.</summary>
    public List<string>? StripFields;

    public static CacheControl Parse(StringValues values)
    {
        var cc = new CacheControl { MaxAge = -1, SMaxAge = -1, MaxStale = -1, MinFresh = -1, StaleWhileRevalidate = -1, StaleIfError = -1 };
        foreach (var value in values)
        {
            if (!string.IsNullOrEmpty(value))
            {
                ParseOne(value, ref cc);
            }
        }
        return cc;
    }

    private static void ParseOne(string header, ref CacheControl cc)
    {
        var s = header.AsSpan();
        var i = 0;
        while (i < s.Length)
        {
            // skip separators
            while (i < s.Length && (s[i] == ',' || s[i] == ' ' || s[i] == '\t'))
            {
                i++;
            }
            var nameStart = i;
            while (i < s.Length && s[i] != '=' && s[i] != ',')
            {
                i++;
            }
            var name = s[nameStart..i].Trim();
            ReadOnlySpan<char> arg = default;
            var hasArg = false;
            if (i < s.Length && s[i] == '=')
            {
                i++;
                hasArg = true;
                if (i < s.Length && s[i] == '"')
                {
                    i++;
                    var argStart = i;
                    while (i < s.Length && s[i] != '"')
                    {
                        i++;
                    }
                    arg = s[argStart..i];
                    if (i < s.Length)
                    {
                        i++;
                    }
                    while (i < s.Length && s[i] != ',')
                    {
                        i++;
                    }
                }
                else
                {
                    var argStart = i;
                    while (i < s.Length && s[i] != ',')
                    {
                        i++;
                    }
                    arg = s[argStart..i].Trim();
                }
            }
            if (name.IsEmpty)
            {
                continue;
            }
            Apply(name, hasArg, arg, ref cc);
        }
    }

    private static void Apply(ReadOnlySpan<char> name, bool hasArg, ReadOnlySpan<char> arg, ref CacheControl cc)
    {
        if (name.Equals("max-age", StringComparison.OrdinalIgnoreCase))
        {
            cc.MaxAge = Min(cc.MaxAge, Delta(arg));
        }
        else if (name.Equals("s-maxage", StringComparison.OrdinalIgnoreCase))
        {
            cc.SMaxAge = Min(cc.SMaxAge, Delta(arg));
        }
        else if (name.Equals("no-cache", StringComparison.OrdinalIgnoreCase))
        {
            if (hasArg && !arg.IsEmpty)
            {
                AddFields(arg, ref cc);
            }
            else
            {
                cc.NoCache = true;
            }
        }
        else if (name.Equals("no-store", StringComparison.OrdinalIgnoreCase))
        {
            cc.NoStore = true;
        }
        else if (name.Equals("private", StringComparison.OrdinalIgnoreCase))
        {
            if (hasArg && !arg.IsEmpty)
            {
                AddFields(arg, ref cc);
            }
            else
            {
                cc.Private = true;
            }
        }
        else if (name.Equals("public", StringComparison.OrdinalIgnoreCase))
        {
            cc.Public = true;
        }
        else if (name.Equals("must-revalidate", StringComparison.OrdinalIgnoreCase))
        {
            cc.MustRevalidate = true;
        }
        else if (name.Equals("proxy-revalidate", StringComparison.OrdinalIgnoreCase))
        {
            cc.ProxyRevalidate = true;
        }
        else if (name.Equals("max-stale", StringComparison.OrdinalIgnoreCase))
        {
            cc.MaxStale = hasArg ? Delta(arg) : int.MaxValue;
        }
        else if (name.Equals("min-fresh", StringComparison.OrdinalIgnoreCase))
        {
            cc.MinFresh = Delta(arg);
        }
        else if (name.Equals("only-if-cached", StringComparison.OrdinalIgnoreCase))
        {
            cc.OnlyIfCached = true;
        }
        else if (name.Equals("stale-while-revalidate", StringComparison.OrdinalIgnoreCase))
        {
            cc.StaleWhileRevalidate = Delta(arg);
        }
        else if (name.Equals("stale-if-error", StringComparison.OrdinalIgnoreCase))
        {
            cc.StaleIfError = Delta(arg);
        }
        else if (name.Equals("no-transform", StringComparison.OrdinalIgnoreCase))
        {
            cc.NoTransform = true;
        }
    }

    private static void AddFields(ReadOnlySpan<char> arg, ref CacheControl cc)
    {
        foreach (var range in arg.Split(','))
        {
            var field = arg[range].Trim();
            if (!field.IsEmpty)
            {
                (cc.StripFields ??= new List<string>()).Add(field.ToString());
            }
        }
    }

    /// <summary>RFC 9111 1.2.2: a delta-seconds that cannot be parsed is treated as invalid (0, i.e. stale);
    /// one larger than 2^31 is 2^31.</summary>
    private static int Delta(ReadOnlySpan<char> arg)
    {
        if (arg.IsEmpty)
        {
            return 0;
        }
        foreach (var c in arg)
        {
            if (c < '0' || c > '9')
            {
                return 0;
            }
        }
        return long.TryParse(arg, NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? (int)Math.Min(n, int.MaxValue) : int.MaxValue;
    }

    /// <summary>When a directive repeats, the most conservative (smallest) value wins.</summary>
    private static int Min(int current, int next) => current < 0 ? next : Math.Min(current, next);
}
