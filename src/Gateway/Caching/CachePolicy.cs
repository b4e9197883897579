using System.Globalization;
using System.Text;
using Microsoft.Extensions.Primitives;
using Microsoft.Net.Http.Headers;

namespace Gateway.Caching;

/// <summary>RFC 9111 rules as pure functions: what may be stored, freshness lifetime, age, Vary keys.</summary>
internal static class CachePolicy
{
    /// <summary>Status codes a shared cache may store without explicit freshness (RFC 9110 15.1, minus 206, which we never store).</summary>
    public static bool IsHeuristicallyCacheable(int status) => status is 200 or 203 or 204 or 300 or 301 or 308 or 404 or 405 or 410 or 414 or 501;

    /// <summary>Status codes we store at all (complete responses; 206 and 304 never).</summary>
    public static bool IsStorableStatus(int status) => status is 200 or 203 or 204 or 300 or 301 or 302 or 303 or 307 or 308 or 404 or 405 or 410 or 414 or 501;

    /// <summary>Hop-by-hop and per-connection fields never stored.</summary>
    private static readonly HashSet<string> s_notStored = new(StringComparer.OrdinalIgnoreCase)
    {
        "Connection", "Keep-Alive", "Proxy-Connection", "Transfer-Encoding", "TE", "Trailer", "Upgrade", "Proxy-Authenticate",
        "Proxy-Authentication-Info", "Set-Cookie", "Set-Cookie2", "Cache-Status", "Content-Length",
    };

    /// <summary>Fields a 304 must not overwrite in the stored response (RFC 9111 3.2 / 4.3.4).</summary>
    private static readonly HashSet<string> s_notUpdatedBy304 = new(StringComparer.OrdinalIgnoreCase)
    {
        "Content-Length", "Content-Encoding", "Content-Range", "Content-Type", "Transfer-Encoding", "Connection", "Keep-Alive",
        "Cache-Status", "Set-Cookie", "Set-Cookie2", "Proxy-Connection", "Trailer", "TE", "Upgrade",
    };

    /// <summary>
    /// Why a response to a GET may not be stored, or null when it may (RFC 9111 section 3). Authorization:
    /// only with public, s-maxage or must-revalidate. Set-Cookie: never stored (the field is dropped) and the
    /// response itself only with public or s-maxage, as nginx and Varnish do.
    /// </summary>
    public static string? WhyNotStorable(HttpRequest request, HttpResponse response, in CacheControl requestCc, in CacheControl responseCc)
    {
        if (!IsStorableStatus(response.StatusCode))
        {
            return "status";
        }
        if (requestCc.NoStore)
        {
            return "request no-store";
        }
        if (responseCc.NoStore)
        {
            return "no-store";
        }
        if (responseCc.Private)
        {
            return "private";
        }
        var headers = response.Headers;
        if (request.Headers.ContainsKey(HeaderNames.Authorization) && !(responseCc.Public || responseCc.SMaxAge >= 0 || responseCc.MustRevalidate))
        {
            return "authorization";
        }
        if (headers.ContainsKey(HeaderNames.SetCookie) && !(responseCc.Public || responseCc.SMaxAge >= 0))
        {
            return "set-cookie";
        }
        if (headers.ContainsKey(HeaderNames.ContentRange))
        {
            return "partial";
        }
        foreach (var v in headers.Vary)
        {
            if (v is not null && v.Contains('*'))
            {
                return "vary *";
            }
        }
        var explicitFreshness = responseCc.Public || responseCc.MaxAge >= 0 || responseCc.SMaxAge >= 0 || headers.ContainsKey(HeaderNames.Expires);
        if (!explicitFreshness && !IsHeuristicallyCacheable(response.StatusCode))
        {
            return "no explicit freshness";
        }
        if (!explicitFreshness && !headers.ContainsKey(HeaderNames.LastModified) && !headers.ContainsKey(HeaderNames.ETag)
            && responseCc.StaleWhileRevalidate < 0)
        {
            return "no freshness or validator";
        }
        return null;
    }

    /// <summary>The response's fields as stored: hop-by-hop, Set-Cookie and qualified no-cache/private fields removed.</summary>
    public static List<KeyValuePair<string, string>> StoredHeaders(IHeaderDictionary headers, in CacheControl responseCc)
    {
        var list = new List<KeyValuePair<string, string>>(headers.Count);
        foreach (var h in headers)
        {
            if (s_notStored.Contains(h.Key) || (responseCc.StripFields is { } strip && strip.Contains(h.Key, StringComparer.OrdinalIgnoreCase)))
            {
                continue;
            }
            foreach (var v in h.Value)
            {
                if (v is not null)
                {
                    list.Add(new(h.Key, v));
                }
            }
        }
        return list;
    }

