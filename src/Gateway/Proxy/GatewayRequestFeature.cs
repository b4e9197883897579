namespace Gateway.Proxy;

/// <summary>How a request reached the gateway.</summary>
public enum ProxyMode
{
    /// <summary>Origin-form request routed by a YARP route.</summary>
    Reverse,
    /// <summary>Absolute-form request (<c>GET http://host/path</c>) forwarded to its own authority.</summary>
    Forward,
}

/// <summary>
/// Per-request state shared by the stages of the proxy pipeline (rules, adaptation, cache, forwarding, access log).
/// Set by the proxy gate for every request on the proxy listener: <c>context.Features.Get&lt;GatewayRequestFeature&gt;()</c>.
/// </summary>
public sealed class GatewayRequestFeature
{
    private Uri? _targetUri;
    private readonly HttpRequest? _request;

    public GatewayRequestFeature(ProxyMode mode, Uri targetUri)
    {
        Mode = mode;
        _targetUri = targetUri;
    }

    /// <summary>Reverse mode: the target URL is built from the request only when a stage asks for it (the hot path
    /// of a plain pass-through never does).</summary>
    internal GatewayRequestFeature(HttpRequest request)
    {
        Mode = ProxyMode.Reverse;
        _request = request;
    }

    public ProxyMode Mode { get; }

    /// <summary>
    /// The absolute URL the client asked for: the request target itself in forward mode, or
    /// <c>scheme://host/path?query</c> of the incoming request in reverse mode. Request rewrites may replace it.
    /// </summary>
    public Uri TargetUri
    {
        get => _targetUri ??= FromRequest(_request!);
        set => _targetUri = value;
    }

    private static Uri FromRequest(HttpRequest request)
    {
        var host = request.Host.HasValue ? request.Host.Value : "localhost";
        var url = string.Concat(request.Scheme, "://", host, request.PathBase.ToUriComponent(), request.Path.ToUriComponent(), request.QueryString.ToUriComponent());
        // Kestrel has already validated the Host header and the path, so this only fails on pathological input.
        return Uri.TryCreate(url, UriKind.Absolute, out var uri) ? uri : new Uri(string.Concat(request.Scheme, "://localhost/"));
    }

    /// <summary>Where the request was sent (for the access log); set by the forwarding step.</summary>
    public string? Upstream { get; set; }

    /// <summary>Rules (NoCache): neither look up nor store this request in the cache.</summary>
    public bool NoCache { get; set; }

    /// <summary>Rules (Sort): primary cache key to use instead of the URL.</summary>
    public string? CacheKey { get; set; }

    /// <summary>Rules (Sort): logical storage location (relative path below the cache directory).</summary>
    public string? CacheLocation { get; set; }

    /// <summary>Rules (Sort): archive period format (e.g. <c>yyyy/MM/dd</c>): keep a dated copy per period.</summary>
    public string? CacheArchive { get; set; }

    /// <summary>The cache's verdict for the access log (e.g. HIT, MISS, STALE); null when the cache was not involved.</summary>
    public string? CacheStatus { get; set; }

    /// <summary>ISTag of each ICAP service that adapted the response, by service name (recorded in cache entries).</summary>
    public Dictionary<string, string>? AdaptationTags { get; set; }
}

/// <summary>
/// A request-phase stage of the proxy pipeline, run in <see cref="Order"/> between the proxy gate and forwarding:
/// rules (100), REQMOD (200), cache (300). A stage may answer the request itself and not call <c>next</c>.
/// </summary>
public interface IProxyPipelineStage
{
    int Order { get; }

    Task InvokeAsync(HttpContext context, RequestDelegate next);
}

/// <summary>Well-known stage orders.</summary>
public static class ProxyStageOrder
{
    public const int Rules = 100;
    public const int Reqmod = 200;
    public const int Cache = 300;

    public const int Respmod = 100;
    public const int RewriteResponse = 200;
}
