using Microsoft.Extensions.Logging;

namespace Gateway.Icap.Server;

internal static partial class IcapServerLog
{
    [LoggerMessage(EventId = 1, EventName = "IcapBadRequest", Level = LogLevel.Debug,
        Message = "ICAP connection {ConnectionId}: rejected with {StatusCode}: {Reason}")]
    public static partial void BadRequest(ILogger logger, string connectionId, int statusCode, string reason);

    [LoggerMessage(EventId = 2, EventName = "IcapConnectionAborted", Level = LogLevel.Debug,
        Message = "ICAP connection {ConnectionId}: aborted: {Reason}")]
    public static partial void ConnectionAborted(ILogger logger, string connectionId, string reason);

    [LoggerMessage(EventId = 3, EventName = "IcapServiceFailed", Level = LogLevel.Error,
        Message = "ICAP connection {ConnectionId}: service {Service} threw")]
    public static partial void ServiceFailed(ILogger logger, Exception exception, string connectionId, string service);

    [LoggerMessage(EventId = 4, EventName = "IcapServiceDidNotRespond", Level = LogLevel.Error,
        Message = "ICAP connection {ConnectionId}: service {Service} returned without answering; sent 500")]
    public static partial void ServiceDidNotRespond(ILogger logger, string connectionId, string service);

    [LoggerMessage(EventId = 5, EventName = "IcapRequestCompleted", Level = LogLevel.Debug,
        Message = "ICAP connection {ConnectionId}: {Method} {Service} -> {StatusCode} in {ElapsedMs:F1} ms")]
    public static partial void RequestCompleted(ILogger logger, string connectionId, string method, string service, int statusCode, double elapsedMs);

    [LoggerMessage(EventId = 6, EventName = "IcapConnectionLimit", Level = LogLevel.Warning,
        Message = "ICAP connection {ConnectionId}: over Max-Connections ({MaxConnections}); answering 503")]
    public static partial void OverConnectionLimit(ILogger logger, string connectionId, int maxConnections);
}

internal static class IcapServerMetrics
{
    private static readonly System.Diagnostics.Metrics.Counter<long> s_requests =
        IcapTelemetry.Meter.CreateCounter<long>("icap.server.requests", description: "ICAP requests answered by the server");

    private static readonly System.Diagnostics.Metrics.Histogram<double> s_duration =
        IcapTelemetry.Meter.CreateHistogram<double>("icap.server.request.duration", unit: "s", description: "ICAP request duration");

    private static readonly System.Diagnostics.Metrics.UpDownCounter<long> s_active =
        IcapTelemetry.Meter.CreateUpDownCounter<long>("icap.server.active_connections", description: "Open ICAP server connections");

    private static readonly System.Diagnostics.Metrics.Counter<long> s_rejected =
        IcapTelemetry.Meter.CreateCounter<long>("icap.server.rejected_connections", description: "Connections refused over Max-Connections");

    public static void RecordRequest(string service, string method, int status, double seconds)
    {
        var tags = new System.Diagnostics.TagList
        {
            { "icap.service", service },
            { "icap.method", method },
            { "icap.status_code", status },
        };
        s_requests.Add(1, tags);
        s_duration.Record(seconds, tags);
    }

    public static void ConnectionOpened() => s_active.Add(1);

    public static void ConnectionClosed() => s_active.Add(-1);

    public static void ConnectionRejected() => s_rejected.Add(1);
}
