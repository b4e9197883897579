using System.Net;
using System.Text;
using Gateway.Icap.Protocol;
using Gateway.Icap.Server;
using Microsoft.Extensions.Options;

namespace Gateway.Icap.Services;

/// <summary><c>Gateway:Icap:Server:Services:filter</c>.</summary>
public sealed class FilterServiceOptions
{
    /// <summary>Blocked keywords keyed by id (case-insensitive substring match), e.g. <c>Keywords:casino = casino</c>.</summary>
    public Dictionary<string, string> Keywords { get; set; } = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>Bytes of body scanned (the preview the service asks for).</summary>
    public int ScanBytes { get; set; } = 4096;

    /// <summary>HTTP status of the block page.</summary>
    public int BlockStatus { get; set; } = 403;
}

/// <summary>
/// <c>filter</c>: the example of a service doing real work. REQMOD: blocks a request whose URL, header values or first
/// <see cref="FilterServiceOptions.ScanBytes"/> of body contain a keyword. RESPMOD: blocks a textual response whose first
/// bytes contain a keyword. A blocked message is answered with an HTTP 403 block page; others with 204 where allowed,
/// else the unchanged message.
/// </summary>
public sealed class FilterService : IcapService
{
    public const string ServiceName = "filter";

    private readonly string[] _keywords;
    private readonly FilterServiceOptions _options;

    public FilterService(IOptions<FilterServiceOptions> options)
        : base(ServiceName)
    {
        _options = options.Value;
        _keywords = _options.Keywords.Values.Where(k => !string.IsNullOrWhiteSpace(k)).Select(k => k.Trim())
            .Distinct(StringComparer.OrdinalIgnoreCase).Order(StringComparer.OrdinalIgnoreCase).ToArray();
        Declaration = new IcapServiceDeclaration
        {
            Description = "Gateway keyword filter",
            PreviewSize = Math.Max(0, _options.ScanBytes),
            Allow204 = true,
        };
    }

    public override IcapServiceDeclaration Declaration { get; }

    protected override string ConfigurationFingerprint => $"{string.Join('\n', _keywords)}|{_options.ScanBytes}|{_options.BlockStatus}";

    protected override async ValueTask ReqmodAsync(IcapRequestContext context, CancellationToken cancellationToken)
    {
        var request = context.HttpRequest;
        var found = request is null ? null : Match(request.Target) ?? MatchHeaders(request.Headers);
        if (found is null && context.HasBody) found = Match(await context.ReadPreviewAsync(_options.ScanBytes, cancellationToken));
        if (found is not null)
        {
            await BlockAsync(context, found, request?.Target, cancellationToken);
            return;
        }
        if (context.CanRespondNoContent) await context.RespondNoContentAsync(cancellationToken);
        else if (request is not null) await context.RespondAsync(request, context.HasBody ? context.Body : null, cancellationToken);
        else await context.RespondErrorAsync(400, "No request to filter", cancellationToken);
    }

    protected override async ValueTask RespmodAsync(IcapRequestContext context, CancellationToken cancellationToken)
    {
        string? found = null;
        var response = context.HttpResponse;
        if (context.HasBody && IsText(response?.Headers["Content-Type"]) && !IsEncoded(response?.Headers["Content-Encoding"]))
        {
            found = Match(await context.ReadPreviewAsync(_options.ScanBytes, cancellationToken));
        }
        if (found is not null)
        {
            await BlockAsync(context, found, context.HttpRequest?.Target, cancellationToken);
            return;
        }
        if (context.CanRespondNoContent) await context.RespondNoContentAsync(cancellationToken);
        else if (response is not null) await context.RespondAsync(response, context.HasBody ? context.Body : null, cancellationToken);
        else await context.RespondErrorAsync(400, "No response to filter", cancellationToken);
    }

    private ValueTask BlockAsync(IcapRequestContext context, string keyword, string? url, CancellationToken cancellationToken)
    {
        context.ResponseHeaders.Add("X-Blocked-Keyword", keyword);
        var html = $"""
            <!DOCTYPE html>
            <html><head><title>Blocked</title></head>
            <body><h1>Access blocked</h1>
            <p>The content at <code>{WebUtility.HtmlEncode(url ?? "(unknown)")}</code> matched the keyword <b>{WebUtility.HtmlEncode(keyword)}</b>.</p>
            </body></html>

            """;
        var headers = new IcapHeaders
        {
            { "Content-Type", "text/html; charset=utf-8" },
            { "Cache-Control", "no-store" },
            { "Connection", "close" },
        };
        var status = _options.BlockStatus;
        return context.RespondHttpAsync(status, status == 403 ? "Forbidden" : "Blocked", headers, Encoding.UTF8.GetBytes(html), cancellationToken);
    }

    private string? MatchHeaders(IcapHeaders headers)
    {
        foreach (var (_, value) in headers)
        {
            if (Match(value) is { } k) return k;
        }
        return null;
    }

    private string? Match(string text)
    {
        foreach (var k in _keywords)
        {
            if (text.Contains(k, StringComparison.OrdinalIgnoreCase)) return k;
        }
        return null;
    }

    private string? Match(ReadOnlyMemory<byte> bytes)
    {
        if (bytes.IsEmpty || _keywords.Length == 0) return null;
        return Match(Encoding.Latin1.GetString(bytes.Span));
    }

    private static bool IsText(string? contentType) => contentType is null
        || contentType.StartsWith("text/", StringComparison.OrdinalIgnoreCase)
        || contentType.Contains("json", StringComparison.OrdinalIgnoreCase)
        || contentType.Contains("xml", StringComparison.OrdinalIgnoreCase)
        || contentType.Contains("javascript", StringComparison.OrdinalIgnoreCase)
        || contentType.Contains("x-www-form-urlencoded", StringComparison.OrdinalIgnoreCase);

    private static bool IsEncoded(string? contentEncoding) => contentEncoding is not null && !contentEncoding.Equals("identity", StringComparison.OrdinalIgnoreCase);
}
