namespace Gateway.Icap.Protocol;

public enum IcapMethod
{
    Options,
    Reqmod,
    Respmod,
}

public static class IcapMethods
{
    public static string ToToken(this IcapMethod method) => method switch
    {
        IcapMethod.Options => "OPTIONS",
        IcapMethod.Reqmod => "REQMOD",
        IcapMethod.Respmod => "RESPMOD",
        _ => throw new ArgumentOutOfRangeException(nameof(method)),
    };
}

/// <summary>An ICAP request line and headers (RFC 3507 §4.3). The encapsulated HTTP heads and body follow on the wire.</summary>
public sealed class IcapRequestHead
{
    public IcapRequestHead(IcapMethod method, string uri, IcapHeaders headers, IcapEncapsulated encapsulated)
    {
        Method = method;
        Uri = uri;
        Headers = headers;
        Encapsulated = encapsulated;
    }

    public IcapMethod Method { get; }

    /// <summary>The request URI as sent, e.g. <c>icap://127.0.0.1:1344/echo?mode=x</c>.</summary>
    public string Uri { get; }

    public IcapHeaders Headers { get; }

    public IcapEncapsulated Encapsulated { get; set; }

    /// <summary>The service name: the URI path without its leading slash and without the query.</summary>
    public string ServiceName => IcapUri.GetServiceName(Uri);

    /// <summary>The <c>Preview</c> header: bytes of preview the client sends, or null when the body is not previewed.</summary>
    public int? Preview
    {
        get
        {
            if (!Headers.TryGetValue("Preview", out var v)) return null;
            return int.TryParse(v, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n)
                ? n
                : throw new IcapProtocolException(IcapRejectionReason.InvalidPreview, v);
        }
    }

    /// <summary>The client accepts 204 outside of a preview (<c>Allow: 204</c>).</summary>
    public bool Allows204 => Headers.ContainsToken("Allow", "204");

    /// <summary>The client accepts 206 with <c>use-original-body</c> (<c>Allow: 206</c>).</summary>
    public bool Allows206 => Headers.ContainsToken("Allow", "206");

    public bool ConnectionClose => Headers.ContainsToken("Connection", "close");
}

/// <summary>An ICAP status line and headers (RFC 3507 §4.3.3); <see cref="Encapsulated"/> is null when absent (100, 204 without it).</summary>
public sealed class IcapResponseHead
{
    public IcapResponseHead(int statusCode, string reasonPhrase, IcapHeaders headers, IcapEncapsulated? encapsulated)
    {
        StatusCode = statusCode;
        ReasonPhrase = reasonPhrase;
        Headers = headers;
        Encapsulated = encapsulated;
    }

    public int StatusCode { get; }

    public string ReasonPhrase { get; }

    public IcapHeaders Headers { get; }

    public IcapEncapsulated? Encapsulated { get; set; }

    /// <summary>The <c>ISTag</c> header as sent (quotes included), or null.</summary>
    public string? IsTag => Headers["ISTag"];

    public bool ConnectionClose => Headers.ContainsToken("Connection", "close");
}

/// <summary>An encapsulated HTTP request head: request line and headers.</summary>
public sealed class HttpRequestHead
{
    public HttpRequestHead(string method, string target, string version, IcapHeaders headers)
    {
        Method = method;
        Target = target;
        Version = version;
        Headers = headers;
    }

    public string Method { get; set; }

    public string Target { get; set; }

    public string Version { get; set; }

    public IcapHeaders Headers { get; }

    public HttpRequestHead Clone() => new(Method, Target, Version, Headers.Clone());
}

/// <summary>An encapsulated HTTP response head: status line and headers.</summary>
public sealed class HttpResponseHead
{
    public HttpResponseHead(string version, int statusCode, string reasonPhrase, IcapHeaders headers)
    {
        Version = version;
        StatusCode = statusCode;
        ReasonPhrase = reasonPhrase;
        Headers = headers;
    }

    public string Version { get; set; }

    public int StatusCode { get; set; }

    public string ReasonPhrase { get; set; }

    public IcapHeaders Headers { get; }

    public HttpResponseHead Clone() => new(Version, StatusCode, ReasonPhrase, Headers.Clone());
}

internal static class IcapUri
{
    public static string GetServiceName(string uri)
    {
        var s = uri.AsSpan();
        var scheme = s.IndexOf("://");
        if (scheme >= 0)
        {
            s = s[(scheme + 3)..];
            var slash = s.IndexOf('/');
            s = slash < 0 ? ReadOnlySpan<char>.Empty : s[slash..];
        }
        var q = s.IndexOfAny('?', '#');
        if (q >= 0) s = s[..q];
        s = s.TrimStart('/');
        return s.ToString();
    }
}
