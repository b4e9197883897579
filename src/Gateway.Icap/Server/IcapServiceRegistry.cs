namespace Gateway.Icap.Server;

/// <summary>The registered services by name (case-insensitive), built once from DI.</summary>
public sealed class IcapServiceRegistry
{
    private readonly Dictionary<string, IcapService> _services;

    public IcapServiceRegistry(IEnumerable<IcapService> services)
    {
        _services = new Dictionary<string, IcapService>(StringComparer.OrdinalIgnoreCase);
        var duplicates = new List<string>();
        foreach (var service in services)
        {
            if (!_services.TryAdd(service.Name, service)) duplicates.Add(service.Name);
        }
        if (duplicates.Count > 0)
        {
            throw new InvalidOperationException($"ICAP services registered twice: {string.Join(", ", duplicates)}");
        }
    }

    public IReadOnlyCollection<IcapService> Services => _services.Values;

    public IcapService? Find(string name) => _services.GetValueOrDefault(name);
}
