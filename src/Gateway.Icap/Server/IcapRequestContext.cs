using System.Net;
using System.Text;
using Gateway.Icap.Protocol;

namespace Gateway.Icap.Server;

/// <summary>
/// One REQMOD/RESPMOD request as a service sees it, and the ways to answer it. Exactly one <c>Respond…</c> call answers.
/// </summary>
public sealed class IcapRequestContext
{
    private readonly IcapServerConnection _connection;
    private readonly IcapBodyStream _body;

    internal IcapRequestContext(IcapServerConnection connection, IcapService service, IcapRequestHead request,
        HttpRequestHead? httpRequest, HttpResponseHead? httpResponse, IcapBodyStream body, IPEndPoint? remote, CancellationToken aborted)
    {
        _connection = connection;
        Service = service;
        Request = request;
        HttpRequest = httpRequest;
        HttpResponse = httpResponse;
        _body = body;
        ClientEndPoint = remote;
        RequestAborted = aborted;
        Query = GetQuery(request.Uri);
        // Read once: the properties below are consulted several times per request.
        PreviewSize = request.Preview;
        Allows204 = request.Allows204;
        Allows206 = request.Allows206;
        IsPreview = request.Encapsulated.HasBody && PreviewSize is not null;
    }

    public IcapService Service { get; }

    /// <summary>The ICAP request line and headers.</summary>
    public IcapRequestHead Request { get; }

    public IcapMethod Method => Request.Method;

    public string Uri => Request.Uri;

    /// <summary>The query of the ICAP URI without '?', e.g. <c>mode=strict</c> for <c>icap://host/filter?mode=strict</c>.</summary>
    public string Query { get; }

    public IcapHeaders Headers => Request.Headers;

    /// <summary>The encapsulated HTTP request head (REQMOD; in RESPMOD when the client sent it).</summary>
    public HttpRequestHead? HttpRequest { get; }

    /// <summary>The encapsulated HTTP response head (RESPMOD).</summary>
    public HttpResponseHead? HttpResponse { get; }

    /// <summary>The ICAP client's address.</summary>
    public IPEndPoint? ClientEndPoint { get; }

    /// <summary>The HTTP client's address as the ICAP client reports it (<c>X-Client-IP</c>), or null.</summary>
    public IPAddress? HttpClientAddress => Headers.TryGetValue("X-Client-IP", out var v) && IPAddress.TryParse(v, out var a) ? a : null;

    /// <summary>A body (req-body/res-body) is encapsulated.</summary>
    public bool HasBody => Request.Encapsulated.HasBody;

    /// <summary>The client sent a preview (<c>Preview: n</c>) and the body is not null.</summary>
    public bool IsPreview { get; }

    /// <summary>The preview size the client announced, or null.</summary>
    public int? PreviewSize { get; }

    /// <summary>The preview ended with <c>ieof</c>: it holds the whole body. Known once the preview has been read.</summary>
    public bool PreviewIeof => _body.Ieof;

    public bool Allows204 { get; }

    public bool Allows206 { get; }

    /// <summary>204 may be sent now: the client sent <c>Allow: 204</c>, or the preview is not over (no 100 Continue sent).</summary>
    public bool CanRespondNoContent => Allows204 || (IsPreview && !_body.ContinueSent);

    /// <summary>206 may be sent now: the client sent <c>Allow: 206</c> and still has the original body.</summary>
    public bool CanRespondPartial => Allows206 && CanRespondNoContent;

    /// <summary>
    /// The encapsulated body, decoded. Reading past the preview sends <c>100 Continue</c> by itself.
    /// Reads return 0 at the end of the body (immediately when there is none).
    /// </summary>
    public Stream Body => _body;

    /// <summary>ICAP trailers received after the body, once it has been read to the end.</summary>
    public IcapHeaders? Trailers => _body.Trailers;

    public CancellationToken RequestAborted { get; }

    public bool HasResponded { get; private set; }

    /// <summary>Headers added to the ICAP response (e.g. <c>X-Infection-Found</c>), whatever the answer.</summary>
    public IcapHeaders ResponseHeaders { get; } = new();

    /// <summary>
    /// Reads up to <paramref name="maxBytes"/> of the body without going past the preview (no 100 Continue). The bytes
    /// remain at the start of <see cref="Body"/>. With no preview, reads the first bytes of the body. The memory is
    /// pooled: valid until the request has been answered.
    /// </summary>
    public ValueTask<ReadOnlyMemory<byte>> ReadPreviewAsync(int? maxBytes = null, CancellationToken cancellationToken = default)
        => _body.ReadPreviewAsync(maxBytes ?? PreviewSize ?? Service.Declaration.PreviewSize ?? 4096, cancellationToken);

    /// <summary>204: the client uses its original message. Only where <see cref="CanRespondNoContent"/>.</summary>
    public ValueTask RespondNoContentAsync(CancellationToken cancellationToken = default)
    {
        if (!CanRespondNoContent) throw new InvalidOperationException("204 is not allowed: no 'Allow: 204' and the preview is over.");
        MarkResponded();
        return _connection.WriteResponseAsync(this, 204, null, null, null, default, null, cancellationToken);
    }

