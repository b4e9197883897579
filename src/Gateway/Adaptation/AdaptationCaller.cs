using System.Diagnostics;
using System.Text;
using Gateway.Icap.Client;
using Gateway.Icap.Protocol;
using Gateway.Proxy;

namespace Gateway.Adaptation;

/// <summary>What one ICAP call in a chain gave: the message goes on (possibly changed), or the chain stops.</summary>
internal readonly record struct CallResult(IcapResult? Result, Stream? Body, long? BodyLength, IcapClientException? Error, bool Bypassed);

/// <summary>
/// Shared by the REQMOD and RESPMOD stages: resolves the chain for a request, runs one ICAP call with its Activity,
/// metrics and Fail/Bypass policy, and wraps the adapted body so the call completes when the body has streamed.
/// </summary>
internal sealed class AdaptationCaller
{
    private readonly ILogger _logger;

    public AdaptationCaller(IcapServiceRegistry registry, ILogger<AdaptationCaller> logger)
    {
        Registry = registry;
        _logger = logger;
    }

    public IcapServiceRegistry Registry { get; }

    public IReadOnlyList<string> ResolveChain(HttpContext context, IcapMethod method) => Registry.ResolveChain(context, method);

    public async Task<CallResult> CallAsync(IcapServiceEntry service, IcapAdaptationRequest request, Stream? body, CancellationToken cancellationToken)
    {
        var method = request.Method.ToToken();
        var parent = Activity.Current;
        var activity = AdaptationTelemetry.StartCall(service.Name, method, service.Config.Uri);
        var started = Stopwatch.GetTimestamp();
        IcapResult result;
        try
        {
            result = await service.Client.SendAsync(request, cancellationToken);
        }
        catch (IcapClientException ex)
        {
            Activity.Current = parent;
            activity?.SetTag("icap.error", ex.Error.ToString());
            activity?.SetStatus(ActivityStatusCode.Error, ex.Message);
            activity?.Dispose();
            var elapsed = Stopwatch.GetElapsedTime(started).TotalSeconds;
            AdaptationTelemetry.Record(service.Name, method, "error", elapsed);
            var canBypass = service.Config.OnError == IcapOnError.Bypass && !ex.BodyConsumed;
            if (canBypass)
            {
                AdaptationTelemetry.Record(service.Name, method, "bypass", elapsed);
                AdaptationLog.Bypassed(_logger, method, service.Name, ex.Message);
                return new CallResult(null, ex.OriginalBody ?? body, request.BodyLength, ex, Bypassed: true);
            }
            if (ex.OriginalBody is not null) await ex.OriginalBody.DisposeAsync();
            return new CallResult(null, null, null, ex, Bypassed: false);
        }
        catch
        {
            Activity.Current = parent;
            activity?.Dispose();
            throw;
        }
        Activity.Current = parent;
        activity?.SetTag("icap.status", result.StatusCode);
        if (result.IsTag is not null) activity?.SetTag("icap.istag", result.IsTag);
        AdaptationLog.Adapted(_logger, method, service.Name, result.StatusCode, result.IsTag);
        var outcome = result.StatusCode switch { 200 => "200", 204 => "204", 206 => "206", 0 => "ignored", _ => "other" };

        async ValueTask EndAsync(Exception? error, long bodyBytes)
        {
            activity?.SetTag("icap.bytes_sent", result.BytesSent);
            activity?.SetTag("icap.bytes_received", result.BytesReceived);
            activity?.SetTag("icap.body_bytes", bodyBytes);
            if (error is not null)
            {
                activity?.SetStatus(ActivityStatusCode.Error, error.Message);
                AdaptationLog.FailedMidStream(_logger, method, service.Name, error.Message);
            }
            activity?.Dispose();
            AdaptationTelemetry.Record(service.Name, method, error is null ? outcome : "error", Stopwatch.GetElapsedTime(started).TotalSeconds);
            await result.DisposeAsync();
        }

        if (result.Body is null)
        {
            await EndAsync(null, 0);
            return new CallResult(result, null, result.Kind == IcapResultKind.Unchanged ? null : 0, null, false);
        }
        var declared = result.Kind == IcapResultKind.Unchanged ? result.BodyLength : null;
        return new CallResult(result, new AdaptedBodyStream(result.Body, null, EndAsync), declared ?? result.BodyLength, null, false);
    }

    /// <summary>The short plain-text error the client gets when a service fails with OnError=Fail.</summary>
    public (int Status, byte[] Body) FailResponse(IcapServiceEntry service, IcapMethod method, IcapClientException error)
    {
        var status = method == IcapMethod.Reqmod ? StatusCodes.Status500InternalServerError : StatusCodes.Status502BadGateway;
        AdaptationLog.Failed(_logger, method.ToToken(), service.Name, error.Error.ToString(), status, error.Message);
        var phrase = status == 500 ? "500 Internal Server Error" : "502 Bad Gateway";
        var text = $"{phrase}: ICAP service '{service.Name}' failed ({Describe(error.Error)})\n";
        return (status, Encoding.UTF8.GetBytes(text));
    }

    private static string Describe(IcapClientError error) => error switch
    {
        IcapClientError.ConnectFailed => "unreachable",
        IcapClientError.Timeout => "timed out",
        IcapClientError.ConnectionClosed => "connection closed",
        IcapClientError.ProtocolError => "invalid answer",
        IcapClientError.ServiceError => "error answer",
        IcapClientError.ServiceDown => "service down",
        IcapClientError.BodySourceFailed => "body unavailable",
        _ => error.ToString(),
    };

    public static IcapAdaptationRequest CreateRequest(HttpContext context, IcapMethod method, HttpRequestHead requestHead, HttpResponseHead? responseHead,
        Stream? body, long? bodyLength)
        => new()
        {
            Method = method,
            HttpRequest = requestHead,
            HttpResponse = responseHead,
            Body = body,
            BodyLength = body is null ? null : bodyLength,
            ClientIp = context.Connection.RemoteIpAddress?.ToString(),
            AuthenticatedUser = HttpHeads.GetUser(context),
        };
}
