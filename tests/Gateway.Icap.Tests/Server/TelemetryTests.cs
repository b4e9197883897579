using System.Diagnostics;
using System.Diagnostics.Metrics;
using Gateway.Icap.Protocol;

namespace Gateway.Icap.Tests.Server;

public sealed class TelemetryTests
{
    [Fact]
    public async Task Requests_AreCountedByServiceMethodAndStatus_AndTraced()
    {
        var measurements = new List<(string Name, long Value, Dictionary<string, object?> Tags)>();
        using var meters = new MeterListener();
        meters.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == IcapTelemetry.Name) l.EnableMeasurementEvents(instrument);
        };
        meters.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
        {
            var dict = new Dictionary<string, object?>();
            foreach (var t in tags) dict[t.Key] = t.Value;
            lock (measurements) measurements.Add((instrument.Name, value, dict));
        });
        meters.Start();
        var activities = new List<Activity>();
        using var activityListener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == IcapTelemetry.Name,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = a => { lock (activities) activities.Add(a); },
        };
        ActivitySource.AddActivityListener(activityListener);

        await using (var server = new PipeServer())
        {
            await server.Client.SendAsync(IcapRequests.Respmod("echo", "x", "Allow: 204\r\nX-Telemetry-Probe: 1\r\n"));
            Assert.Equal(204, (await server.Client.ReadResponseAsync()).Status);
        }

        lock (measurements)
        {
            Assert.Contains(measurements, m => m.Name == "icap.server.requests" && m.Value == 1
                && (string?)m.Tags["icap.service"] == "echo" && (string?)m.Tags["icap.method"] == "RESPMOD" && (int?)m.Tags["icap.status_code"] == 204);
        }
        lock (activities)
        {
            Assert.Contains(activities, a => a.OperationName == "ICAP RESPMOD" && (string?)a.GetTagItem("icap.service") == "echo"
                && (int?)a.GetTagItem("icap.status_code") == 204);
        }
    }
}
