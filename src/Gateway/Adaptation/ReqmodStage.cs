using Gateway.Icap.Client;
using Gateway.Icap.Protocol;
using Gateway.Proxy;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Net.Http.Headers;

namespace Gateway.Adaptation;

/// <summary>
/// REQMOD: a step of the proxy pipeline (order 200: after the request rules, before the cache lookup and forwarding),
/// so it applies to every request, cache hits and forward-proxy traffic included. The chain may rewrite the request
/// line, headers and body, or answer the request itself (the request then never reaches the cache or the origin).
/// </summary>
internal sealed class ReqmodStage : IProxyPipelineStage
{
    private readonly AdaptationCaller _caller;

    public ReqmodStage(AdaptationCaller caller) => _caller = caller;

    public int Order => ProxyStageOrder.Reqmod;

    public Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        var chain = _caller.ResolveChain(context, IcapMethod.Reqmod);
        return chain.Count == 0 ? next(context) : AdaptAsync(context, next, chain);
    }

    private async Task AdaptAsync(HttpContext context, RequestDelegate next, IReadOnlyList<string> chain)
    {

        var request = context.Request;
        var feature = context.Features.Get<GatewayRequestFeature>();
        var cancellationToken = context.RequestAborted;
        var head = HttpHeads.FromRequest(request, feature?.TargetUri);
        var hasBody = request.ContentLength > 0 || (request.ContentLength is null && context.Features.Get<IHttpRequestBodyDetectionFeature>()?.CanHaveBody == true);
        Stream? body = hasBody ? request.Body : null;
        long? length = hasBody ? request.ContentLength : null;
        var changedHead = false;
        var changedBody = false;
        var owned = new List<Stream>();

        try
        {
            foreach (var name in chain)
            {
                var service = _caller.Registry.Get(name);
                if (service is null) continue;
                var call = await _caller.CallAsync(service, AdaptationCaller.CreateRequest(context, IcapMethod.Reqmod, head, null, body, length), body, cancellationToken);
                if (call.Error is not null && !call.Bypassed)
                {
                    var (status, text) = _caller.FailResponse(service, IcapMethod.Reqmod, call.Error);
                    await WriteErrorAsync(context, status, text);
                    return;
                }
                if (call.Body is not null && !ReferenceEquals(call.Body, body)) owned.Add(call.Body);
                if (call.Bypassed)
                {
                    changedBody |= !ReferenceEquals(call.Body, body);
                    body = call.Body;
                    continue;
                }
                var result = call.Result!;
                if (result.Kind == IcapResultKind.Unchanged)
                {
                    changedBody |= call.Body is not null && !ReferenceEquals(call.Body, body);
                    body = call.Body ?? body;
                    length = call.BodyLength ?? length;
                    continue;
                }
                if (result.Kind == IcapResultKind.Response)
                {
                    await AnswerAsync(context, result.HttpResponse!, call.Body, cancellationToken);
                    return;
                }
                head = result.HttpRequest!;
                changedHead = true;
                changedBody = true;
                body = call.Body;
                length = body is null ? 0 : HttpHeads.DeclaredLength(head.Headers);
            }

            if (changedHead && !ApplyRequestHead(context, feature, head))
            {
                await WriteErrorAsync(context, StatusCodes.Status500InternalServerError,
                    System.Text.Encoding.UTF8.GetBytes($"500 Internal Server Error: REQMOD returned an invalid request target '{head.Target}'\n"));
                return;
            }
            if (changedBody) ApplyBody(context, body, length);
            await next(context);
        }
        finally
        {
            foreach (var s in owned) await s.DisposeAsync();
        }
    }

    /// <summary>Puts the adapted request line and headers on the request (and the target URL on the gateway feature).</summary>
    private static bool ApplyRequestHead(HttpContext context, GatewayRequestFeature? feature, HttpRequestHead head)
    {
        var request = context.Request;
        request.Method = head.Method;
        Uri? absolute = null;
        if (Uri.TryCreate(head.Target, UriKind.Absolute, out var parsed) && (parsed.Scheme == Uri.UriSchemeHttp || parsed.Scheme == Uri.UriSchemeHttps))
        {
            absolute = parsed;
        }
        else if (head.Target.StartsWith('/') && feature is not null)
        {
            absolute = new Uri(feature.TargetUri, head.Target);
        }
        if (absolute is null) return false;
        if (feature is not null) feature.TargetUri = absolute;
        var pathAndQuery = absolute.PathAndQuery;
        var q = pathAndQuery.IndexOf('?');
        var path = q < 0 ? pathAndQuery : pathAndQuery[..q];
        request.Path = PathString.FromUriComponent(path);
        request.QueryString = q < 0 ? QueryString.Empty : QueryString.FromUriComponent(pathAndQuery[q..]);

        var contentLength = request.ContentLength;
        request.Headers.Clear();
        foreach (var (name, value) in head.Headers)
        {
            if (name.Equals("Content-Length", StringComparison.OrdinalIgnoreCase) || name.Equals("Transfer-Encoding", StringComparison.OrdinalIgnoreCase)) continue;
            request.Headers.Append(name, value);
        }
        request.ContentLength = contentLength;
        return true;
    }

    private static void ApplyBody(HttpContext context, Stream? body, long? length)
    {
        var request = context.Request;
        request.Body = body ?? Stream.Null;
        request.Headers.Remove(HeaderNames.TransferEncoding);
        if (body is null)
        {
            request.ContentLength = HttpMethods.IsPost(request.Method) || HttpMethods.IsPut(request.Method) ? 0 : null;
            context.Features.Set<IHttpRequestBodyDetectionFeature>(new BodyDetection(false));
            return;
        }
        request.ContentLength = length;
        if (length is null) request.Headers.TransferEncoding = "chunked";
        context.Features.Set<IHttpRequestBodyDetectionFeature>(new BodyDetection(length is null or > 0));
    }

    /// <summary>The service answered the request itself (e.g. a block page): it goes to the client, nothing is forwarded.</summary>
    private async Task AnswerAsync(HttpContext context, HttpResponseHead head, Stream? body, CancellationToken cancellationToken)
    {
        HttpHeads.ApplyResponse(context.Response, head);
        long? length = 0;
        if (body is not null)
        {
            var (ahead, exact) = await PrefixedStream.ReadAheadAsync(body, _caller.Registry.Settings.ReplayBufferSize, cancellationToken);
            body = ahead;
            length = exact ?? HttpHeads.DeclaredLength(head.Headers);
            if (exact is null && length is { } declared) body = new AdaptedBodyStream(body, declared, static (_, _) => ValueTask.CompletedTask);
        }
        context.Response.ContentLength = length;
        if (body is null || HttpMethods.IsHead(context.Request.Method)) return;
        await using (body)
        {
            await body.CopyToAsync(context.Response.Body, 64 * 1024, cancellationToken);
        }
    }

    private static Task WriteErrorAsync(HttpContext context, int status, byte[] text)
    {
        var response = context.Response;
        response.Clear();
        response.StatusCode = status;
        response.ContentType = "text/plain; charset=utf-8";
        response.Headers.CacheControl = "no-store";
        response.ContentLength = text.Length;
        return HttpMethods.IsHead(context.Request.Method) ? Task.CompletedTask : response.Body.WriteAsync(text).AsTask();
    }

    private sealed class BodyDetection(bool canHaveBody) : IHttpRequestBodyDetectionFeature
    {
        public bool CanHaveBody { get; } = canHaveBody;
    }
}
