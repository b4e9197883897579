using Gateway.Admin;
using Gateway.Configuration;
using Gateway.Proxy;

namespace Gateway.Adaptation;

internal static class AdaptationServiceCollectionExtensions
{
    /// <summary>Registers the adaptation capability (pipeline stages, admin handlers, readiness checks, validators).</summary>
    public static IServiceCollection AddGatewayAdaptation(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddSingleton<IGatewayConfigValidator, AdaptationConfigValidator>();
        services.AddSingleton(sp => new IcapServiceRegistry(
            AdaptationSettings.Read(sp.GetRequiredService<IConfiguration>()),
            sp.GetRequiredService<TimeProvider>(),
            sp.GetRequiredService<ILogger<IcapServiceRegistry>>()));
        services.AddSingleton<AdaptationCaller>();
        services.AddSingleton<IProxyPipelineStage, ReqmodStage>();
        services.AddSingleton<IResponseStage, RespmodStage>();
        services.AddSingleton<IReadinessCheck, IcapReadinessCheck>();
        services.AddSingleton<IAdminHandler, IcapAdminHandler>();
        // Registered before the cache's TryAdd default ("don't check"), so this one wins.
        services.AddSingleton<Gateway.Caching.IAdaptationTagSource, IcapAdaptationTagSource>();
        return services;
    }
}
