using System.Diagnostics;
using System.Diagnostics.Metrics;
using Gateway.Observability;

namespace Gateway.Adaptation;

/// <summary>ICAP client instruments (<c>gateway.icap.client.*</c>) on the gateway's Meter, and the per-call Activity.</summary>
internal static class AdaptationTelemetry
{
    /// <summary>ICAP transactions by service, method and outcome (200, 204, 206, error, bypass).</summary>
    public static readonly Counter<long> Outcomes = GatewayTelemetry.Meter.CreateCounter<long>(
        "gateway.icap.client.outcomes", unit: "{transaction}", description: "ICAP client transactions by outcome (200/204/206/error/bypass)");

    /// <summary>Time from sending the ICAP request to the end of its answer (body included).</summary>
    public static readonly Histogram<double> Duration = GatewayTelemetry.Meter.CreateHistogram<double>(
        "gateway.icap.client.duration", unit: "s", description: "Duration of ICAP client transactions");

    public static readonly Counter<long> StateChanges = GatewayTelemetry.Meter.CreateCounter<long>(
        "gateway.icap.client.state_changes", unit: "{change}", description: "ICAP services marked down or revived");

    private static readonly object s_lock = new();
    private static readonly List<IcapServiceRegistry> s_registries = [];

    static AdaptationTelemetry()
    {
        GatewayTelemetry.Meter.CreateObservableGauge("gateway.icap.client.service_up", ObserveState, unit: "{service}",
            description: "1 when the ICAP service is in service, 0 when it is marked down");
        GatewayTelemetry.Meter.CreateObservableGauge("gateway.icap.client.connections", ObserveConnections, unit: "{connection}",
            description: "Open connections to the ICAP service (pooled idle ones included)");
    }

    public static void Register(IcapServiceRegistry registry)
    {
        lock (s_lock) s_registries.Add(registry);
    }

    public static void Unregister(IcapServiceRegistry registry)
    {
        lock (s_lock) s_registries.Remove(registry);
    }

    private static IEnumerable<Measurement<int>> ObserveState()
    {
        IcapServiceRegistry[] registries;
        lock (s_lock) registries = s_registries.ToArray();
        foreach (var r in registries)
        {
            foreach (var s in r.Services)
            {
                yield return new Measurement<int>(s.Client.Health.IsDown ? 0 : 1, new KeyValuePair<string, object?>("icap.service", s.Name));
            }
        }
    }

    private static IEnumerable<Measurement<int>> ObserveConnections()
    {
        IcapServiceRegistry[] registries;
        lock (s_lock) registries = s_registries.ToArray();
        foreach (var r in registries)
        {
            foreach (var s in r.Services)
            {
                yield return new Measurement<int>(s.Client.OpenConnections, new KeyValuePair<string, object?>("icap.service", s.Name));
            }
        }
    }

    public static Activity? StartCall(string service, string method, Uri uri)
    {
        var activity = GatewayTelemetry.ActivitySource.StartActivity("ICAP " + method, ActivityKind.Client);
        if (activity is not null)
        {
            activity.SetTag("icap.service", service);
            activity.SetTag("icap.method", method);
            activity.SetTag("server.address", uri.Host);
            activity.SetTag("server.port", uri.IsDefaultPort || uri.Port <= 0 ? 1344 : uri.Port);
        }
        return activity;
    }

    public static void Record(string service, string method, string outcome, double seconds)
    {
        var tags = new TagList
        {
            { "icap.service", service },
            { "icap.method", method },
            { "outcome", outcome },
        };
        Outcomes.Add(1, tags);
        Duration.Record(seconds, tags);
    }
}

internal static partial class AdaptationLog
{
    [LoggerMessage(EventId = 4000, Level = LogLevel.Warning, Message = "ICAP service {Service} marked down for {RevivalSeconds} s: {Reason}")]
    public static partial void ServiceDown(ILogger logger, string service, string reason, double revivalSeconds);

    [LoggerMessage(EventId = 4001, Level = LogLevel.Information, Message = "ICAP service {Service} is back in service")]
    public static partial void ServiceRevived(ILogger logger, string service);

    [LoggerMessage(EventId = 4002, Level = LogLevel.Warning, Message = "ICAP {Method} to {Service} failed, message passed unadapted (OnError=Bypass): {Reason}")]
    public static partial void Bypassed(ILogger logger, string method, string service, string reason);

    [LoggerMessage(EventId = 4003, Level = LogLevel.Warning, Message = "ICAP {Method} to {Service} failed ({Error}), answering {Status}: {Reason}")]
    public static partial void Failed(ILogger logger, string method, string service, string error, int status, string reason);

    [LoggerMessage(EventId = 4004, Level = LogLevel.Debug, Message = "ICAP {Method} to {Service}: {Status} ISTag {IsTag}")]
    public static partial void Adapted(ILogger logger, string method, string service, int status, string? isTag);

    [LoggerMessage(EventId = 4005, Level = LogLevel.Warning, Message = "ICAP {Method} to {Service} failed mid-stream; the client connection is aborted: {Reason}")]
    public static partial void FailedMidStream(ILogger logger, string method, string service, string reason);
}