    /// <summary>RFC 9111 4.3.4: the stored headers updated with those of a 304 (each named field replaced whole).</summary>
    public static List<KeyValuePair<string, string>> MergeNotModified(List<KeyValuePair<string, string>> stored, IHeaderDictionary notModified)
    {
        var replaced = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var h in notModified)
        {
            if (!s_notUpdatedBy304.Contains(h.Key) && !s_notStored.Contains(h.Key))
            {
                replaced.Add(h.Key);
            }
        }
        var merged = new List<KeyValuePair<string, string>>(stored.Count + replaced.Count);
        foreach (var h in stored)
        {
            if (!replaced.Contains(h.Key))
            {
                merged.Add(h);
            }
        }
        foreach (var name in replaced)
        {
            foreach (var v in notModified[name])
            {
                if (v is not null)
                {
                    merged.Add(new(name, v));
                }
            }
        }
        return merged;
    }

    /// <summary>Lower-case, comma-separated field names of <c>Vary</c> ("" when none).</summary>
    public static string VaryNames(StringValues vary)
    {
        if (vary.Count == 0)
        {
            return "";
        }
        var names = new List<string>();
        foreach (var v in vary)
        {
            if (v is null)
            {
                continue;
            }
            foreach (var range in v.AsSpan().Split(','))
            {
                var name = v.AsSpan()[range].Trim();
                if (!name.IsEmpty)
                {
                    names.Add(name.ToString().ToLowerInvariant());
                }
            }
        }
        names.Sort(StringComparer.Ordinal);
        return string.Join(',', names.Distinct());
    }

    /// <summary>The secondary key: the request's values of the Vary fields, normalized (whitespace around commas trimmed).</summary>
    public static string VaryKey(string[] varyNames, IHeaderDictionary requestHeaders)
    {
        if (varyNames.Length == 0)
        {
            return "";
        }
        var sb = new StringBuilder();
        foreach (var name in varyNames)
        {
            sb.Append(name).Append(':');
            if (requestHeaders.TryGetValue(name, out var values))
            {
                var first = true;
                foreach (var v in values)
                {
                    if (v is null)
                    {
                        continue;
                    }
                    foreach (var range in v.AsSpan().Split(','))
                    {
                        if (!first)
                        {
                            sb.Append(',');
                        }
                        sb.Append(v.AsSpan()[range].Trim());
                        first = false;
                    }
                }
            }
            else
            {
                sb.Append('\u0001');
            }
            sb.Append('\n');
        }
        return sb.ToString();
    }

    public static bool TryParseDate(string? value, out DateTimeOffset date)
        => DateTimeOffset.TryParseExact(value, "r", CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal, out date)
           || HeaderUtilities.TryParseDate(value, out date);

    /// <summary>Freshness lifetime (RFC 9111 4.2.1) in milliseconds; <paramref name="heuristic"/> when computed from Last-Modified.</summary>
    public static long FreshnessLifetimeMs(in CacheControl cc, string? date, string? expires, string? lastModified, int status, long responseTimeMs,
        double heuristicFraction, TimeSpan heuristicMax, out bool heuristic)
    {
        heuristic = false;
        if (cc.SMaxAge >= 0)
        {
            return cc.SMaxAge * 1000L;
        }
        if (cc.MaxAge >= 0)
        {
            return cc.MaxAge * 1000L;
        }
        var dateMs = TryParseDate(date, out var d) ? d.ToUnixTimeMilliseconds() : responseTimeMs;
        if (expires is not null)
        {
            return TryParseDate(expires, out var e) ? Math.Max(0, e.ToUnixTimeMilliseconds() - dateMs) : 0;
        }
        if ((IsHeuristicallyCacheable(status) || cc.Public) && TryParseDate(lastModified, out var lm))
        {
            heuristic = true;
            var since = dateMs - lm.ToUnixTimeMilliseconds();
            return since <= 0 ? 0 : Math.Min((long)(since * heuristicFraction), (long)heuristicMax.TotalMilliseconds);
        }
        return 0;
    }

    /// <summary>corrected_initial_age (RFC 9111 4.2.3) in milliseconds.</summary>
    public static long CorrectedInitialAgeMs(string? date, string? age, long requestTimeMs, long responseTimeMs)
    {
        var apparent = TryParseDate(date, out var d) ? Math.Max(0, responseTimeMs - d.ToUnixTimeMilliseconds()) : 0;
        var ageValue = age is not null && long.TryParse(age.Split(',')[0].Trim(), NumberStyles.None, CultureInfo.InvariantCulture, out var a) ? a * 1000 : 0;
        var correctedAge = ageValue + Math.Max(0, responseTimeMs - requestTimeMs);
        return Math.Max(apparent, correctedAge);
    }

    /// <summary>Weak comparison of entity tags (RFC 9110 8.8.3.2) against a list such as an If-None-Match value.</summary>
    public static bool WeakMatchAny(StringValues list, string? etag)
    {
        if (etag is null)
        {
            return false;
        }
        var opaque = etag.StartsWith("W/", StringComparison.Ordinal) ? etag.AsSpan(2) : etag.AsSpan();
        foreach (var v in list)
        {
            if (v is null)
            {
                continue;
            }
            foreach (var range in v.AsSpan().Split(','))
            {
                var candidate = v.AsSpan()[range].Trim();
                if (candidate.SequenceEqual("*"))
                {
                    return true;
                }
                if (candidate.StartsWith("W/"))
                {
                    candidate = candidate[2..];
                }
                if (candidate.SequenceEqual(opaque))
                {
                    return true;
                }
            }
        }
        return false;
    }
}
