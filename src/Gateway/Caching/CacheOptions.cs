using Gateway.Configuration;

namespace Gateway.Caching;

/// <summary><c>Gateway:Cache</c>: the disk-persisted HTTP cache (RFC 9111). Every key is documented in the README (Disk cache → Settings).</summary>
public sealed class CacheOptions
{
    public const string Section = "Gateway:Cache";

    /// <summary>Look up and store responses. Default true.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary>Cache directory, relative to the content root. Default <c>data/cache</c>.</summary>
    public string Path { get; set; } = "data/cache";

    /// <summary>Total size of the stored entries (files) before least-recently-used ones are evicted. Default 1GB.</summary>
    public string MaxSize { get; set; } = "1GB";

    /// <summary>Largest single entry stored (body plus headers). Default 100MB.</summary>
    public string MaxEntrySize { get; set; } = "100MB";

    /// <summary>Bodies up to this size are also kept in memory once read. Default 64KB.</summary>
    public string MemoryBodyLimit { get; set; } = "64KB";

    /// <summary>Memory budget for hot entries (headers and small bodies). Default 64MB.</summary>
    public string MaxMemorySize { get; set; } = "64MB";

    /// <summary>Serve only from the cache, stale entries included; misses get 504. Default false.</summary>
    public bool Offline { get; set; }

    /// <summary>Heuristic freshness: this fraction of the time since <c>Last-Modified</c>. Default 0.1.</summary>
    public double HeuristicFraction { get; set; } = 0.1;

    /// <summary>Upper bound of heuristic freshness. Default 1 day.</summary>
    public TimeSpan HeuristicMax { get; set; } = TimeSpan.FromDays(1);

    /// <summary>How long a request waits for another in-flight fetch of the same URL before going to the origin itself. Default 30 s.</summary>
    public TimeSpan CollapseTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Accept <c>PURGE</c> on the proxy listener from clients in <c>Gateway:ForwardProxy:AllowedClients</c>. Default true.</summary>
    public bool AllowPurge { get; set; } = true;

    /// <summary>Call fsync before the rename that commits an entry (survives power loss, costs latency). Default false:
    /// a killed process never leaves a partial entry either way.</summary>
    public bool Fsync { get; set; }

    internal static readonly string[] Keys =
    [
        nameof(Enabled), nameof(Path), nameof(MaxSize), nameof(MaxEntrySize), nameof(MemoryBodyLimit), nameof(MaxMemorySize),
        nameof(Offline), nameof(HeuristicFraction), nameof(HeuristicMax), nameof(CollapseTimeout), nameof(AllowPurge), nameof(Fsync),
    ];
}

/// <summary>The compiled, validated form of <see cref="CacheOptions"/>, with the directory resolved.</summary>
internal sealed class CacheSettings
{
    public CacheSettings(CacheOptions options, string contentRoot)
    {
        Options = options;
        Enabled = options.Enabled;
        Directory = System.IO.Path.GetFullPath(System.IO.Path.Combine(contentRoot, options.Path));
        MaxSize = Size(options.MaxSize, 1L << 30);
        MaxEntrySize = Size(options.MaxEntrySize, 100L << 20);
        MemoryBodyLimit = Size(options.MemoryBodyLimit, 64L << 10);
        MaxMemorySize = Size(options.MaxMemorySize, 64L << 20);
        Offline = options.Offline;
        HeuristicFraction = options.HeuristicFraction;
        HeuristicMax = options.HeuristicMax;
        CollapseTimeout = options.CollapseTimeout;
        AllowPurge = options.AllowPurge;
        Fsync = options.Fsync;
    }

    public CacheOptions Options { get; }
    public bool Enabled { get; }
    public string Directory { get; }
    public long MaxSize { get; }
    public long MaxEntrySize { get; }
    public long MemoryBodyLimit { get; }
    public long MaxMemorySize { get; }
    public bool Offline { get; }
    public double HeuristicFraction { get; }
    public TimeSpan HeuristicMax { get; }
    public TimeSpan CollapseTimeout { get; }
    public bool AllowPurge { get; }
    public bool Fsync { get; }

    private static long Size(string? text, long fallback) => ConfigChecks.TryParseSize(text, out var n) ? n : fallback;
}

internal sealed class CacheConfigValidator : IGatewayConfigValidator
{
    public void Validate(IConfiguration configuration, ICollection<ConfigError> errors)
    {
        var section = configuration.GetSection(CacheOptions.Section);
        ConfigChecks.UnknownKeys(section, errors, CacheOptions.Keys);
        ConfigChecks.Bool(section, nameof(CacheOptions.Enabled), errors);
        ConfigChecks.Bool(section, nameof(CacheOptions.Offline), errors);
        ConfigChecks.Bool(section, nameof(CacheOptions.AllowPurge), errors);
        ConfigChecks.Bool(section, nameof(CacheOptions.Fsync), errors);
        ConfigChecks.Size(section, nameof(CacheOptions.MaxSize), errors);
        ConfigChecks.Size(section, nameof(CacheOptions.MaxEntrySize), errors);
        ConfigChecks.Size(section, nameof(CacheOptions.MemoryBodyLimit), errors);
        ConfigChecks.Size(section, nameof(CacheOptions.MaxMemorySize), errors);
        ConfigChecks.PositiveTimeSpan(section, nameof(CacheOptions.HeuristicMax), errors);
        ConfigChecks.PositiveTimeSpan(section, nameof(CacheOptions.CollapseTimeout), errors);
        var path = section[nameof(CacheOptions.Path)];
        if (path is not null && (string.IsNullOrWhiteSpace(path) || path.IndexOfAny(System.IO.Path.GetInvalidPathChars()) >= 0))
        {
            errors.Add(new ConfigError(section.Path + ":Path", $"'{path}' is not a directory path"));
        }
        var fraction = section[nameof(CacheOptions.HeuristicFraction)];
        if (fraction is not null && (!double.TryParse(fraction, System.Globalization.NumberStyles.Float, System.Globalization.CultureInfo.InvariantCulture, out var f) || f < 0 || f > 1))
        {
            errors.Add(new ConfigError(section.Path + ":HeuristicFraction", $"'{fraction}' is not a number between 0 and 1"));
        }
        if (ConfigChecks.TryParseSize(section[nameof(CacheOptions.MaxSize)] ?? "1GB", out var max)
            && ConfigChecks.TryParseSize(section[nameof(CacheOptions.MaxEntrySize)] ?? "100MB", out var maxEntry)
            && maxEntry > max && section[nameof(CacheOptions.MaxEntrySize)] is not null)
        {
            errors.Add(new ConfigError(section.Path + ":MaxEntrySize", $"'{section[nameof(CacheOptions.MaxEntrySize)]}' is larger than MaxSize"));
        }
    }
}
