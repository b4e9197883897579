using System.Text;
using Gateway.Admin;
using Gateway.Configuration;
using Gateway.Icap.Server;
using Gateway.Proxy;

namespace Gateway.Rules;

internal static class RulesServiceCollectionExtensions
{
    /// <summary>Registers the rules capability (pipeline stages, admin handlers, readiness checks, validators).</summary>
    public static IServiceCollection AddGatewayRules(this IServiceCollection services, IConfiguration configuration)
    {
        // Charsets beyond UTF-8/UTF-16/Latin-1/ASCII (windows-125x, ISO-8859-x, …) for body rewriting.
        Encoding.RegisterProvider(CodePagesEncodingProvider.Instance);
        services.AddSingleton<IGatewayConfigValidator, RulesConfigValidator>();
        services.AddSingleton<RuleStore>();
        services.AddSingleton<IConnectFilter, RulesConnectFilter>();
        services.AddSingleton<IProxyPipelineStage, RulesStage>();
        services.AddSingleton<IResponseStage, RewriteResponseStage>();
        services.AddSingleton<IAdminHandler, RulesAdminHandler>();
        // The same Drop and Rewrite rules as the ICAP service "rules" of the gateway's ICAP server (for Squid & co).
        services.AddIcapService<RulesIcapService>();
        return services;
    }
}
