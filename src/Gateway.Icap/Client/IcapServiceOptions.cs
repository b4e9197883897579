using System.Globalization;
using Gateway.Icap.Protocol;

namespace Gateway.Icap.Client;

/// <summary>What a service said in its OPTIONS response (RFC 3507 §4.10.2), with the time it was fetched.</summary>
public sealed class IcapServiceOptions
{
    /// <summary>TTL used when the service sends no <c>Options-TTL</c>.</summary>
    public static readonly TimeSpan DefaultTtl = TimeSpan.FromSeconds(60);

    private readonly string[] _transferPreview;
    private readonly string[] _transferIgnore;
    private readonly string[] _transferComplete;

    private IcapServiceOptions(IcapHeaders headers, DateTimeOffset fetchedAt)
    {
        Headers = headers;
        FetchedAt = fetchedAt;
        IsTag = headers["ISTag"];
        Service = headers["Service"];
        Methods = Split(headers["Methods"]).Select(m => m.ToUpperInvariant()).ToArray();
        Ttl = ParseInt(headers["Options-TTL"]) is { } ttl && ttl > 0 ? TimeSpan.FromSeconds(ttl) : DefaultTtl;
        MaxConnections = ParseInt(headers["Max-Connections"]) is { } max && max > 0 ? max : null;
        Preview = ParseInt(headers["Preview"]) is { } p && p >= 0 ? p : null;
        Allows204 = headers.ContainsToken("Allow", "204");
        Allows206 = headers.ContainsToken("Allow", "206");
        _transferPreview = Split(headers["Transfer-Preview"]);
        _transferIgnore = Split(headers["Transfer-Ignore"]);
        _transferComplete = Split(headers["Transfer-Complete"]);
    }

    public IcapHeaders Headers { get; }

    public DateTimeOffset FetchedAt { get; }

    public string? IsTag { get; }

    public string? Service { get; }

    /// <summary>Upper-case method tokens (REQMOD, RESPMOD).</summary>
    public IReadOnlyList<string> Methods { get; }

    public TimeSpan Ttl { get; }

    public DateTimeOffset ExpiresAt => FetchedAt + Ttl;

    public int? MaxConnections { get; }

    /// <summary>Bytes of preview the service wants, or null when it does not support previews.</summary>
    public int? Preview { get; }

    /// <summary>The service may answer 204 outside of previews.</summary>
    public bool Allows204 { get; }

    /// <summary>The service may answer 206 (<c>use-original-body</c>).</summary>
    public bool Allows206 { get; }

    public bool Supports(IcapMethod method) => Methods.Count == 0 || Methods.Contains(method.ToToken());

    /// <summary>How a body with this file extension (no dot, may be empty) is sent: Transfer-Ignore/Complete/Preview.</summary>
    public IcapTransferMode GetTransferMode(string extension)
    {
        // An explicit extension wins over '*'; among explicit ones Ignore > Complete > Preview.
        if (extension.Length > 0)
        {
            if (Contains(_transferIgnore, extension)) return IcapTransferMode.Ignore;
            if (Contains(_transferComplete, extension)) return IcapTransferMode.Complete;
            if (Contains(_transferPreview, extension)) return IcapTransferMode.Preview;
        }
        if (Contains(_transferIgnore, "*")) return IcapTransferMode.Ignore;
        if (Contains(_transferComplete, "*")) return IcapTransferMode.Complete;
        return IcapTransferMode.Preview;
    }

    internal static IcapServiceOptions FromResponse(IcapResponseHead head, DateTimeOffset now) => new(head.Headers, now);

    private static bool Contains(string[] list, string value)
    {
        foreach (var item in list)
        {
            if (string.Equals(item, value, StringComparison.OrdinalIgnoreCase)) return true;
        }
        return false;
    }

    private static string[] Split(string? value)
        => value is null ? [] : value.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    private static int? ParseInt(string? value)
        => int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n : null;
}

/// <summary>How the body of a message is sent to a service, from its Transfer-* OPTIONS headers.</summary>
public enum IcapTransferMode
{
    /// <summary>Send a preview first (when the service asks for one).</summary>
    Preview,

    /// <summary>Do not send the message to the service at all (it would not change it).</summary>
    Ignore,

    /// <summary>Send the whole body without a preview.</summary>
    Complete,
}
