using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Options;
using Microsoft.Extensions.Primitives;

namespace Gateway.Proxy;

/// <summary>
/// First step of the proxy pipeline: classifies the request (reverse or forward), enforces who may use the forward
/// proxy, detects loops through our own <c>Via</c>, and attaches the <see cref="GatewayRequestFeature"/>.
/// </summary>
internal static class ProxyGate
{
    public static IApplicationBuilder UseGatewayProxyGate(this IApplicationBuilder app)
    {
        var settings = app.ApplicationServices.GetRequiredService<ForwardProxySettings>();
        var via = app.ApplicationServices.GetRequiredService<ViaHeader>();
        var logger = app.ApplicationServices.GetRequiredService<ILoggerFactory>().CreateLogger("Gateway.Proxy");
        var tunnel = app.ApplicationServices.GetRequiredService<ConnectTunnelMiddleware>();
        return app.Use((context, next) =>
        {
            if (HttpMethods.IsConnect(context.Request.Method))
            {
                // CONNECT after earlier requests on a keep-alive connection (a first CONNECT never reaches HTTP).
                return tunnel.TunnelFromHttpAsync(context);
            }

            var rawTarget = context.Features.GetRequiredFeature<IHttpRequestFeature>().RawTarget;
            var isAbsolute = IsAbsoluteForm(rawTarget);

            if (via.IsLoop(context.Request.Headers.Via))
            {
                return ProxyErrors.WriteAsync(context, StatusCodes.Status508LoopDetected, "loop",
                    $"508 Loop Detected: the request already passed through {via.Name}", logger);
            }

            if (isAbsolute && settings.Options.Enabled)
            {
                if (!settings.IsAllowed(context.Connection.RemoteIpAddress))
                {
                    return ProxyErrors.WriteAsync(context, StatusCodes.Status403Forbidden, "client_denied",
                        "403 Forbidden: this client may not use the forward proxy", logger);
                }
                if (!Uri.TryCreate(rawTarget, UriKind.Absolute, out var target) || (target.Scheme != Uri.UriSchemeHttp && target.Scheme != Uri.UriSchemeHttps))
                {
                    return ProxyErrors.WriteAsync(context, StatusCodes.Status400BadRequest, "bad_target",
                        "400 Bad Request: the request target is not an http:// or https:// URL", logger);
                }
                context.Features.Set(new GatewayRequestFeature(ProxyMode.Forward, target));
            }
            else
            {
                context.Features.Set(new GatewayRequestFeature(context.Request));
            }
            return next(context);
        });
    }

    private static bool IsAbsoluteForm(string raw)
        => raw.StartsWith("http://", StringComparison.OrdinalIgnoreCase) || raw.StartsWith("https://", StringComparison.OrdinalIgnoreCase);
}

/// <summary>Our <c>Via</c> entry (<c>1.1 name</c>) and loop detection on received ones.</summary>
internal sealed class ViaHeader
{
    public ViaHeader(IOptions<GatewayProxyOptions> options)
    {
        Name = options.Value.EffectiveName;
        Value = "1.1 " + Name;
    }

    public string Name { get; }
    public string Value { get; }

    /// <summary>True when any received-by of any Via entry is our name.</summary>
    public bool IsLoop(StringValues via)
    {
        foreach (var header in via)
        {
            if (header is null)
            {
                continue;
            }
            foreach (var range in header.AsSpan().Split(','))
            {
                var entry = header.AsSpan()[range].Trim();
                // entry: protocol SP received-by [SP comment]
                var space = entry.IndexOf(' ');
                if (space < 0)
                {
                    continue;
                }
                var receivedBy = entry[(space + 1)..].TrimStart();
                var end = receivedBy.IndexOf(' ');
                if (end >= 0)
                {
                    receivedBy = receivedBy[..end];
                }
                if (receivedBy.Equals(Name, StringComparison.OrdinalIgnoreCase))
                {
                    return true;
                }
            }
        }
        return false;
    }

    public StringValues Append(StringValues existing) => StringValues.Concat(existing, Value);
}
