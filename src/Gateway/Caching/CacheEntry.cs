using Microsoft.Extensions.Primitives;
using Microsoft.Net.Http.Headers;

namespace Gateway.Caching;

/// <summary>
/// One stored response in the in-memory index: everything a lookup and a freshness decision need, without the
/// headers or the body (those come from <see cref="HotEntry"/> in the memory cache, or from the file).
/// A committed entry never changes; an update (304, new response) replaces it with a new object.
/// </summary>
internal sealed class CacheEntry
{
    private static long s_ids;

    public long Id { get; } = Interlocked.Increment(ref s_ids);
    public required string Key { get; init; }
    public required string Url { get; init; }
    public required string VaryNamesText { get; init; }
    public required string[] VaryNames { get; init; }
    public required string VaryKey { get; init; }
    public required string Location { get; init; }
    public required string ArchivePeriod { get; init; }
    public required string AdaptationTags { get; init; }
    public required string FilePath { get; init; }
    public required int Status { get; init; }
    public required long BodyOffset { get; init; }
    public required long BodyLength { get; init; }
    public required long FileLength { get; init; }
    public required uint BodyCrc { get; init; }
    public required long RequestTime { get; init; }
    public required long ResponseTime { get; init; }
    public required long CorrectedInitialAgeMs { get; init; }
    public required long FreshnessMs { get; init; }
    public required bool Heuristic { get; init; }
    public required bool NoCache { get; init; }
    /// <summary>must-revalidate, proxy-revalidate or s-maxage: never served stale without revalidation.</summary>
    public required bool MustRevalidate { get; init; }
    public required int StaleWhileRevalidate { get; init; }
    public required int StaleIfError { get; init; }
    public string? ETag { get; init; }
    public string? LastModified { get; init; }

    /// <summary>Unix milliseconds of the last time this entry was served or stored (LRU).</summary>
    public long LastAccess;

    /// <summary>The body checksum was checked since this process loaded or wrote the file.</summary>
    public volatile bool BodyVerified;

    public long AgeMs(long nowMs) => CorrectedInitialAgeMs + Math.Max(0, nowMs - ResponseTime);

    /// <summary>Remaining freshness in milliseconds (negative: stale by that much).</summary>
    public long TtlMs(long nowMs) => FreshnessMs - AgeMs(nowMs);

    public static CacheEntry FromHead(EntryHead head, string path, CacheSettings settings)
    {
        string? cacheControl = null, date = null, expires = null, lastModified = null, etag = null, age = null;
        foreach (var h in head.Headers)
        {
            if (h.Key.Equals(HeaderNames.CacheControl, StringComparison.OrdinalIgnoreCase))
            {
                cacheControl = cacheControl is null ? h.Value : cacheControl + ", " + h.Value;
            }
            else if (h.Key.Equals(HeaderNames.Date, StringComparison.OrdinalIgnoreCase))
            {
                date = h.Value;
            }
            else if (h.Key.Equals(HeaderNames.Expires, StringComparison.OrdinalIgnoreCase))
            {
                expires = h.Value;
            }
            else if (h.Key.Equals(HeaderNames.LastModified, StringComparison.OrdinalIgnoreCase))
            {
                lastModified = h.Value;
            }
            else if (h.Key.Equals(HeaderNames.ETag, StringComparison.OrdinalIgnoreCase))
            {
                etag = h.Value;
            }
            else if (h.Key.Equals(HeaderNames.Age, StringComparison.OrdinalIgnoreCase))
            {
                age = h.Value;
            }
        }
        var meta = head.Meta;
        var cc = CacheControl.Parse(cacheControl);
        var freshness = CachePolicy.FreshnessLifetimeMs(cc, date, expires, lastModified, meta.Status, meta.ResponseTime,
            settings.HeuristicFraction, settings.HeuristicMax, out var heuristic);
        return new CacheEntry
        {
            Key = meta.Key,
            Url = meta.Url,
            VaryNamesText = meta.VaryNames,
            VaryNames = meta.VaryNames.Length == 0 ? [] : meta.VaryNames.Split(','),
            VaryKey = meta.VaryKey,
            Location = meta.Location,
            ArchivePeriod = meta.ArchivePeriod,
            AdaptationTags = meta.AdaptationTags,
            FilePath = path,
            Status = meta.Status,
            BodyOffset = head.BodyOffset,
            BodyLength = head.BodyLength,
            FileLength = head.FileLength,
            BodyCrc = head.BodyCrc,
            RequestTime = meta.RequestTime,
            ResponseTime = meta.ResponseTime,
            CorrectedInitialAgeMs = CachePolicy.CorrectedInitialAgeMs(date, age, meta.RequestTime, meta.ResponseTime),
            FreshnessMs = freshness,
            Heuristic = heuristic,
            NoCache = cc.NoCache,
            MustRevalidate = cc.MustRevalidate || cc.ProxyRevalidate || cc.SMaxAge >= 0,
            StaleWhileRevalidate = cc.StaleWhileRevalidate,
            StaleIfError = cc.StaleIfError,
            ETag = etag,
            LastModified = lastModified,
            LastAccess = meta.ResponseTime,
        };
    }
}

/// <summary>The hot part of an entry, held in the memory cache: headers ready to copy, and the body when small.</summary>
internal sealed class HotEntry
{
    public HotEntry(KeyValuePair<string, StringValues>[] headers, byte[]? body)
    {
        Headers = headers;
        Body = body;
    }

    public KeyValuePair<string, StringValues>[] Headers { get; }
    public byte[]? Body { get; }

    public static KeyValuePair<string, StringValues>[] Group(List<KeyValuePair<string, string>> headers)
    {
        var order = new List<string>();
        var map = new Dictionary<string, List<string>>(StringComparer.OrdinalIgnoreCase);
        foreach (var h in headers)
        {
            if (!map.TryGetValue(h.Key, out var list))
            {
                map[h.Key] = list = new List<string>(1);
                order.Add(h.Key);
            }
            list.Add(h.Value);
        }
        var result = new KeyValuePair<string, StringValues>[order.Count];
        for (var i = 0; i < order.Count; i++)
        {
            var values = map[order[i]];
            result[i] = new(order[i], values.Count == 1 ? new StringValues(values[0]) : new StringValues(values.ToArray()));
        }
        return result;
    }
}
