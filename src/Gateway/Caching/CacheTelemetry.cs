using System.Diagnostics.Metrics;
using Gateway.Observability;

namespace Gateway.Caching;

/// <summary>
/// Cache instruments on the gateway's Meter (<c>gateway.cache.*</c>), and the same figures as process-wide totals
/// for <c>/cache/stats</c>.
/// </summary>
internal sealed class CacheStats
{
    private static readonly Counter<long> s_lookups = GatewayTelemetry.Meter.CreateCounter<long>("gateway.cache.lookups", unit: "{request}",
        description: "Cache lookups by result (hit, miss, revalidated, stale, bypass, offline_miss, only_if_cached_miss)");
    private static readonly Counter<long> s_collapsed = GatewayTelemetry.Meter.CreateCounter<long>("gateway.cache.collapsed", unit: "{request}",
        description: "Requests that waited for another in-flight fetch of the same key");
    private static readonly Counter<long> s_revalidations = GatewayTelemetry.Meter.CreateCounter<long>("gateway.cache.revalidations", unit: "{request}",
        description: "Conditional requests sent to origins to revalidate stale entries");
    private static readonly Counter<long> s_evictions = GatewayTelemetry.Meter.CreateCounter<long>("gateway.cache.evictions", unit: "{entry}",
        description: "Entries evicted to stay under MaxSize");
    private static readonly Counter<long> s_storeErrors = GatewayTelemetry.Meter.CreateCounter<long>("gateway.cache.store_errors", unit: "{error}",
        description: "Failed writes or reads of the cache directory (the response was still served)");
    private static readonly Counter<long> s_stored = GatewayTelemetry.Meter.CreateCounter<long>("gateway.cache.stored", unit: "{entry}",
        description: "Entries committed to disk");
    private static readonly Counter<long> s_bytesWritten = GatewayTelemetry.Meter.CreateCounter<long>("gateway.cache.bytes_written", unit: "By",
        description: "Bytes written to the cache directory");
    private static readonly Counter<long> s_bytesServed = GatewayTelemetry.Meter.CreateCounter<long>("gateway.cache.bytes_served", unit: "By",
        description: "Body bytes served from the cache");
    private static readonly Counter<long> s_corrupt = GatewayTelemetry.Meter.CreateCounter<long>("gateway.cache.corrupt", unit: "{entry}",
        description: "Entry files found corrupt, truncated or of an unknown version (removed)");

    public long Hits, Misses, Revalidations, Revalidated, StaleServed, Bypassed, Collapsed, Evictions, StoreErrors, Stored, BytesWritten, BytesServed, Corrupt;

    // One pair of gauges per process, reading the most recently started store (there is one per gateway).
    private static Func<long>? s_entriesSource;
    private static Func<long>? s_bytesSource;
    private static readonly ObservableGauge<long> s_entries = GatewayTelemetry.Meter.CreateObservableGauge("gateway.cache.entries",
        () => s_entriesSource?.Invoke() ?? 0, unit: "{entry}", description: "Entries in the cache index");
    private static readonly ObservableGauge<long> s_size = GatewayTelemetry.Meter.CreateObservableGauge("gateway.cache.size",
        () => s_bytesSource?.Invoke() ?? 0, unit: "By", description: "Bytes of the entry files in the cache index");

    public CacheStats(Func<long>? entries = null, Func<long>? bytes = null)
    {
        if (entries is not null && bytes is not null)
        {
            s_entriesSource = entries;
            s_bytesSource = bytes;
        }
    }

    private static readonly KeyValuePair<string, object?> s_hit = new("result", "hit");
    private static readonly KeyValuePair<string, object?> s_miss = new("result", "miss");
    private static readonly KeyValuePair<string, object?> s_revalidated = new("result", "revalidated");
    private static readonly KeyValuePair<string, object?> s_stale = new("result", "stale");
    private static readonly KeyValuePair<string, object?> s_bypass = new("result", "bypass");

