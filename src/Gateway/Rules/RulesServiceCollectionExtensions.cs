namespace Gateway.Rules;

internal static class RulesServiceCollectionExtensions
{
    /// <summary>Registers the rules capability (pipeline stages, admin handlers, readiness checks, validators).</summary>
    public static IServiceCollection AddGatewayRules(this IServiceCollection services, IConfiguration configuration)
    {
        return services;
    }
}
