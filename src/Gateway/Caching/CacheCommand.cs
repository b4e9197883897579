using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;

namespace Gateway.Caching;

/// <summary>
/// <c>gateway cache &lt;list|show|purge|verify|prune|stats&gt; [options]</c>: maintenance of the cache directory named by
/// <c>Gateway:Cache:Path</c> in appsettings.json (current directory) and the environment, while the gateway is stopped.
/// Commands that change the directory refuse to run while a gateway holds it (use the admin listener then).
/// </summary>
internal static class CacheCommand
{
    private const string Usage = """
        usage: gateway cache <command> [options]
          list   [--url REGEX] [--prefix P] [--location L] [--min-size 1MB] [--max-size 10MB]
                 [--min-age 1h] [--max-age 7d] [--stale true|false] [--limit N] [--json]
          show   URL [--json]                 headers, freshness and file of the entries for URL
          purge  URL | --url REGEX | --prefix P | --location L ...   remove matching entries
          verify                              check every entry's checksums; remove bad ones
          prune  [--stale] [--older-than 7d] [--larger-than 10MB]   remove stale, old or big entries
          stats  [--json]                     entries, bytes, load time
        options: --path DIR overrides Gateway:Cache:Path; sizes as 10MB, durations as 30s, 15m, 2h, 7d or hh:mm:ss
        """;

    private static readonly JsonSerializerOptions s_json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

    public static Task<int> RunAsync(string[] args) => Task.FromResult(Run(args, Directory.GetCurrentDirectory(), Console.Out, Console.Error));

