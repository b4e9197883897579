using Gateway.Caching;

namespace Gateway.Adaptation;

/// <summary>
/// Tells the cache the ISTags of the RESPMOD services that would adapt a response now, so an entry adapted under
/// another ISTag (the service's configuration changed) is not served (ARCHITECTURE.md: "a changed ISTag makes the entry stale").
/// </summary>
internal sealed class IcapAdaptationTagSource(IcapServiceRegistry registry) : IAdaptationTagSource
{
    public IReadOnlyDictionary<string, string>? GetCurrentTags(HttpContext context) => registry.GetCurrentTags(context);
}