    /// <summary>
    /// 206: the client takes <paramref name="prefix"/> then its original body from byte <paramref name="useOriginalBodyOffset"/>.
    /// The HTTP head defaults to the original one. Only where <see cref="CanRespondPartial"/>.
    /// </summary>
    public ValueTask RespondPartialAsync(long useOriginalBodyOffset, ReadOnlyMemory<byte> prefix = default, object? httpHead = null,
        CancellationToken cancellationToken = default)
    {
        if (!CanRespondPartial) throw new InvalidOperationException("206 is not allowed: no 'Allow: 206', or the original body is gone.");
        if (!HasBody) throw new InvalidOperationException("206 needs an encapsulated body.");
        ArgumentOutOfRangeException.ThrowIfNegative(useOriginalBodyOffset);
        var (req, res) = SplitHead(httpHead ?? (Method == IcapMethod.Reqmod ? HttpRequest : HttpResponse));
        MarkResponded();
        return _connection.WriteResponseAsync(this, 206, req, res, null, prefix, useOriginalBodyOffset, cancellationToken);
    }

    /// <summary>200 with a (modified) HTTP request (REQMOD) and its body streamed from <paramref name="body"/> (null: no body).</summary>
    public ValueTask RespondAsync(HttpRequestHead head, Stream? body, CancellationToken cancellationToken = default)
    {
        if (Method != IcapMethod.Reqmod) throw new InvalidOperationException("A modified HTTP request answers REQMOD only.");
        MarkResponded();
        return _connection.WriteResponseAsync(this, 200, head, null, body, default, null, cancellationToken);
    }

    /// <summary>200 with a (modified) HTTP response and its body streamed from <paramref name="body"/> (null: no body).
    /// In REQMOD this answers the HTTP request instead of forwarding it (e.g. a block page).</summary>
    public ValueTask RespondAsync(HttpResponseHead head, Stream? body, CancellationToken cancellationToken = default)
    {
        MarkResponded();
        return _connection.WriteResponseAsync(this, 200, null, head, body, default, null, cancellationToken);
    }

    /// <summary>200 with only a body (no HTTP head), for a request that encapsulated only a body.</summary>
    public ValueTask RespondBodyAsync(Stream body, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(body);
        MarkResponded();
        return _connection.WriteResponseAsync(this, 200, null, null, body, default, null, cancellationToken);
    }

    /// <summary>200 with an HTTP response built here, e.g. a 403 block page; Content-Length is set from <paramref name="body"/>.</summary>
    public ValueTask RespondHttpAsync(int statusCode, string reasonPhrase, IcapHeaders? headers, ReadOnlyMemory<byte> body,
        CancellationToken cancellationToken = default)
    {
        var h = headers?.Clone() ?? new IcapHeaders();
        h.Set("Content-Length", body.Length.ToString(System.Globalization.CultureInfo.InvariantCulture));
        var head = new HttpResponseHead("HTTP/1.1", statusCode, reasonPhrase, h);
        MarkResponded();
        return _connection.WriteResponseAsync(this, 200, null, head, null, body, null, cancellationToken, bodyIsContent: true);
    }

    /// <summary>An ICAP error (e.g. 400, 403, 500) with no encapsulated message.</summary>
    public ValueTask RespondErrorAsync(int statusCode, string? reasonPhrase = null, CancellationToken cancellationToken = default)
    {
        if (statusCode is < 400 or > 599) throw new ArgumentOutOfRangeException(nameof(statusCode));
        MarkResponded();
        return _connection.WriteErrorAsync(statusCode, reasonPhrase, close: false, Service, ResponseHeaders, cancellationToken);
    }

    internal IcapBodyStream BodyStream => _body;

    internal int ResponseStatus { get; set; }

    private void MarkResponded()
    {
        if (HasResponded) throw new InvalidOperationException("The request has already been answered.");
        HasResponded = true;
    }

    private static (HttpRequestHead?, HttpResponseHead?) SplitHead(object? head) => head switch
    {
        null => (null, null),
        HttpRequestHead r => (r, null),
        HttpResponseHead s => (null, s),
        _ => throw new ArgumentException("Expected an HttpRequestHead or HttpResponseHead.", nameof(head)),
    };

    private static string GetQuery(string uri)
    {
        var q = uri.IndexOf('?');
        return q < 0 ? string.Empty : uri[(q + 1)..];
    }

    /// <summary>A query parameter of the ICAP URI, or null.</summary>
    public string? GetQueryValue(string name)
    {
        foreach (var part in Query.Split('&', StringSplitOptions.RemoveEmptyEntries))
        {
            var eq = part.IndexOf('=');
            var key = eq < 0 ? part : part[..eq];
            if (string.Equals(System.Uri.UnescapeDataString(key), name, StringComparison.OrdinalIgnoreCase))
            {
                return eq < 0 ? string.Empty : System.Uri.UnescapeDataString(part[(eq + 1)..]);
            }
        }
        return null;
    }

    internal static byte[] Utf8(string s) => Encoding.UTF8.GetBytes(s);
}
