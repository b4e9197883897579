using System.Net.Http.Headers;
using Microsoft.Net.Http.Headers;
using Yarp.ReverseProxy.Forwarder;

namespace Gateway.Proxy;

/// <summary>
/// Header policy shared by forward and reverse modes: hop-by-hop and proxy headers never cross the gateway
/// (YARP drops the standard hop-by-hop set; this also drops the <c>Proxy-*</c> family and every header the client
/// named in <c>Connection</c>), and our <c>Via</c> is appended in both directions.
/// </summary>
internal static class HeaderPolicy
{
    private static readonly string[] s_proxyHeaders =
    [
        "Proxy-Connection", "Proxy-Authorization", "Proxy-Authenticate", "Proxy-Authentication-Info", "Keep-Alive", "TE", "Trailer", "Upgrade",
    ];

    public static void PrepareRequest(HttpContext context, HttpRequestMessage proxyRequest, ViaHeader via)
    {
        var incoming = context.Request.Headers;
        foreach (var name in s_proxyHeaders)
        {
            if (incoming.ContainsKey(name))
            {
                proxyRequest.Headers.Remove(name);
            }
        }
        foreach (var connection in incoming.Connection)
        {
            if (connection is null)
            {
                continue;
            }
            foreach (var range in connection.AsSpan().Split(','))
            {
                var token = connection.AsSpan()[range].Trim();
                if (!token.IsEmpty)
                {
                    var name = token.ToString();
                    proxyRequest.Headers.Remove(name);
                    proxyRequest.Content?.Headers.Remove(name);
                }
            }
        }
        // YARP copied the client's Via already; ours goes last.
        proxyRequest.Headers.TryAddWithoutValidation(HeaderNames.Via, via.Value);
    }

    public static void PrepareResponse(HttpContext context, ViaHeader via)
    {
        var headers = context.Response.Headers;
        headers.Remove("Proxy-Connection");
        headers.Remove("Keep-Alive");
        headers.Via = via.Append(headers.Via);
    }
}

/// <summary>The transformer of the forward proxy: the destination is the request's own absolute URL.</summary>
internal sealed class ForwardProxyTransformer : HttpTransformer
{
    private readonly ViaHeader _via;
    private readonly ResponsePipeline _responses;

    public ForwardProxyTransformer(ViaHeader via, ResponsePipeline responses)
    {
        _via = via;
        _responses = responses;
    }

    public override async ValueTask TransformRequestAsync(HttpContext httpContext, HttpRequestMessage proxyRequest, string destinationPrefix, CancellationToken cancellationToken)
    {
        await base.TransformRequestAsync(httpContext, proxyRequest, destinationPrefix, cancellationToken);
        var feature = httpContext.Features.Get<GatewayRequestFeature>();
        if (feature is not null)
        {
            proxyRequest.RequestUri = feature.TargetUri;
        }
        // The origin sees its own authority as Host (RFC 9112 3.2.2: a proxy replaces Host with the target's authority).
        proxyRequest.Headers.Host = null;
        HeaderPolicy.PrepareRequest(httpContext, proxyRequest, _via);
    }

    public override async ValueTask<bool> TransformResponseAsync(HttpContext httpContext, HttpResponseMessage? proxyResponse, CancellationToken cancellationToken)
    {
        var copyBody = await base.TransformResponseAsync(httpContext, proxyResponse, cancellationToken);
        if (proxyResponse is null)
        {
            return copyBody;
        }
        HeaderPolicy.PrepareResponse(httpContext, _via);
        var wrote = await _responses.RunAsync(httpContext, proxyResponse, cancellationToken);
        return copyBody && !wrote;
    }
}
