using Gateway.Icap.Protocol;

namespace Gateway.Icap.Server;

/// <summary>The ICAP server: <c>Gateway:Icap:Server</c>.</summary>
public sealed class IcapServerOptions
{
    public const string SectionName = "Gateway:Icap:Server";

    /// <summary>Listen for ICAP at all.</summary>
    public bool Enabled { get; set; } = true;

    /// <summary><c>host:port</c>; host is an IP address, <c>localhost</c> or <c>*</c> (all interfaces).</summary>
    public string Listen { get; set; } = "127.0.0.1:1344";

    /// <summary>Concurrent connections; the next ones are answered 503 and closed. Advertised as <c>Max-Connections</c>.</summary>
    public int MaxConnections { get; set; } = 1000;

    /// <summary>How long a persistent connection may wait for its next request (and a request body for its next bytes).</summary>
    public TimeSpan IdleTimeout { get; set; } = TimeSpan.FromSeconds(60);

    /// <summary>Time allowed to receive a request's ICAP head and encapsulated HTTP heads once it has started: 408 after it.</summary>
    public TimeSpan RequestHeadersTimeout { get; set; } = TimeSpan.FromSeconds(30);

    public int MaxHeaderBytes { get; set; } = 64 * 1024;

    public int MaxHeaderCount { get; set; } = 100;

    public int MaxLineLength { get; set; } = 16 * 1024;

    public long MaxChunkSize { get; set; } = 16L * 1024 * 1024;

    /// <summary>The <c>Server</c> header.</summary>
    public string ServerName { get; set; } = "Gateway-ICAP/1.0";

    /// <summary><c>Options-TTL</c> for services that do not declare one.</summary>
    public TimeSpan OptionsTtl { get; set; } = TimeSpan.FromHours(1);

    internal IcapParserLimits ToLimits() => new()
    {
        MaxHeaderBytes = MaxHeaderBytes,
        MaxHeaderCount = MaxHeaderCount,
        MaxLineLength = MaxLineLength,
        MaxChunkSize = MaxChunkSize,
    };

    internal IEnumerable<string> Validate()
    {
        if (MaxConnections < 1) yield return $"{SectionName}:{nameof(MaxConnections)} must be at least 1";
        if (IdleTimeout <= TimeSpan.Zero) yield return $"{SectionName}:{nameof(IdleTimeout)} must be positive";
        if (RequestHeadersTimeout <= TimeSpan.Zero) yield return $"{SectionName}:{nameof(RequestHeadersTimeout)} must be positive";
        if (MaxHeaderBytes < 1024) yield return $"{SectionName}:{nameof(MaxHeaderBytes)} must be at least 1024";
        if (MaxHeaderCount < 1) yield return $"{SectionName}:{nameof(MaxHeaderCount)} must be at least 1";
        if (MaxLineLength < 256) yield return $"{SectionName}:{nameof(MaxLineLength)} must be at least 256";
        if (MaxChunkSize < 1) yield return $"{SectionName}:{nameof(MaxChunkSize)} must be positive";
        if (Enabled && !IcapListenAddress.TryParse(Listen, out _)) yield return $"{SectionName}:{nameof(Listen)} '{Listen}' is not host:port";
    }
}
