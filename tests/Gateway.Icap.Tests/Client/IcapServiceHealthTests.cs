using Gateway.Icap.Client;

namespace Gateway.Icap.Tests.Client;

public sealed class IcapServiceHealthTests
{
    private sealed class ManualTime : TimeProvider
    {
        private long _ticks;

        public override long TimestampFrequency => TimeSpan.TicksPerSecond;

        public override long GetTimestamp() => _ticks;

        public override DateTimeOffset GetUtcNow() => DateTimeOffset.UnixEpoch.AddTicks(_ticks);

        public void Advance(TimeSpan by) => _ticks += by.Ticks;
    }

    [Fact]
    public void FailureLimit_WithinWindow_MarksDown_UntilRevivalDelay()
    {
        var time = new ManualTime();
        var health = new IcapServiceHealth(3, TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(30), time);

        Assert.False(health.RecordFailure("a"));
        Assert.False(health.RecordFailure("b"));
        Assert.True(health.RecordFailure("c"));
        Assert.True(health.IsDown);
        Assert.Equal(IcapServiceState.Down, health.State);
        Assert.Equal("c", health.DownReason);

        time.Advance(TimeSpan.FromSeconds(29));
        Assert.True(health.IsDown);
        Assert.False(health.NeedsProbe);
        time.Advance(TimeSpan.FromSeconds(2));
        Assert.False(health.IsDown);
        Assert.True(health.NeedsProbe);
        Assert.True(health.MarkUp());
        Assert.False(health.NeedsProbe);
        Assert.Equal(IcapServiceState.Up, health.State);
    }

    [Fact]
    public void Failures_OutsideTheWindow_DoNotAccumulate()
    {
        var time = new ManualTime();
        var health = new IcapServiceHealth(2, TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(30), time);

        Assert.False(health.RecordFailure("a"));
        time.Advance(TimeSpan.FromSeconds(11));
        Assert.False(health.RecordFailure("b"));
        Assert.False(health.IsDown);
        Assert.True(health.RecordFailure("c"));
        Assert.Equal(3, health.TotalFailures);
    }

    [Fact]
    public void MarkDown_IsImmediate()
    {
        var time = new ManualTime();
        var health = new IcapServiceHealth(10, TimeSpan.FromSeconds(10), TimeSpan.FromSeconds(5), time);

        health.MarkDown("OPTIONS answered 404");

        Assert.True(health.IsDown);
        Assert.Equal(DateTimeOffset.UnixEpoch, health.DownSince);
        time.Advance(TimeSpan.FromSeconds(5));
        Assert.True(health.NeedsProbe);
    }
}