    internal static int Run(string[] args, string contentRoot, TextWriter stdout, TextWriter stderr)
    {
        if (args.Length < 2 || args[1] is "-h" or "--help" or "help")
        {
            stderr.WriteLine(Usage);
            return args.Length < 2 ? 2 : 0;
        }
        var verb = args[1].ToLowerInvariant();
        var options = new Dictionary<string, string?>(StringComparer.OrdinalIgnoreCase);
        var positional = new List<string>();
        for (var i = 2; i < args.Length; i++)
        {
            var a = args[i];
            if (a.StartsWith("--", StringComparison.Ordinal))
            {
                var name = a[2..];
                var eq = name.IndexOf('=');
                if (eq >= 0)
                {
                    options[name[..eq]] = name[(eq + 1)..];
                }
                else if (name is "json" or "stale" && (i + 1 >= args.Length || args[i + 1].StartsWith("--", StringComparison.Ordinal) || !bool.TryParse(args[i + 1], out _)))
                {
                    options[name] = "true";
                }
                else if (i + 1 < args.Length)
                {
                    options[name] = args[++i];
                }
                else
                {
                    stderr.WriteLine($"gateway cache: option --{name} needs a value");
                    return 2;
                }
            }
            else
            {
                positional.Add(a);
            }
        }

        var config = new ConfigurationBuilder()
            .AddJsonFile(Path.Combine(contentRoot, "appsettings.json"), optional: true)
            .AddEnvironmentVariables()
            .Build();
        var cacheOptions = config.GetSection(CacheOptions.Section).Get<CacheOptions>() ?? new CacheOptions();
        if (options.TryGetValue("path", out var pathOverride) && pathOverride is not null)
        {
            cacheOptions.Path = pathOverride;
        }
        var settings = new CacheSettings(cacheOptions, contentRoot);
        if (!Directory.Exists(settings.Directory))
        {
            stderr.WriteLine($"gateway cache: no cache directory at {settings.Directory}");
            return 1;
        }
        var json = options.ContainsKey("json");
        var mutating = verb is "purge" or "verify" or "prune";
        using var store = new CacheStore(settings, NullLogger.Instance, TimeProvider.System);
        store.Load(takeLock: mutating);
        if (store.Unusable is { } why)
        {
            stderr.WriteLine(mutating
                ? $"gateway cache: cannot lock {settings.Directory} (is the gateway running? use the admin listener's /cache endpoints): {why}"
                : $"gateway cache: cannot read {settings.Directory}: {why}");
            return 3;
        }
        var now = store.NowMs;
        string? Get(string camel)
        {
            var kebab = string.Concat(camel.Select(c => char.IsUpper(c) ? "-" + char.ToLowerInvariant(c) : c.ToString()));
            return options.TryGetValue(kebab, out var v) ? v : options.TryGetValue(camel, out v) ? v : null;
        }

        switch (verb)
        {
            case "stats":
            {
                var stats = new
                {
                    directory = settings.Directory,
                    entries = store.Count,
                    bytes = store.TotalBytes,
                    maxSize = settings.MaxSize,
                    stale = store.All().Count(e => e.TtlMs(now) <= 0),
                    corrupt = store.Stats.Corrupt,
                    loadTimeMs = (long)store.LoadTime.TotalMilliseconds,
                };
                if (json)
                {
                    stdout.WriteLine(JsonSerializer.Serialize(stats, s_json));
                }
                else
                {
                    stdout.WriteLine($"directory  {stats.directory}");
                    stdout.WriteLine($"entries    {stats.entries} ({stats.stale} stale)");
                    stdout.WriteLine($"bytes      {stats.bytes} of {stats.maxSize}");
                    stdout.WriteLine($"corrupt    {stats.corrupt}");
                    stdout.WriteLine($"load time  {stats.loadTimeMs} ms");
                }
                return 0;
            }
            case "list":
            {
                var errors = new List<string>();
                var filter = EntryFilter.Parse(Get, errors);
                if (filter is null)
                {
                    errors.ForEach(e => stderr.WriteLine("gateway cache: " + e));
                    return 2;
                }
                var found = CacheMaintenance.Find(store, filter);
                if (json)
                {
                    stdout.WriteLine(JsonSerializer.Serialize(new { count = found.Count, entries = found.Take(filter.Limit).Select(e => CacheMaintenance.Summary(e, now)) }, s_json));
                }
                else
                {
                    stdout.WriteLine($"{"STATUS",-6} {"SIZE",10} {"AGE",8} {"TTL",8} {"LOCATION",-12} URL");
                    foreach (var e in found.Take(filter.Limit))
                    {
                        stdout.WriteLine($"{e.Status,-6} {e.FileLength,10} {e.AgeMs(now) / 1000,8} {e.TtlMs(now) / 1000,8} {(e.Location.Length == 0 ? "-" : e.Location),-12} {e.Url}");
                    }
                    stdout.WriteLine($"{found.Count} entries");
                }
                return 0;
            }
            case "show":
            {
                if (positional.Count != 1)
                {
                    stderr.WriteLine("gateway cache show: give one URL");
                    return 2;
                }
                var found = CacheMaintenance.Find(store, new EntryFilter { ExactUrl = positional[0] });
                if (found.Count == 0)
                {
                    stderr.WriteLine($"gateway cache: nothing cached for {positional[0]}");
                    return 1;
                }
                stdout.WriteLine(JsonSerializer.Serialize(found.Select(e => CacheMaintenance.Detail(store, e, now)), s_json));
                return 0;
            }
            case "purge":
            {
                var errors = new List<string>();
                var filter = positional.Count == 1 ? new EntryFilter { ExactUrl = positional[0] } : EntryFilter.Parse(Get, errors);
                if (filter is null || filter.IsEmpty)
                {
                    errors.ForEach(e => stderr.WriteLine("gateway cache: " + e));
                    stderr.WriteLine("gateway cache purge: give a URL or a filter (--url REGEX, --prefix P, --location L, ...)");
                    return 2;
                }
                var removed = CacheMaintenance.Find(store, filter).Count(store.Remove);
                stdout.WriteLine($"purged {removed} entries");
                return removed > 0 ? 0 : 1;
            }
            case "verify":
            {
                var (checkedCount, removed) = store.Verify();
                foreach (var url in removed)
                {
                    stdout.WriteLine($"removed corrupt entry: {url}");
                }
                stdout.WriteLine($"checked {checkedCount} entries, removed {removed.Count} (plus {store.Stats.Corrupt - removed.Count} unreadable files at load)");
                return 0;
            }
            case "prune":
            {
                var stale = options.TryGetValue("stale", out var s) && (s is null || !bool.TryParse(s, out var b) || b);
                TimeSpan? olderThan = null;
                long? largerThan = null;
                if (Get("olderThan") is { } o)
                {
                    if (!EntryFilter.TryParseDuration(o, out var t))
                    {
                        stderr.WriteLine($"gateway cache: --older-than: '{o}' is not a duration");
                        return 2;
                    }
                    olderThan = t;
                }
                if (Get("largerThan") is { } l)
                {
                    if (!Configuration.ConfigChecks.TryParseSize(l, out var n))
                    {
                        stderr.WriteLine($"gateway cache: --larger-than: '{l}' is not a size");
                        return 2;
                    }
                    largerThan = n;
                }
                if (!stale && olderThan is null && largerThan is null)
                {
                    stderr.WriteLine("gateway cache prune: give --stale, --older-than or --larger-than");
                    return 2;
                }
                var removed = store.Prune(stale, olderThan, largerThan);
                stdout.WriteLine($"pruned {removed.Count} entries ({removed.Sum(e => e.FileLength).ToString(CultureInfo.InvariantCulture)} bytes)");
                return 0;
            }
            default:
                stderr.WriteLine($"gateway cache: unknown command '{verb}'");
                stderr.WriteLine(Usage);
                return 2;
        }
    }
}
