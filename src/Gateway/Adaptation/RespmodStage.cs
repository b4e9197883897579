using Gateway.Icap.Client;
using Gateway.Icap.Protocol;
using Gateway.Proxy;

namespace Gateway.Adaptation;

/// <summary>
/// RESPMOD: a response stage (order 100) inside the YARP response transform and the forward proxy's transformer. The
/// origin body streams to each service of the chain while the adapted body streams to the client; status and headers
/// come from the last adapted head, and the framing (Content-Length or chunked) is fixed for the new body.
/// </summary>
internal sealed class RespmodStage : IResponseStage
{
    private readonly AdaptationCaller _caller;

    public RespmodStage(AdaptationCaller caller) => _caller = caller;

    public int Order => ProxyStageOrder.Respmod;

    public async ValueTask ApplyAsync(ResponseStageContext context, CancellationToken cancellationToken)
    {
        var http = context.HttpContext;
        var chain = _caller.ResolveChain(http, IcapMethod.Respmod);
        if (chain.Count == 0) return;

        var feature = http.Features.Get<GatewayRequestFeature>();
        var status = http.Response.StatusCode;
        var bodiless = HttpMethods.IsHead(http.Request.Method) || status is < 200 or 204 or 304;
        var requestHead = HttpHeads.FromRequest(http.Request, feature?.TargetUri);
        var responseHead = HttpHeads.FromResponse(http.Response);
        Stream? body = bodiless ? null : await context.GetBodyAsync(cancellationToken);
        long? length = bodiless ? null : http.Response.ContentLength;
        var changedHead = false;
        var changedBody = false;

        foreach (var name in chain)
        {
            var service = _caller.Registry.Get(name);
            if (service is null) continue; // validated at start-up; a route added by hot reload with a typo adapts nothing
            var request = AdaptationCaller.CreateRequest(http, IcapMethod.Respmod, requestHead, responseHead, body, length);
            var call = await _caller.CallAsync(service, request, body, cancellationToken);
            if (call.Error is not null && !call.Bypassed)
            {
                var (errorStatus, text) = _caller.FailResponse(service, IcapMethod.Respmod, call.Error);
                http.Response.Headers.Clear();
                http.Response.StatusCode = errorStatus;
                http.Response.ContentType = "text/plain; charset=utf-8";
                http.Response.Headers.CacheControl = "no-store";
                if (body is not null) await body.DisposeAsync();
                context.ReplaceBody(new MemoryStream(text, writable: false), text.Length);
                return;
            }
            if (call.Bypassed)
            {
                body = call.Body;
                changedBody |= body is not null;
                continue;
            }
            var result = call.Result!;
            if (result.IsTag is not null && feature is not null)
            {
                (feature.AdaptationTags ??= new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase))[service.Name] = result.IsTag;
            }
            if (result.Kind == IcapResultKind.Unchanged)
            {
                body = call.Body ?? body;
                changedBody |= call.Body is not null;
                length = call.BodyLength ?? length;
                continue;
            }
            responseHead = result.HttpResponse!;
            requestHead = result.HttpRequest ?? requestHead;
            changedHead = true;
            body = call.Body;
            changedBody = true;
            length = call.BodyLength;
            if (body is null) length = 0;
        }

        if (changedHead) HttpHeads.ApplyResponse(http.Response, responseHead);
        if (bodiless)
        {
            // HEAD, 1xx, 204, 304: no body goes to the client, whatever a service sent (disposing it frees its connection).
            if (body is not null && changedBody) await body.DisposeAsync();
            if (changedHead) http.Response.ContentLength = HttpHeads.DeclaredLength(responseHead.Headers);
            return;
        }
        if (!changedBody) return;

        if (body is null)
        {
            context.ReplaceBody(Stream.Null, 0);
            return;
        }
        if (length is null)
        {
            // Small bodies get an exact Content-Length; large ones keep a declared one (checked as they stream) or go chunked.
            var (ahead, exact) = await PrefixedStream.ReadAheadAsync(body, _caller.Registry.Settings.ReplayBufferSize, cancellationToken);
            body = ahead;
            length = exact;
            if (length is null && HttpHeads.DeclaredLength(responseHead.Headers) is { } declared)
            {
                body = new AdaptedBodyStream(body, declared, static (_, _) => ValueTask.CompletedTask);
                length = declared;
            }
        }
        context.ReplaceBody(body, length);
    }
}
