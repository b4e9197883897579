using System.Globalization;
using System.Text.RegularExpressions;
using Gateway.Admin;
using Gateway.Configuration;

namespace Gateway.Caching;

/// <summary>Which entries a maintenance operation concerns. Every set criterion must hold.</summary>
internal sealed class EntryFilter
{
    public Regex? Url { get; init; }
    public string? Prefix { get; init; }
    public string? ExactUrl { get; init; }
    public string? Location { get; init; }
    public long? MinSize { get; init; }
    public long? MaxSize { get; init; }
    public TimeSpan? MinAge { get; init; }
    public TimeSpan? MaxAge { get; init; }
    public bool? Stale { get; init; }
    public int Limit { get; init; } = 1000;

    public bool IsEmpty => Url is null && Prefix is null && ExactUrl is null && Location is null && MinSize is null && MaxSize is null
        && MinAge is null && MaxAge is null && Stale is null;

    public bool Matches(CacheEntry e, long now)
    {
        if (ExactUrl is not null && e.Url != ExactUrl && e.Key != ExactUrl)
        {
            return false;
        }
        if (Prefix is not null && !e.Url.StartsWith(Prefix, StringComparison.Ordinal) && !e.Key.StartsWith(Prefix, StringComparison.Ordinal))
        {
            return false;
        }
        if (Location is not null && !string.Equals(e.Location, Location.Trim('/'), StringComparison.Ordinal))
        {
            return false;
        }
        if (MinSize is { } min && e.FileLength < min)
        {
            return false;
        }
        if (MaxSize is { } max && e.FileLength > max)
        {
            return false;
        }
        var age = e.AgeMs(now);
        if (MinAge is { } minAge && age < minAge.TotalMilliseconds)
        {
            return false;
        }
        if (MaxAge is { } maxAge && age > maxAge.TotalMilliseconds)
        {
            return false;
        }
        if (Stale is { } stale && (e.TtlMs(now) <= 0) != stale)
        {
            return false;
        }
        if (Url is not null && !Url.IsMatch(e.Url) && !Url.IsMatch(e.Key))
        {
            return false;
        }
        return true;
    }

    /// <summary>Builds a filter from named values (query string or command options); errors name the parameter.</summary>
    public static EntryFilter? Parse(Func<string, string?> get, List<string> errors)
    {
        Regex? regex = null;
        if (get("url") is { Length: > 0 } pattern)
        {
            try
            {
                regex = new Regex(pattern, RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));
            }
            catch (ArgumentException ex)
            {
                errors.Add($"url: not a regular expression: {ex.Message}");
            }
        }
        long? Size(string name)
        {
            var v = get(name);
            if (v is null)
            {
                return null;
            }
            if (ConfigChecks.TryParseSize(v, out var n))
            {
                return n;
            }
            errors.Add($"{name}: '{v}' is not a size (e.g. 10MB)");
            return null;
        }
        TimeSpan? Duration(string name)
        {
            var v = get(name);
            if (v is null)
            {
                return null;
            }
            if (TryParseDuration(v, out var t))
            {
                return t;
            }
            errors.Add($"{name}: '{v}' is not a duration (seconds, or 30s, 15m, 2h, 7d, or hh:mm:ss)");
            return null;
        }
        bool? stale = null;
        if (get("stale") is { } staleText)
        {
            if (bool.TryParse(staleText, out var b))
            {
                stale = b;
            }
            else
            {
                errors.Add($"stale: '{staleText}' is not true or false");
            }
        }
        var limit = 1000;
        if (get("limit") is { } limitText && (!int.TryParse(limitText, NumberStyles.None, CultureInfo.InvariantCulture, out limit) || limit <= 0))
        {
            errors.Add($"limit: '{limitText}' is not a positive integer");
        }
        var filter = new EntryFilter
        {
            Url = regex,
            Prefix = get("prefix"),
            ExactUrl = get("exact"),
            Location = get("location"),
            MinSize = Size("minSize"),
            MaxSize = Size("maxSize"),
            MinAge = Duration("minAge"),
            MaxAge = Duration("maxAge"),
            Stale = stale,
            Limit = limit,
        };
        return errors.Count == 0 ? filter : null;
    }

    public static bool TryParseDuration(string text, out TimeSpan value)
    {
        text = text.Trim();
        value = default;
        if (text.Length == 0)
        {
            return false;
        }
        var unit = char.ToLowerInvariant(text[^1]);
        var multiplier = unit switch { 's' => 1, 'm' => 60, 'h' => 3600, 'd' => 86400, _ => 0 };
        var number = multiplier == 0 ? text : text[..^1];
        if (double.TryParse(number, NumberStyles.Float, CultureInfo.InvariantCulture, out var n) && n >= 0)
        {
            value = TimeSpan.FromSeconds(n * (multiplier == 0 ? 1 : multiplier));
            return true;
        }
        return TimeSpan.TryParse(text, CultureInfo.InvariantCulture, out value) && value >= TimeSpan.Zero;
    }
}

