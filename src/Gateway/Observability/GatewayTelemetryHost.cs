using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;

namespace Gateway.Observability;

/// <summary>Lets tests and extensions add exporters or sources to the OpenTelemetry SDK.</summary>
public interface ITelemetryConfigurator
{
    void ConfigureTracing(TracerProviderBuilder tracing) { }
    void ConfigureMetrics(MeterProviderBuilder metrics) { }
}

/// <summary>
/// Owns the OpenTelemetry SDK (traces and metrics). OpenTelemetry.Extensions.Hosting is not available, so the SDK is
/// created once at start-up and disposed (final flush) with the service provider. OTLP export is on only when the
/// standard <c>OTEL_EXPORTER_OTLP_ENDPOINT</c> variable is set; otherwise the SDK is not started at all.
/// </summary>
public sealed class GatewayTelemetryHost : IDisposable
{
    private static readonly string[] s_sources = [GatewayTelemetry.Name, "Gateway.*", "Microsoft.AspNetCore", "System.Net.Http", "Yarp.ReverseProxy"];
    private static readonly string[] s_meters = [GatewayTelemetry.Name, "Gateway.*", "Microsoft.AspNetCore.Hosting", "Microsoft.AspNetCore.Server.Kestrel", "System.Net.Http"];

    private readonly IEnumerable<ITelemetryConfigurator> _configurators;
    private readonly IConfiguration _configuration;
    private OpenTelemetrySdk? _sdk;

    public GatewayTelemetryHost(IEnumerable<ITelemetryConfigurator> configurators, IConfiguration configuration)
    {
        _configurators = configurators;
        _configuration = configuration;
    }

    public bool OtlpEnabled => !string.IsNullOrWhiteSpace(_configuration["OTEL_EXPORTER_OTLP_ENDPOINT"]);

    public void Start()
    {
        if (_sdk is not null)
        {
            return;
        }
        var otlp = OtlpEnabled;
        if (!otlp && !_configurators.Any())
        {
            // Nothing would export: don't listen at all, so no Activity is created and no measurement aggregated
            // on the hot path. Instruments stay usable (and free) without a listener.
            return;
        }
        var serviceName = _configuration["OTEL_SERVICE_NAME"] ?? "gateway";
        _sdk = OpenTelemetrySdk.Create(builder =>
        {
            builder.ConfigureResource(r => r.AddService(serviceName));
            builder.WithTracing(t =>
            {
                t.AddSource(s_sources);
                foreach (var c in _configurators)
                {
                    c.ConfigureTracing(t);
                }
            });
            builder.WithMetrics(m =>
            {
                m.AddMeter(s_meters);
                foreach (var c in _configurators)
                {
                    c.ConfigureMetrics(m);
                }
            });
            if (otlp)
            {
                builder.UseOtlpExporter();
            }
        });
    }

    public void Dispose() => _sdk?.Dispose();
}
