namespace Gateway.Observability;

internal static class ObservabilityServiceCollectionExtensions
{
    public static IServiceCollection AddGatewayObservability(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddSingleton<GatewayTelemetryHost>();
        return services;
    }
}
