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

    private readonly TimeProvider _time;

    internal IcapServiceRegistry(AdaptationSettings settings, TimeProvider time, ILogger<IcapServiceRegistry> logger)
    {
        Settings = settings;
        _time = time;
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

    /// <summary>
    /// The cache's seam (shape of <c>Gateway.Caching.IAdaptationTagSource.GetCurrentTags</c>): the current ISTags of the
    /// RESPMOD services that would adapt this request's response now (the route's chain or the default), by service
    /// name; null when no RESPMOD applies. Services whose ISTag is not known yet are left out. An expired OPTIONS is
    /// re-fetched in the background so a changed ISTag is noticed even when only cache hits are served.
    /// </summary>
    public IReadOnlyDictionary<string, string>? GetCurrentTags(HttpContext context)
    {
        var chain = ResolveChain(context, Icap.Protocol.IcapMethod.Respmod);
        if (chain.Count == 0) return null;
        var tags = new Dictionary<string, string>(chain.Count, StringComparer.OrdinalIgnoreCase);
        foreach (var name in chain)
        {
            if (Get(name) is not { } service) continue;
            var client = service.Client;
            if (client.ServiceOptions is { } o && _time.GetUtcNow() >= o.ExpiresAt && !client.Health.IsDown)
            {
                _ = RefreshQuietlyAsync(client);
            }
            if (client.IsTag is { } tag) tags[service.Name] = tag;
        }
        return tags;
    }

    private static async Task RefreshQuietlyAsync(IcapClient client)
    {
        try
        {
            await client.GetOptionsAsync(CancellationToken.None);
        }
        catch (IcapClientException)
        {
            // counted by the client; the next adaptation reports it
        }
    }

    /// <summary>The chain for this request: the route's <c>Adaptation.Reqmod</c>/<c>Adaptation.Respmod</c> metadata, else the default.</summary>
    public IReadOnlyList<string> ResolveChain(HttpContext context, Icap.Protocol.IcapMethod method)
    {
        var key = method == Icap.Protocol.IcapMethod.Reqmod ? AdaptationSettings.RouteReqmodKey : AdaptationSettings.RouteRespmodKey;
        var metadata = context.GetEndpoint()?.Metadata.GetMetadata<Yarp.ReverseProxy.Model.RouteModel>()?.Config.Metadata;
        if (metadata is not null && metadata.TryGetValue(key, out var value))
        {
            return AdaptationSettings.ParseNames(value ?? string.Empty);
        }
        return method == Icap.Protocol.IcapMethod.Reqmod ? Settings.Reqmod : Settings.Respmod;
    }

    public async ValueTask DisposeAsync()
    {
        AdaptationTelemetry.Unregister(this);
        foreach (var s in _services.Values) await s.Client.DisposeAsync();
    }
}
