using System.Collections.Concurrent;
using System.Diagnostics;
using Gateway.Observability;
using Gateway.Tests.Infrastructure;
using Gateway.Tests.Proxy;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using OpenTelemetry;
using OpenTelemetry.Metrics;
using OpenTelemetry.Trace;

namespace Gateway.Tests.Observability;

public sealed class TelemetryTests
{
    [Fact]
    public async Task ProxiedRequest_EmitsTraceMetricsAndOneAccessLogLine()
    {
        var collector = new Collector();
        var logs = new LogCollector();
        await using var backend = await TestBackend.StartAsync(ctx => ctx.Response.WriteAsync("12345"));
        await using var gw = await GatewayHost.StartAsync(ReverseProxyTests.RouteTo(backend.Uri, new() { ["Logging:LogLevel:Gateway.AccessLog"] = "Information" }), services: s =>
        {
            s.AddSingleton<ITelemetryConfigurator>(collector);
            s.AddSingleton<ILoggerProvider>(logs);
        });
        using var client = gw.CreateClient();

        Assert.Equal("12345", await client.GetStringAsync("/telemetry?x=1"));
        gw.Services.GetRequiredService<GatewayTelemetryHost>().Dispose(); // flush

        Assert.Contains(collector.Activities, a => a.Source.Name == "Microsoft.AspNetCore");
        Assert.Contains(collector.Metrics, m => m == "gateway.proxy.requests");
        var line = Assert.Single(logs.Lines, l => l.Category == "Gateway.AccessLog").Message;
        Assert.Contains("127.0.0.1 GET http://127.0.0.1:", line);
        Assert.Contains("/telemetry?x=1 200 5 ", line);
        Assert.Contains(backend.Uri.ToString().TrimEnd('/'), line);
    }

    private sealed class Collector : ITelemetryConfigurator
    {
        public ConcurrentBag<Activity> Activities { get; } = [];
        public ConcurrentBag<string> Metrics { get; } = [];

        public void ConfigureTracing(TracerProviderBuilder tracing) => tracing.AddProcessor(new SimpleActivityExportProcessor(new ActivityExporter(this)));
        public void ConfigureMetrics(MeterProviderBuilder metrics) => metrics.AddReader(new BaseExportingMetricReader(new MetricExporter(this)));

        private sealed class ActivityExporter(Collector owner) : BaseExporter<Activity>
        {
            public override ExportResult Export(in Batch<Activity> batch)
            {
                foreach (var a in batch) { owner.Activities.Add(a); }
                return ExportResult.Success;
            }
        }

        private sealed class MetricExporter(Collector owner) : BaseExporter<Metric>
        {
            public override ExportResult Export(in Batch<Metric> batch)
            {
                foreach (var m in batch) { owner.Metrics.Add(m.Name); }
                return ExportResult.Success;
            }
        }
    }

    private sealed class LogCollector : ILoggerProvider
    {
        public ConcurrentQueue<(string Category, string Message)> Lines { get; } = new();
        public ILogger CreateLogger(string categoryName) => new Logger(this, categoryName);
        public void Dispose() { }

        private sealed class Logger(LogCollector owner, string category) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
            public bool IsEnabled(LogLevel logLevel) => true;
            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
                => owner.Lines.Enqueue((category, formatter(state, exception)));
        }
    }
}
