using Gateway.Icap.Client;

namespace Gateway.Adaptation;

/// <summary>One configured service at run time: its settings and its client (pool, OPTIONS cache, health).</summary>
public sealed class IcapServiceEntry
{
    internal IcapServiceEntry(IcapServiceConfig config, IcapClient client)
    {
        Config = config;
        Client = client;
    }

    public IcapServiceConfig Config { get; }

    public IcapClient Client { get; }

    public string Name => Config.Name;
}

/// <summary>
/// The configured ICAP services (built once at start-up from <c>Gateway:Icap:Services</c>) and the default chains.
/// <see cref="GetCurrentIsTag"/> is the seam the cache uses to tell whether an adapted entry is still valid.
/// </summary>
public sealed class IcapServiceRegistry : IAsyncDisposable
{
    private readonly Dictionary<string, IcapServiceEntry> _services;

    internal IcapServiceRegistry(AdaptationSettings settings, TimeProvider time, ILogger<IcapServiceRegistry> logger)
    {
        Settings = settings;
        _services = new Dictionary<string, IcapServiceEntry>(StringComparer.OrdinalIgnoreCase);
        foreach (var (name, config) in settings.Services)
        {
            var client = new IcapClient(name, settings.ToClientOptions(config), time);
            client.MarkedDown += (c, reason) =>
            {
                AdaptationLog.ServiceDown(logger, c.Name, reason, config.RevivalDelay.TotalSeconds);
                AdaptationTelemetry.StateChanges.Add(1, new KeyValuePair<string, object?>("icap.service", c.Name), new KeyValuePair<string, object?>("state", "down"));
            };
            client.Revived += c =>
            {
                AdaptationLog.ServiceRevived(logger, c.Name);
                AdaptationTelemetry.StateChanges.Add(1, new KeyValuePair<string, object?>("icap.service", c.Name), new KeyValuePair<string, object?>("state", "up"));
            };
            _services[name] = new IcapServiceEntry(config, client);
        }
        AdaptationTelemetry.Register(this);
    }

    public AdaptationSettings Settings { get; }

    public IReadOnlyCollection<IcapServiceEntry> Services => _services.Values;

    public IcapServiceEntry? Get(string name) => _services.GetValueOrDefault(name);

    /// <summary>The service's current ISTag (latest answer or OPTIONS), or null when unknown or not configured.</summary>
    public string? GetCurrentIsTag(string name) => Get(name)?.Client.IsTag;

    /// <summary>Current ISTags of the default RESPMOD chain, by service name (what a cache entry adapted now would record).</summary>
    public IReadOnlyDictionary<string, string?> GetRespmodIsTags()
        => Settings.Respmod.ToDictionary(n => n, GetCurrentIsTag, StringComparer.OrdinalIgnoreCase);

    public async ValueTask DisposeAsync()
    {
        AdaptationTelemetry.Unregister(this);
        foreach (var s in _services.Values) await s.Client.DisposeAsync();
    }
}
