namespace Gateway.Icap.Protocol;

/// <summary>Bounds enforced by the parsers; hitting one is a typed rejection (413), never unbounded buffering.</summary>
public sealed record IcapParserLimits
{
    public static IcapParserLimits Default { get; } = new();

    /// <summary>Maximum bytes of one header section (ICAP head, or one encapsulated HTTP head), CRLFs included.</summary>
    public int MaxHeaderBytes { get; init; } = 64 * 1024;

    /// <summary>Maximum header fields in one header section.</summary>
    public int MaxHeaderCount { get; init; } = 100;

    /// <summary>Maximum length of one line (start line, header line, chunk-size line), CRLF included.</summary>
    public int MaxLineLength { get; init; } = 16 * 1024;

    /// <summary>Maximum size of one chunk of a chunked body.</summary>
    public long MaxChunkSize { get; init; } = 16L * 1024 * 1024;
}