/// <summary>The maintenance operations, shared by the admin listener and the <c>cache</c> command.</summary>
internal static class CacheMaintenance
{
    public static object Summary(CacheEntry e, long now) => new
    {
        url = e.Url,
        key = e.Key == e.Url ? null : e.Key,
        location = e.Location,
        status = e.Status,
        size = e.FileLength,
        bodyLength = e.BodyLength,
        ageSeconds = e.AgeMs(now) / 1000,
        ttlSeconds = e.TtlMs(now) / 1000,
        fresh = e.TtlMs(now) > 0,
        vary = e.VaryNamesText.Length == 0 ? null : e.VaryKey.TrimEnd('\n').Replace("\u0001", "(absent)").Split('\n'),
        storedAt = DateTimeOffset.FromUnixTimeMilliseconds(e.ResponseTime).ToString("o", CultureInfo.InvariantCulture),
        lastAccess = DateTimeOffset.FromUnixTimeMilliseconds(e.LastAccess).ToString("o", CultureInfo.InvariantCulture),
    };

    public static object Detail(CacheStore store, CacheEntry e, long now)
    {
        var head = store.ReadHead(e);
        return new
        {
            summary = Summary(e, now),
            file = e.FilePath,
            freshness = new
            {
                lifetimeSeconds = e.FreshnessMs / 1000,
                heuristic = e.Heuristic,
                noCache = e.NoCache,
                mustRevalidate = e.MustRevalidate,
                staleWhileRevalidate = e.StaleWhileRevalidate < 0 ? (int?)null : e.StaleWhileRevalidate,
                staleIfError = e.StaleIfError < 0 ? (int?)null : e.StaleIfError,
                etag = e.ETag,
                lastModified = e.LastModified,
            },
            adaptationTags = e.AdaptationTags.Length == 0 ? null : e.AdaptationTags,
            archivePeriod = e.ArchivePeriod.Length == 0 ? null : e.ArchivePeriod,
            headers = head?.Headers.Select(h => h.Key + ": " + h.Value).ToArray(),
        };
    }

    public static object Stats(CacheStore store)
    {
        var s = store.Stats;
        var lookups = s.Hits + s.Misses + s.Revalidated + s.StaleServed;
        return new
        {
            directory = store.Settings.Directory,
            entries = store.Count,
            bytes = store.TotalBytes,
            maxSize = store.Settings.MaxSize,
            offline = store.Settings.Offline,
            hits = s.Hits,
            misses = s.Misses,
            revalidations = s.Revalidations,
            revalidated = s.Revalidated,
            staleServed = s.StaleServed,
            bypassed = s.Bypassed,
            collapsed = s.Collapsed,
            evictions = s.Evictions,
            storeErrors = s.StoreErrors,
            stored = s.Stored,
            corrupt = s.Corrupt,
            bytesWritten = s.BytesWritten,
            bytesServed = s.BytesServed,
            hitRatio = lookups == 0 ? 0 : Math.Round((double)(s.Hits + s.Revalidated + s.StaleServed) / lookups, 4),
            loadTimeMs = (long)store.LoadTime.TotalMilliseconds,
            unusable = store.Unusable,
        };
    }

    public static List<CacheEntry> Find(CacheStore store, EntryFilter filter)
    {
        var now = store.NowMs;
        var list = new List<CacheEntry>();
        foreach (var e in store.All())
        {
            if (filter.Matches(e, now))
            {
                list.Add(e);
            }
        }
        list.Sort(static (a, b) => string.CompareOrdinal(a.Url, b.Url));
        return list;
    }
}

