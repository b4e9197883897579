using Microsoft.Net.Http.Headers;

namespace Gateway.Proxy;

/// <summary>What a response stage sees: the client's HttpContext (response headers already copied from the origin),
/// the origin's response and the body so far.</summary>
public sealed class ResponseStageContext
{
    private Stream? _body;

    internal ResponseStageContext(HttpContext httpContext, HttpResponseMessage originResponse)
    {
        HttpContext = httpContext;
        OriginResponse = originResponse;
    }

    public HttpContext HttpContext { get; }

    public HttpResponseMessage OriginResponse { get; }

    /// <summary>True once a stage has taken or replaced the body: the pipeline then copies it to the client itself.</summary>
    public bool BodyTaken => _body is not null;

    /// <summary>The current body: the origin's, or what an earlier stage produced. Read it only to replace it.</summary>
    public async ValueTask<Stream> GetBodyAsync(CancellationToken cancellationToken)
        => _body ??= await OriginResponse.Content.ReadAsStreamAsync(cancellationToken);

    /// <summary>
    /// Replaces the body sent to the client. Set <c>HttpContext.Response.ContentLength</c> when the new length is known;
    /// otherwise it is cleared and the response is chunked.
    /// </summary>
    public void ReplaceBody(Stream body, long? contentLength = null)
    {
        _body = body;
        HttpContext.Response.ContentLength = contentLength;
        HttpContext.Response.Headers.Remove(HeaderNames.TransferEncoding);
    }
}

/// <summary>
/// A response-phase stage, run in <see cref="Order"/> inside the YARP response transform (and the forward proxy's
/// transformer): RESPMOD (100), response rewrite rules (200). It may change status and headers on
/// <c>HttpContext.Response</c> and replace the body; the body then streams through it to the client.
/// </summary>
public interface IResponseStage
{
    int Order { get; }

    ValueTask ApplyAsync(ResponseStageContext context, CancellationToken cancellationToken);
}

/// <summary>Runs the response stages and, when one took the body, streams the result to the client.</summary>
internal sealed class ResponsePipeline
{
    private readonly IResponseStage[] _stages;

    public ResponsePipeline(IEnumerable<IResponseStage> stages) => _stages = stages.OrderBy(s => s.Order).ToArray();

    public bool IsEmpty => _stages.Length == 0;

    /// <summary>Returns true when the pipeline wrote the body (the forwarder must not copy it).</summary>
    public async ValueTask<bool> RunAsync(HttpContext httpContext, HttpResponseMessage? originResponse, CancellationToken cancellationToken)
    {
        if (_stages.Length == 0 || originResponse is null)
        {
            return false;
        }
        var context = new ResponseStageContext(httpContext, originResponse);
        foreach (var stage in _stages)
        {
            await stage.ApplyAsync(context, cancellationToken);
        }
        if (!context.BodyTaken)
        {
            return false;
        }
        var body = await context.GetBodyAsync(cancellationToken);
        await using (body.ConfigureAwait(false))
        {
            if (!HttpMethods.IsHead(httpContext.Request.Method))
            {
                await body.CopyToAsync(httpContext.Response.Body, 64 * 1024, cancellationToken);
            }
        }
        return true;
    }
}
