using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Gateway.Observability;

/// <summary>The gateway's own ActivitySource and Meter ("Gateway"); capabilities add their instruments here.</summary>
public static class GatewayTelemetry
{
    public const string Name = "Gateway";

    public static readonly ActivitySource ActivitySource = new(Name);
    public static readonly Meter Meter = new(Name);

    /// <summary>Proxied requests, tagged by mode (reverse/forward/connect) and status class.</summary>
    public static readonly Counter<long> ProxyRequests = Meter.CreateCounter<long>("gateway.proxy.requests", unit: "{request}", description: "Requests handled on the proxy listener");

    /// <summary>Duration of proxied requests.</summary>
    public static readonly Histogram<double> ProxyDuration = Meter.CreateHistogram<double>("gateway.proxy.duration", unit: "s", description: "Duration of requests on the proxy listener");

    /// <summary>Bytes sent to clients on the proxy listener.</summary>
    public static readonly Counter<long> ProxyBytes = Meter.CreateCounter<long>("gateway.proxy.response_bytes", unit: "By", description: "Response body bytes sent to clients");

    /// <summary>Proxy errors (origin unreachable, timeout, refused, loop), tagged by kind.</summary>
    public static readonly Counter<long> ProxyErrors = Meter.CreateCounter<long>("gateway.proxy.errors", unit: "{error}", description: "Errors on the proxy path by kind");

    /// <summary>CONNECT tunnels opened and bytes relayed.</summary>
    public static readonly UpDownCounter<long> ActiveTunnels = Meter.CreateUpDownCounter<long>("gateway.proxy.tunnels.active", unit: "{tunnel}", description: "Open CONNECT tunnels");
    public static readonly Counter<long> TunnelBytes = Meter.CreateCounter<long>("gateway.proxy.tunnels.bytes", unit: "By", description: "Bytes relayed through CONNECT tunnels");
}
