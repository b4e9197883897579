using System.Globalization;
using Gateway.Configuration;
using Gateway.Icap.Client;

namespace Gateway.Adaptation;

/// <summary>What to do with a message when its ICAP service fails.</summary>
public enum IcapOnError
{
    /// <summary>The client gets an error: 500 for REQMOD, 502 for RESPMOD.</summary>
    Fail,

    /// <summary>The message goes on unadapted (counted and logged), when its body can still be replayed.</summary>
    Bypass,
}

/// <summary>One configured ICAP service (<c>Gateway:Icap:Services:&lt;name&gt;</c>).</summary>
public sealed record IcapServiceConfig
{
    public required string Name { get; init; }
    public required Uri Uri { get; init; }
    public IcapOnError OnError { get; init; } = IcapOnError.Fail;
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(5);
    public TimeSpan IoTimeout { get; init; } = TimeSpan.FromSeconds(30);
    public int? MaxConnections { get; init; }
    public int FailureLimit { get; init; } = 10;
    public TimeSpan FailureWindow { get; init; } = TimeSpan.FromSeconds(30);
    public TimeSpan RevivalDelay { get; init; } = TimeSpan.FromSeconds(30);
    public bool PreviewEnabled { get; init; } = true;
}

/// <summary>The adaptation configuration, read once at start-up (<c>Gateway:Icap:Services</c>, <c>Gateway:Adaptation</c>).</summary>
public sealed record AdaptationSettings
{
    public const string ServicesSection = "Gateway:Icap:Services";
    public const string AdaptationSection = "Gateway:Adaptation";

    /// <summary>Route metadata key that replaces the REQMOD chain for a route (comma-separated names; empty: none).</summary>
    public const string RouteReqmodKey = "Adaptation.Reqmod";

    /// <summary>Route metadata key that replaces the RESPMOD chain for a route (comma-separated names; empty: none).</summary>
    public const string RouteRespmodKey = "Adaptation.Respmod";

    internal static readonly string[] ServiceKeys =
        ["Uri", "OnError", "ConnectTimeout", "IoTimeout", "MaxConnections", "FailureLimit", "FailureWindow", "RevivalDelay", "PreviewEnabled"];

    internal static readonly string[] AdaptationKeys = ["Reqmod", "Respmod", "ReplayBufferSize"];

    public IReadOnlyDictionary<string, IcapServiceConfig> Services { get; init; } = new Dictionary<string, IcapServiceConfig>();
    public IReadOnlyList<string> Reqmod { get; init; } = [];
    public IReadOnlyList<string> Respmod { get; init; } = [];

    /// <summary>Bytes of a body buffered so it can be replayed (Allow: 204/206 outside previews). Default 64 KiB.</summary>
    public int ReplayBufferSize { get; init; } = 64 * 1024;

    public IcapClientOptions ToClientOptions(IcapServiceConfig s) => new()
    {
        Uri = s.Uri,
        ConnectTimeout = s.ConnectTimeout,
        IoTimeout = s.IoTimeout,
        MaxConnections = s.MaxConnections,
        FailureLimit = s.FailureLimit,
        FailureWindow = s.FailureWindow,
        RevivalDelay = s.RevivalDelay,
        PreviewEnabled = s.PreviewEnabled,
        ReplayBufferSize = ReplayBufferSize,
    };

    /// <summary>Reads the settings; values that do not parse are left at their defaults (the validator reports them).</summary>
    public static AdaptationSettings Read(IConfiguration configuration)
    {
        var services = new Dictionary<string, IcapServiceConfig>(StringComparer.OrdinalIgnoreCase);
        foreach (var section in configuration.GetSection(ServicesSection).GetChildren())
        {
            if (!TryParseIcapUri(section["Uri"], out var uri)) continue;
            var defaults = new IcapServiceConfig { Name = section.Key, Uri = uri };
            services[section.Key] = defaults with
            {
                OnError = Enum.TryParse<IcapOnError>(section["OnError"], true, out var onError) ? onError : defaults.OnError,
                ConnectTimeout = Duration(section["ConnectTimeout"]) ?? defaults.ConnectTimeout,
                IoTimeout = Duration(section["IoTimeout"]) ?? defaults.IoTimeout,
                MaxConnections = PositiveInt(section["MaxConnections"]),
                FailureLimit = PositiveInt(section["FailureLimit"]) ?? defaults.FailureLimit,
                FailureWindow = Duration(section["FailureWindow"]) ?? defaults.FailureWindow,
                RevivalDelay = Duration(section["RevivalDelay"]) ?? defaults.RevivalDelay,
                PreviewEnabled = bool.TryParse(section["PreviewEnabled"], out var preview) ? preview : defaults.PreviewEnabled,
            };
        }
        var adaptation = configuration.GetSection(AdaptationSection);
        var replay = ConfigChecks.TryParseSize(adaptation["ReplayBufferSize"], out var bytes) && bytes is >= 0 and <= 64L * 1024 * 1024 ? (int)bytes : 64 * 1024;
        return new AdaptationSettings
        {
            Services = services,
            Reqmod = ReadChain(adaptation.GetSection("Reqmod")),
            Respmod = ReadChain(adaptation.GetSection("Respmod")),
            ReplayBufferSize = replay,
        };
    }