/// <summary>
/// Admin endpoints under <c>/cache</c>: <c>GET /cache/stats</c>, <c>GET|DELETE /cache/entries?url=regex&amp;prefix=&amp;location=&amp;minSize=&amp;maxSize=&amp;minAge=&amp;maxAge=&amp;stale=</c>,
/// <c>GET|DELETE /cache/entry?url=</c>, <c>POST /cache/verify</c>, <c>POST /cache/prune?stale=true&amp;olderThan=&amp;largerThan=</c>,
/// <c>GET /cache/archive?url=[&amp;period=]</c>.
/// </summary>
internal sealed class CacheAdminHandler(CacheStore store) : IAdminHandler
{
    public string Prefix => "/cache";

    public async Task HandleAsync(HttpContext context)
    {
        if (!store.Settings.Enabled)
        {
            await AdminDispatcher.WriteJsonAsync(context, new { errors = new[] { "the cache is disabled (Gateway:Cache:Enabled=false)" } }, StatusCodes.Status404NotFound);
            return;
        }
        await store.EnsureLoadedAsync();
        var path = context.Request.Path.Value!.TrimEnd('/');
        var method = context.Request.Method;
        var query = context.Request.Query;
        string? Get(string name) => query.TryGetValue(name, out var v) && v.Count > 0 ? v[0] : null;
        var now = store.NowMs;
        switch (path.ToLowerInvariant())
        {
            case "/cache" or "/cache/stats" when HttpMethods.IsGet(method):
                await AdminDispatcher.WriteJsonAsync(context, CacheMaintenance.Stats(store));
                return;
            case "/cache/entries":
            {
                var errors = new List<string>();
                var filter = EntryFilter.Parse(Get, errors);
                if (filter is null)
                {
                    await AdminDispatcher.WriteJsonAsync(context, new { errors }, StatusCodes.Status400BadRequest);
                    return;
                }
                if (HttpMethods.IsGet(method))
                {
                    var found = CacheMaintenance.Find(store, filter);
                    await AdminDispatcher.WriteJsonAsync(context, new { count = found.Count, entries = found.Take(filter.Limit).Select(e => CacheMaintenance.Summary(e, now)) });
                    return;
                }
                if (HttpMethods.IsDelete(method))
                {
                    if (filter.IsEmpty)
                    {
                        await AdminDispatcher.WriteJsonAsync(context, new { errors = new[] { "give at least one filter (url, prefix, location, ...) to purge" } }, StatusCodes.Status400BadRequest);
                        return;
                    }
                    var removed = CacheMaintenance.Find(store, filter).Count(store.Remove);
                    await AdminDispatcher.WriteJsonAsync(context, new { purged = removed });
                    return;
                }
                break;
            }
            case "/cache/entry":
            {
                var url = Get("url");
                if (url is null)
                {
                    await AdminDispatcher.WriteJsonAsync(context, new { errors = new[] { "url: required" } }, StatusCodes.Status400BadRequest);
                    return;
                }
                var entries = CacheMaintenance.Find(store, new EntryFilter { ExactUrl = url });
                if (HttpMethods.IsGet(method))
                {
                    await AdminDispatcher.WriteJsonAsync(context, new { count = entries.Count, entries = entries.Select(e => CacheMaintenance.Detail(store, e, now)) },
                        entries.Count == 0 ? StatusCodes.Status404NotFound : StatusCodes.Status200OK);
                    return;
                }
                if (HttpMethods.IsDelete(method))
                {
                    var removed = entries.Count(store.Remove);
                    await AdminDispatcher.WriteJsonAsync(context, new { purged = removed }, removed == 0 ? StatusCodes.Status404NotFound : StatusCodes.Status200OK);
                    return;
                }
                break;
            }
            case "/cache/verify" when HttpMethods.IsPost(method) || HttpMethods.IsGet(method):
            {
                var (checkedCount, removed) = store.Verify();
                await AdminDispatcher.WriteJsonAsync(context, new { @checked = checkedCount, removed = removed.Count, removedUrls = removed });
                return;
            }
            case "/cache/prune" when HttpMethods.IsPost(method):
            {
                var errors = new List<string>();
                var stale = Get("stale") is { } s ? bool.TryParse(s, out var b) ? b : Fail(errors, $"stale: '{s}' is not true or false") : false;
                TimeSpan? olderThan = Get("olderThan") is { } o ? EntryFilter.TryParseDuration(o, out var t) ? t : FailT(errors, $"olderThan: '{o}' is not a duration") : null;
                long? largerThan = Get("largerThan") is { } l ? ConfigChecks.TryParseSize(l, out var n) ? n : FailL(errors, $"largerThan: '{l}' is not a size") : null;
                if (errors.Count == 0 && !stale && olderThan is null && largerThan is null)
                {
                    errors.Add("give stale=true, olderThan or largerThan");
                }
                if (errors.Count > 0)
                {
                    await AdminDispatcher.WriteJsonAsync(context, new { errors }, StatusCodes.Status400BadRequest);
                    return;
                }
                var removed = store.Prune(stale, olderThan, largerThan);
                await AdminDispatcher.WriteJsonAsync(context, new { pruned = removed.Count, bytes = removed.Sum(e => e.FileLength) });
                return;
            }
            case "/cache/archive" when HttpMethods.IsGet(method):
            {
                var url = Get("url");
                if (url is null)
                {
                    await AdminDispatcher.WriteJsonAsync(context, new { errors = new[] { "url: required" } }, StatusCodes.Status400BadRequest);
                    return;
                }
                var copies = store.ArchivedCopies(url);
                var period = Get("period");
                if (period is null)
                {
                    await AdminDispatcher.WriteJsonAsync(context, new
                    {
                        count = copies.Count,
                        copies = copies.Select(c => new { period = c.Period, file = c.File, status = c.Head.Meta.Status, bodyLength = c.Head.BodyLength, storedAt = DateTimeOffset.FromUnixTimeMilliseconds(c.Head.Meta.ResponseTime).ToString("o", CultureInfo.InvariantCulture) }),
                    }, copies.Count == 0 ? StatusCodes.Status404NotFound : StatusCodes.Status200OK);
                    return;
                }
                var copy = copies.FirstOrDefault(c => c.Period == period);
                if (copy.File is null)
                {
                    await AdminDispatcher.WriteJsonAsync(context, new { errors = new[] { $"no archived copy of {url} for period {period}" } }, StatusCodes.Status404NotFound);
                    return;
                }
                using var handle = File.OpenHandle(copy.File, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
                if (!CacheEntryFormat.VerifyBody(handle, copy.Head))
                {
                    await AdminDispatcher.WriteJsonAsync(context, new { errors = new[] { "archived copy is corrupt" } }, StatusCodes.Status500InternalServerError);
                    return;
                }
                foreach (var h in copy.Head.Headers)
                {
                    if (h.Key.Equals("Content-Type", StringComparison.OrdinalIgnoreCase) || h.Key.Equals("ETag", StringComparison.OrdinalIgnoreCase)
                        || h.Key.Equals("Last-Modified", StringComparison.OrdinalIgnoreCase) || h.Key.Equals("Content-Encoding", StringComparison.OrdinalIgnoreCase))
                    {
                        context.Response.Headers.Append(h.Key, h.Value);
                    }
                }
                context.Response.Headers["X-Archive-Period"] = copy.Period;
                context.Response.ContentLength = copy.Head.BodyLength;
                await using var stream = new FileStream(handle, FileAccess.Read);
                stream.Seek(copy.Head.BodyOffset, SeekOrigin.Begin);
                await StreamCopy(stream, context.Response.Body, copy.Head.BodyLength, context.RequestAborted);
                return;
            }
        }
        await AdminDispatcher.WriteJsonAsync(context, new { errors = new[] { $"{method} {path}: not a cache endpoint (see docs: /cache/stats, /cache/entries, /cache/entry, /cache/verify, /cache/prune, /cache/archive)" } },
            StatusCodes.Status404NotFound);
    }

    private static bool Fail(List<string> errors, string e) { errors.Add(e); return false; }
    private static TimeSpan? FailT(List<string> errors, string e) { errors.Add(e); return null; }
    private static long? FailL(List<string> errors, string e) { errors.Add(e); return null; }

    private static async Task StreamCopy(Stream source, Stream destination, long length, CancellationToken cancellationToken)
    {
        var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(64 * 1024);
        try
        {
            while (length > 0)
            {
                var n = await source.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, length)), cancellationToken);
                if (n <= 0)
                {
                    break;
                }
                await destination.WriteAsync(buffer.AsMemory(0, n), cancellationToken);
                length -= n;
            }
        }
        finally
        {
            System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
        }
    }
}
