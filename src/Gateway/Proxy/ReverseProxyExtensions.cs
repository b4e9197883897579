using Gateway.Configuration;
using Yarp.ReverseProxy.Configuration;
using Yarp.ReverseProxy.Model;
using Yarp.ReverseProxy.Transforms;

namespace Gateway.Proxy;

/// <summary>YARP reverse proxy from the <c>ReverseProxy</c> section (hot reload as YARP does it).</summary>
internal static class ReverseProxyExtensions
{
    public static IServiceCollection AddGatewayReverseProxy(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddSingleton<IGatewayConfigValidator, ReverseProxyConfigValidator>();
        services.AddSingleton<IProxyConfigFilter, RejectHashCookieFilter>();
        services.AddReverseProxy()
            .LoadFromConfig(configuration.GetSection("ReverseProxy"))
            .AddTransforms(context =>
            {
                context.AddRequestTransform(transform =>
                {
                    var via = transform.HttpContext.RequestServices.GetRequiredService<ViaHeader>();
                    HeaderPolicy.PrepareRequest(transform.HttpContext, transform.ProxyRequest, via);
                    return ValueTask.CompletedTask;
                });
                context.AddResponseTransform(async transform =>
                {
                    var services = transform.HttpContext.RequestServices;
                    HeaderPolicy.PrepareResponse(transform.HttpContext, services.GetRequiredService<ViaHeader>());
                    if (await services.GetRequiredService<ResponsePipeline>().RunAsync(transform.HttpContext, transform.ProxyResponse, transform.HttpContext.RequestAborted))
                    {
                        transform.SuppressResponseBody = true;
                    }
                });
            });
        return services;
    }

    public static void MapGatewayReverseProxy(this WebApplication app)
    {
        var logger = app.Services.GetRequiredService<ILoggerFactory>().CreateLogger("Gateway.Proxy");
        app.MapReverseProxy(pipeline =>
        {
            pipeline.Use(async (context, next) =>
            {
                await next();
                var error = context.GetForwarderErrorFeature();
                if (error is not null)
                {
                    var proxy = context.GetReverseProxyFeature();
                    var destination = proxy.ProxiedDestination?.Model.Config.Address ?? proxy.Cluster.Config.ClusterId;
                    await ProxyErrors.ReportForwarderErrorAsync(context, error.Error, destination, logger);
                }
            });
            pipeline.UseSessionAffinity();
            pipeline.UseLoadBalancing();
            pipeline.UsePassiveHealthChecks();
        });
    }

    private const string HashCookieMessage =
        "session affinity policy 'HashCookie' is not available in this build (its hashing library is pruned); use 'Cookie', 'ArrCookie' or 'CustomHeader'";

    /// <summary>Start-up check of the parts of <c>ReverseProxy</c> YARP would accept but this build cannot run.</summary>
    private sealed class ReverseProxyConfigValidator : IGatewayConfigValidator
    {
        public void Validate(IConfiguration configuration, ICollection<ConfigError> errors)
        {
            foreach (var cluster in configuration.GetSection("ReverseProxy:Clusters").GetChildren())
            {
                var policy = cluster.GetSection("SessionAffinity:Policy");
                if (string.Equals(policy.Value, "HashCookie", StringComparison.OrdinalIgnoreCase))
                {
                    errors.Add(new ConfigError(policy.Path, HashCookieMessage));
                }
                foreach (var destination in cluster.GetSection("Destinations").GetChildren())
                {
                    var address = destination["Address"];
                    if (address is null || !Uri.TryCreate(address, UriKind.Absolute, out var uri) || (uri.Scheme != "http" && uri.Scheme != "https"))
                    {
                        errors.Add(new ConfigError(destination.Path + ":Address", $"'{address}' is not an absolute http:// or https:// URL"));
                    }
                }
            }
            var clusters = configuration.GetSection("ReverseProxy:Clusters").GetChildren().Select(c => c.Key).ToHashSet(StringComparer.OrdinalIgnoreCase);
            foreach (var route in configuration.GetSection("ReverseProxy:Routes").GetChildren())
            {
                var clusterId = route["ClusterId"];
                if (string.IsNullOrEmpty(clusterId) || !clusters.Contains(clusterId))
                {
                    errors.Add(new ConfigError(route.Path + ":ClusterId", $"'{clusterId}' does not name a cluster in ReverseProxy:Clusters"));
                }
                if (route.GetSection("Match").GetChildren().Any() == false)
                {
                    errors.Add(new ConfigError(route.Path + ":Match", "a route needs a Match (Path, Hosts, Methods or Headers)"));
                }
            }
        }
    }

    /// <summary>On hot reload, refuses a cluster with HashCookie: YARP then keeps the previous configuration and logs why.</summary>
    private sealed class RejectHashCookieFilter : IProxyConfigFilter
    {
        public ValueTask<ClusterConfig> ConfigureClusterAsync(ClusterConfig cluster, CancellationToken cancel)
        {
            if (string.Equals(cluster.SessionAffinity?.Policy, "HashCookie", StringComparison.OrdinalIgnoreCase))
            {
                throw new InvalidOperationException($"ReverseProxy:Clusters:{cluster.ClusterId}:SessionAffinity:Policy: {HashCookieMessage}");
            }
            return ValueTask.FromResult(cluster);
        }

        public ValueTask<RouteConfig> ConfigureRouteAsync(RouteConfig route, ClusterConfig? cluster, CancellationToken cancel) => ValueTask.FromResult(route);
    }
}