    /// <summary>A chain: an array (<c>Reqmod:0</c>, <c>Reqmod:1</c>…) or one comma-separated string.</summary>
    internal static IReadOnlyList<string> ReadChain(IConfigurationSection section)
    {
        if (section.Value is { } single) return ParseNames(single);
        return section.GetChildren()
            .OrderBy(c => int.TryParse(c.Key, NumberStyles.None, CultureInfo.InvariantCulture, out var i) ? i : int.MaxValue)
            .SelectMany(c => ParseNames(c.Value ?? string.Empty))
            .ToArray();
    }

    internal static string[] ParseNames(string value) => value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    internal static bool TryParseIcapUri(string? value, out Uri uri)
    {
        uri = null!;
        if (string.IsNullOrWhiteSpace(value) || !Uri.TryCreate(value, UriKind.Absolute, out var parsed)) return false;
        if (!parsed.Scheme.Equals("icap", StringComparison.OrdinalIgnoreCase) || string.IsNullOrEmpty(parsed.Host)) return false;
        uri = parsed;
        return true;
    }

    internal static TimeSpan? Duration(string? value)
        => TimeSpan.TryParse(value, CultureInfo.InvariantCulture, out var t) && t > TimeSpan.Zero ? t : null;

    private static int? PositiveInt(string? value)
        => int.TryParse(value, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) && n > 0 ? n : null;
}

/// <summary>Start-up validation of <c>Gateway:Icap:Services</c> and <c>Gateway:Adaptation</c>: every error at once.</summary>
internal sealed class AdaptationConfigValidator : IGatewayConfigValidator
{
    public void Validate(IConfiguration configuration, ICollection<ConfigError> errors)
    {
        var services = configuration.GetSection(AdaptationSettings.ServicesSection);
        var names = new HashSet<string>(StringComparer.OrdinalIgnoreCase);
        foreach (var service in services.GetChildren())
        {
            names.Add(service.Key);
            ConfigChecks.UnknownKeys(service, errors, AdaptationSettings.ServiceKeys);
            var uri = service["Uri"];
            if (uri is null)
            {
                errors.Add(new ConfigError(service.Path + ":Uri", "missing: the ICAP service URI, e.g. icap://127.0.0.1:1344/echo"));
            }
            else if (!AdaptationSettings.TryParseIcapUri(uri, out _))
            {
                errors.Add(new ConfigError(service.Path + ":Uri", $"'{uri}' is not an icap:// URI with a host (e.g. icap://127.0.0.1:1344/echo)"));
            }
            ConfigChecks.Enum<IcapOnError>(service, "OnError", errors);
            ConfigChecks.PositiveTimeSpan(service, "ConnectTimeout", errors);
            ConfigChecks.PositiveTimeSpan(service, "IoTimeout", errors);
            ConfigChecks.PositiveTimeSpan(service, "FailureWindow", errors);
            ConfigChecks.PositiveTimeSpan(service, "RevivalDelay", errors);
            ConfigChecks.PositiveInt(service, "MaxConnections", errors, 10_000);
            ConfigChecks.PositiveInt(service, "FailureLimit", errors, 1_000_000);
            ConfigChecks.Bool(service, "PreviewEnabled", errors);
        }

        var adaptation = configuration.GetSection(AdaptationSettings.AdaptationSection);
        ConfigChecks.UnknownKeys(adaptation, errors, AdaptationSettings.AdaptationKeys);
        var replay = adaptation["ReplayBufferSize"];
        if (replay is not null && (!ConfigChecks.TryParseSize(replay, out var bytes) || bytes > 64L * 1024 * 1024))
        {
            errors.Add(new ConfigError(adaptation.Path + ":ReplayBufferSize", $"'{replay}' is not a size up to 64MB (e.g. 64KB, 1MB)"));
        }
        foreach (var chain in new[] { "Reqmod", "Respmod" })
        {
            var section = adaptation.GetSection(chain);
            foreach (var name in AdaptationSettings.ReadChain(section))
            {
                if (!names.Contains(name))
                {
                    errors.Add(new ConfigError(section.Path, $"'{name}' is not a service in {AdaptationSettings.ServicesSection}"));
                }
            }
        }

        foreach (var route in configuration.GetSection("ReverseProxy:Routes").GetChildren())
        {
            foreach (var key in new[] { AdaptationSettings.RouteReqmodKey, AdaptationSettings.RouteRespmodKey })
            {
                var value = route.GetSection("Metadata")[key];
                if (value is null) continue;
                foreach (var name in AdaptationSettings.ParseNames(value))
                {
                    if (!names.Contains(name))
                    {
                        errors.Add(new ConfigError(route.Path + ":Metadata:" + key, $"'{name}' is not a service in {AdaptationSettings.ServicesSection}"));
                    }
                }
            }
        }
    }
}
