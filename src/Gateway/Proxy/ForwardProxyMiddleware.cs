using System.Diagnostics;
using System.Net;
using Microsoft.Extensions.Options;
using Yarp.ReverseProxy.Forwarder;

namespace Gateway.Proxy;

/// <summary>
/// Terminal step for forward-mode requests: sends them with <see cref="IHttpForwarder"/> to their own authority.
/// Reverse-mode requests continue to the YARP route endpoints; one that matched no route gets a plain 404.
/// </summary>
internal static class ForwardProxyMiddleware
{
    public static IApplicationBuilder UseForwardProxy(this IApplicationBuilder app)
    {
        var forwarder = app.ApplicationServices.GetRequiredService<IHttpForwarder>();
        var transformer = app.ApplicationServices.GetRequiredService<ForwardProxyTransformer>();
        var options = app.ApplicationServices.GetRequiredService<IOptions<ForwardProxyOptions>>().Value;
        var logger = app.ApplicationServices.GetRequiredService<ILoggerFactory>().CreateLogger("Gateway.Proxy");
        var invoker = new HttpMessageInvoker(new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
            UseCookies = false,
            ConnectTimeout = options.ConnectTimeout,
            PooledConnectionIdleTimeout = TimeSpan.FromSeconds(60),
            EnableMultipleHttp2Connections = true,
            ActivityHeadersPropagator = new ReverseProxyPropagator(DistributedContextPropagator.Current),
        });
        var requestConfig = new ForwarderRequestConfig { ActivityTimeout = options.Timeout };

        return app.Use(async (context, next) =>
        {
            var feature = context.Features.Get<GatewayRequestFeature>();
            if (feature is null || feature.Mode != ProxyMode.Forward)
            {
                if (context.GetEndpoint() is null)
                {
                    await ProxyErrors.WriteAsync(context, StatusCodes.Status404NotFound, "no_route",
                        "404 Not Found: no route matches this request");
                    return;
                }
                await next(context);
                return;
            }
            var prefix = feature.TargetUri.GetLeftPart(UriPartial.Authority);
            feature.Upstream = prefix;
            var error = await forwarder.SendAsync(context, prefix, invoker, requestConfig, transformer);
            if (error != ForwarderError.None)
            {
                await ProxyErrors.ReportForwarderErrorAsync(context, error, feature.TargetUri.Authority, logger);
            }
        });
    }
}
