namespace Gateway.Icap.Client;

/// <summary>How the client talks to one ICAP service. Immutable; one <see cref="IcapClient"/> per service.</summary>
public sealed record IcapClientOptions
{
    /// <summary>The service URI, e.g. <c>icap://127.0.0.1:1344/echo</c> (port 1344 when absent).</summary>
    public required Uri Uri { get; init; }

    /// <summary>Time allowed to open a TCP connection to the service.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Time allowed for any single read or write on the ICAP connection (an inactivity timeout).</summary>
    public TimeSpan IoTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Cap on concurrent connections; the service's OPTIONS <c>Max-Connections</c> lowers it further. Null: OPTIONS or 100.</summary>
    public int? MaxConnections { get; init; }

    /// <summary>Send a preview when the service asks for one (OPTIONS <c>Preview</c>).</summary>
    public bool PreviewEnabled { get; init; } = true;

    /// <summary>
    /// Bytes of the original body buffered before it is sent, so that it can be replayed after a 204 or used after a
    /// 206 outside of a preview. <c>Allow: 204</c>/<c>Allow: 206</c> are sent only when the whole body fits (Squid's behaviour).
    /// </summary>
    public int ReplayBufferSize { get; init; } = 64 * 1024;

    /// <summary>Failures within <see cref="FailureWindow"/> that mark the service down.</summary>
    public int FailureLimit { get; init; } = 10;

    public TimeSpan FailureWindow { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>How long a service stays down before it is tried again (an OPTIONS probe).</summary>
    public TimeSpan RevivalDelay { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Idle pooled connections older than this are closed rather than reused.</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>Connections when neither the options nor OPTIONS <c>Max-Connections</c> say.</summary>
    public const int DefaultMaxConnections = 100;

    public string Host => Uri.Host;

    public int Port => Uri.IsDefaultPort || Uri.Port <= 0 ? 1344 : Uri.Port;
}

/// <summary>Parser limits of the client: the defaults, plus tolerance of obs-fold header lines some services send.</summary>
internal static class IcapClientLimits
{
    public static readonly Gateway.Icap.Protocol.IcapParserLimits Value = Gateway.Icap.Protocol.IcapParserLimits.Default with { AllowObsFold = true };
}
