using Gateway.Configuration;
using Microsoft.Extensions.Options;

namespace Gateway.Proxy;

internal static class ProxyServiceCollectionExtensions
{
    public static IServiceCollection AddGatewayProxy(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<ForwardProxyOptions>().BindConfiguration(ForwardProxyOptions.Section);
        services.AddOptions<GatewayProxyOptions>().BindConfiguration("Gateway");
        services.AddSingleton<IGatewayConfigValidator, ForwardProxyConfigValidator>();
        services.AddSingleton(sp => new ForwardProxySettings(sp.GetRequiredService<IOptions<ForwardProxyOptions>>().Value));
        services.AddSingleton<ViaHeader>();
        services.AddSingleton<ResponsePipeline>();
        services.AddSingleton<ForwardProxyTransformer>();
        services.AddSingleton<ConnectTunnelMiddleware>();
        services.AddHttpForwarder();
        services.AddGatewayReverseProxy(configuration);
        return services;
    }
}
