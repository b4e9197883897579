using System.Text;

namespace Gateway.Rules;

/// <summary>What kind of resource a client asked for, as far as a placeholder is concerned.</summary>
internal enum PlaceholderKind
{
    Document,
    Image,
    Script,
    Style,
    Empty,
}

/// <summary>
/// The answer to a dropped request: a placeholder fitting what the client asked for (htcache served an HTML page even
/// to images). The kind comes from <c>Sec-Fetch-Dest</c>, then <c>Accept</c>, then the path's extension: an HTML page for
/// documents, a transparent 1×1 GIF for images, empty JavaScript or CSS for scripts and styles, 204 otherwise.
/// </summary>
internal static class DropPlaceholder
{
    /// <summary>GIF89a, 1×1, one transparent colour (43 bytes).</summary>
    public static readonly byte[] TransparentGif =
    [
        0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
        0xFF, 0xFF, 0xFF, 0x21, 0xF9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2C, 0x00, 0x00, 0x00, 0x00,
        0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3B,
    ];

    public static PlaceholderKind Classify(string method, Uri url, IHeaderDictionary headers)
    {
        var dest = headers["Sec-Fetch-Dest"].ToString();
        switch (dest.ToLowerInvariant())
        {
            case "document" or "iframe" or "frame" or "embed" or "object":
                return PlaceholderKind.Document;
            case "image":
                return PlaceholderKind.Image;
            case "script" or "worker" or "sharedworker" or "serviceworker" or "audioworklet" or "paintworklet":
                return PlaceholderKind.Script;
            case "style":
                return PlaceholderKind.Style;
            case "":
                break;
            default:
                return PlaceholderKind.Empty; // fetch, font, video, audio, manifest, …
        }
        var extension = Path.GetExtension(url.AbsolutePath).ToLowerInvariant();
        switch (extension)
        {
            case ".gif" or ".png" or ".jpg" or ".jpeg" or ".webp" or ".avif" or ".svg" or ".ico" or ".bmp":
                return PlaceholderKind.Image;
            case ".js" or ".mjs":
                return PlaceholderKind.Script;
            case ".css":
                return PlaceholderKind.Style;
            case ".html" or ".htm" or ".php" or ".asp" or ".aspx":
                return PlaceholderKind.Document;
        }
        var accept = headers.Accept.ToString();
        if (accept.Length > 0)
        {
            // The first listed type is what the client primarily wants (browsers put it first).
            var first = accept.AsSpan();
            var comma = first.IndexOf(',');
            if (comma >= 0) first = first[..comma];
            var semi = first.IndexOf(';');
            if (semi >= 0) first = first[..semi];
            first = first.Trim();
            if (first.StartsWith("image/", StringComparison.OrdinalIgnoreCase)) return PlaceholderKind.Image;
            if (first.Equals("text/html", StringComparison.OrdinalIgnoreCase) || first.Equals("application/xhtml+xml", StringComparison.OrdinalIgnoreCase)) return PlaceholderKind.Document;
            if (first.Equals("text/css", StringComparison.OrdinalIgnoreCase)) return PlaceholderKind.Style;
            if (first.Contains("javascript", StringComparison.OrdinalIgnoreCase) || first.Contains("ecmascript", StringComparison.OrdinalIgnoreCase)) return PlaceholderKind.Script;
        }
        return PlaceholderKind.Empty;
    }

    /// <summary>The placeholder for a rule and request: status, content type (null for none) and body.</summary>
    public static (int Status, string? ContentType, byte[] Body) Build(DropRule rule, PlaceholderKind kind, Uri url)
    {
        if (rule.Body is not null)
        {
            return (rule.Status ?? 200, rule.ContentType ?? "text/plain; charset=utf-8", Encoding.UTF8.GetBytes(rule.Body));
        }
        var (status, contentType, body) = kind switch
        {
            PlaceholderKind.Document => (200, "text/html; charset=utf-8", Encoding.UTF8.GetBytes(Html(rule, url))),
            PlaceholderKind.Image => (200, "image/gif", TransparentGif),
            PlaceholderKind.Script => (200, "application/javascript; charset=utf-8", Array.Empty<byte>()),
            PlaceholderKind.Style => (200, "text/css; charset=utf-8", Array.Empty<byte>()),
            _ => (204, (string?)null, Array.Empty<byte>()),
        };
        if (rule.Status is { } fixedStatus)
        {
            status = fixedStatus;
            if (fixedStatus is 204 or 304)
            {
                return (fixedStatus, null, []);
            }
        }
        return (status, contentType, body);
    }

    private static string Html(DropRule rule, Uri url)
    {
        var u = System.Net.WebUtility.HtmlEncode(url.AbsoluteUri);
        var id = System.Net.WebUtility.HtmlEncode(rule.Id);
        return $"<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Blocked</title></head>"
             + $"<body><h1>Blocked</h1><p>{u} was blocked by the gateway (rule <code>{id}</code>).</p></body></html>\n";
    }

    /// <summary>Writes the placeholder; returns the status sent.</summary>
    public static async Task<int> WriteAsync(HttpContext context, DropRule rule, PlaceholderKind kind, Uri url)
    {
        var (status, contentType, body) = Build(rule, kind, url);
        var response = context.Response;
        response.StatusCode = status;
        response.Headers.CacheControl = "no-store";
        response.Headers["X-Gateway-Rule"] = "drop/" + rule.Id;
        if (contentType is not null)
        {
            response.ContentType = contentType;
        }
        if (status is 204 or 304)
        {
            return status;
        }
        response.ContentLength = body.Length;
        if (body.Length > 0 && !HttpMethods.IsHead(context.Request.Method))
        {
            await response.Body.WriteAsync(body, context.RequestAborted);
        }
        return status;
    }
}