    public void Hit() { Interlocked.Increment(ref Hits); s_lookups.Add(1, s_hit); }
    public void Miss() { Interlocked.Increment(ref Misses); s_lookups.Add(1, s_miss); }
    public void Revalidation() { Interlocked.Increment(ref Revalidations); s_revalidations.Add(1); }
    public void RevalidatedHit() { Interlocked.Increment(ref Revalidated); s_lookups.Add(1, s_revalidated); }
    public void Stale() { Interlocked.Increment(ref StaleServed); s_lookups.Add(1, s_stale); }
    public void Bypass() { Interlocked.Increment(ref Bypassed); s_lookups.Add(1, s_bypass); }
    public void Lookup(string result) => s_lookups.Add(1, new KeyValuePair<string, object?>("result", result));
    public void CollapsedWaiter() { Interlocked.Increment(ref Collapsed); s_collapsed.Add(1); }
    public void Evicted(int n) { Interlocked.Add(ref Evictions, n); s_evictions.Add(n); }
    public void StoreError(string kind) { Interlocked.Increment(ref StoreErrors); s_storeErrors.Add(1, new KeyValuePair<string, object?>("kind", kind)); }
    public void Committed(long bytes) { Interlocked.Increment(ref Stored); Interlocked.Add(ref BytesWritten, bytes); s_stored.Add(1); s_bytesWritten.Add(bytes); }
    public void Served(long bytes) { Interlocked.Add(ref BytesServed, bytes); s_bytesServed.Add(bytes); }
    public void CorruptFound() { Interlocked.Increment(ref Corrupt); s_corrupt.Add(1); }
}

internal static partial class CacheLog
{
    [LoggerMessage(EventId = 3000, Level = LogLevel.Information, Message = "Cache index loaded from {Directory}: {Entries} entries, {Bytes} bytes in {ElapsedMs} ms ({Removed} bad files removed)")]
    public static partial void Loaded(ILogger logger, string directory, int entries, long bytes, long elapsedMs, int removed);

    [LoggerMessage(EventId = 3001, Level = LogLevel.Warning, Message = "Cache entry file {File} is unusable and was removed: {Reason}")]
    public static partial void CorruptEntry(ILogger logger, string file, string reason);

    [LoggerMessage(EventId = 3002, Level = LogLevel.Warning, Message = "Cache store error ({Operation}) for {Url}: {Message}")]
    public static partial void StoreError(ILogger logger, string operation, string url, string message);

    [LoggerMessage(EventId = 3003, Level = LogLevel.Error, Message = "Cache directory {Directory} is not usable; responses pass through uncached: {Message}")]
    public static partial void DirectoryUnusable(ILogger logger, string directory, string message);

    [LoggerMessage(EventId = 3004, Level = LogLevel.Debug, Message = "Cache entry for {Url} not stored: {Reason}")]
    public static partial void NotStored(ILogger logger, string url, string reason);

    [LoggerMessage(EventId = 3005, Level = LogLevel.Debug, Message = "Cache evicted {Count} entries ({Bytes} bytes) to stay under {MaxSize} bytes")]
    public static partial void Evicted(ILogger logger, int count, long bytes, long maxSize);

    [LoggerMessage(EventId = 3006, Level = LogLevel.Information, Message = "Cache purged {Count} entries for {Target}")]
    public static partial void Purged(ILogger logger, int count, string target);

    [LoggerMessage(EventId = 3007, Level = LogLevel.Debug, Message = "Background revalidation of {Url} failed: {Message}")]
    public static partial void BackgroundRefreshFailed(ILogger logger, string url, string message);

    [LoggerMessage(EventId = 3008, Level = LogLevel.Debug, Message = "Refused cache location or archive path '{Path}' for {Url}")]
    public static partial void BadLocation(ILogger logger, string path, string url);

    [LoggerMessage(EventId = 3009, Level = LogLevel.Information, Message = "Removed {Count} leftover temporary files from {Directory}")]
    public static partial void TempFilesRemoved(ILogger logger, int count, string directory);
}
