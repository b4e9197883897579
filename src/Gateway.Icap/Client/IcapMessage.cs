using Gateway.Icap.Protocol;

namespace Gateway.Icap.Client;

/// <summary>An HTTP message to adapt with REQMOD or RESPMOD.</summary>
public sealed class IcapAdaptationRequest
{
    /// <summary><see cref="IcapMethod.Reqmod"/> or <see cref="IcapMethod.Respmod"/>.</summary>
    public required IcapMethod Method { get; init; }

    /// <summary>The HTTP request (for RESPMOD: the request that produced the response; it gives the service context).</summary>
    public required HttpRequestHead HttpRequest { get; init; }

    /// <summary>The HTTP response head (RESPMOD only).</summary>
    public HttpResponseHead? HttpResponse { get; init; }

    /// <summary>The body of the adapted message (request body for REQMOD, response body for RESPMOD); null: none.</summary>
    public Stream? Body { get; init; }

    /// <summary>The body's length when known (Content-Length).</summary>
    public long? BodyLength { get; init; }

    /// <summary>Sent as <c>X-Client-IP</c>.</summary>
    public string? ClientIp { get; init; }

    /// <summary>Sent base64-encoded as <c>X-Authenticated-User</c> (as Squid with <c>icap_client_username_encode on</c>).</summary>
    public string? AuthenticatedUser { get; init; }
}

public enum IcapResultKind
{
    /// <summary>The message goes on unchanged (204, Transfer-Ignore). <see cref="IcapResult.Body"/> replays the original body.</summary>
    Unchanged,

    /// <summary>The service sent a new message (200), or a new head with part of the original body (206).</summary>
    Modified,

    /// <summary>REQMOD only: the service answered the request with an HTTP response; the request is not forwarded.</summary>
    Response,
}

/// <summary>
/// The outcome of one adaptation. Its <see cref="Body"/> streams from the ICAP connection (or from the replay buffer);
/// dispose the result (or read the body to its end and dispose it) to give the connection back to the pool.
/// </summary>
public sealed class IcapResult : IAsyncDisposable
{
    internal IcapResult(IcapResultKind kind, int statusCode, string? isTag)
    {
        Kind = kind;
        StatusCode = statusCode;
        IsTag = isTag;
    }

    public IcapResultKind Kind { get; }

    /// <summary>ICAP status: 200, 204 or 206; 0 when the message was not sent (Transfer-Ignore).</summary>
    public int StatusCode { get; }

    /// <summary>The service's ISTag from this answer (or from OPTIONS when the answer carried none).</summary>
    public string? IsTag { get; }

    /// <summary>The adapted HTTP request (REQMOD, <see cref="IcapResultKind.Modified"/>).</summary>
    public HttpRequestHead? HttpRequest { get; internal init; }

    /// <summary>The adapted HTTP response (RESPMOD Modified), or the answer to the request (REQMOD <see cref="IcapResultKind.Response"/>).</summary>
    public HttpResponseHead? HttpResponse { get; internal init; }

    /// <summary>The body that replaces the original one; null when the message has no body.</summary>
    public Stream? Body { get; internal init; }

    /// <summary>The length of <see cref="Body"/> when it is known exactly, else null.</summary>
    public long? BodyLength { get; internal init; }

    /// <summary>For 206: the offset in the original body from which the original is used.</summary>
    public long? UseOriginalBodyOffset { get; internal init; }

    /// <summary>Bytes written to the service so far (heads, framing and body).</summary>
    public long BytesSent => Transaction?.BytesSent ?? 0;

    /// <summary>Bytes read from the service so far.</summary>
    public long BytesReceived => Transaction?.BytesReceived ?? 0;

    internal IcapTransaction? Transaction { get; init; }

    internal Action? OnDispose { get; init; }

    public async ValueTask DisposeAsync()
    {
        if (Body is not null) await Body.DisposeAsync();
        if (Transaction is not null) await Transaction.DisposeAsync();
        OnDispose?.Invoke();
    }
}
