using System.Text;
using Gateway.Observability;
using Yarp.ReverseProxy.Forwarder;

namespace Gateway.Proxy;

/// <summary>
/// The one place where errors on the proxy path become responses: status, a short plain-text body saying what
/// happened, a log line and a counter.
/// </summary>
internal static partial class ProxyErrors
{
    public static Task WriteAsync(HttpContext context, int status, string kind, string message, ILogger? logger = null)
    {
        GatewayTelemetry.ProxyErrors.Add(1, new KeyValuePair<string, object?>("kind", kind));
        if (logger is not null)
        {
            Log.ProxyError(logger, kind, status, context.Request.Method, context.Request.Path.ToString(), message);
        }
        if (context.Response.HasStarted)
        {
            context.Abort();
            return Task.CompletedTask;
        }
        context.Response.Clear();
        context.Response.StatusCode = status;
        context.Response.ContentType = "text/plain; charset=utf-8";
        context.Response.Headers.CacheControl = "no-store";
        var body = Encoding.UTF8.GetBytes(message + "\n");
        context.Response.ContentLength = body.Length;
        return HttpMethods.IsHead(context.Request.Method) ? Task.CompletedTask : context.Response.Body.WriteAsync(body).AsTask();
    }

    /// <summary>Turns a YARP forwarding error into 502/504 with a body saying which, if the response has not started.</summary>
    public static Task ReportForwarderErrorAsync(HttpContext context, ForwarderError error, string destination, ILogger logger)
    {
        var feature = context.GetForwarderErrorFeature();
        var detail = feature?.Exception?.GetBaseException().Message;
        switch (error)
        {
            case ForwarderError.None:
                return Task.CompletedTask;
            case ForwarderError.RequestTimedOut:
                return WriteAsync(context, StatusCodes.Status504GatewayTimeout, "origin_timeout",
                    $"504 Gateway Timeout: the origin {destination} did not answer in time", logger);
            case ForwarderError.Request:
            case ForwarderError.NoAvailableDestinations:
                return WriteAsync(context, StatusCodes.Status502BadGateway, "origin_unreachable",
                    $"502 Bad Gateway: the origin {destination} is unreachable ({detail ?? error.ToString()})", logger);
            case ForwarderError.RequestCanceled:
            case ForwarderError.RequestBodyCanceled:
            case ForwarderError.ResponseBodyCanceled:
                // The client went away: nothing to answer.
                GatewayTelemetry.ProxyErrors.Add(1, new KeyValuePair<string, object?>("kind", "client_canceled"));
                return Task.CompletedTask;
            case ForwarderError.RequestBodyClient when IsTooLarge(feature?.Exception):
                return WriteAsync(context, StatusCodes.Status413PayloadTooLarge, "client_body_too_large",
                    "413 Payload Too Large: the request body exceeds Kestrel:Limits:MaxRequestBodySize", logger);
            case ForwarderError.RequestBodyClient:
                return WriteAsync(context, StatusCodes.Status400BadRequest, "client_body",
                    "400 Bad Request: the request body could not be read from the client", logger);
            default:
                return WriteAsync(context, StatusCodes.Status502BadGateway, "origin_error",
                    $"502 Bad Gateway: error talking to the origin {destination} ({error}{(detail is null ? "" : ": " + detail)})", logger);
        }
    }

    private static bool IsTooLarge(Exception? exception)
    {
        for (var e = exception; e is not null; e = e.InnerException)
        {
            if (e is BadHttpRequestException { StatusCode: StatusCodes.Status413PayloadTooLarge })
            {
                return true;
            }
        }
        return false;
    }

    private static partial class Log
    {
        [LoggerMessage(EventId = 1100, Level = LogLevel.Information, Message = "Proxy error {Kind} ({Status}) for {Method} {Path}: {Message}")]
        public static partial void ProxyError(ILogger logger, string kind, int status, string method, string path, string message);
    }
}
