namespace Gateway.Icap.Client;

public enum IcapServiceState
{
    /// <summary>In service.</summary>
    Up,

    /// <summary>Marked down (failure limit reached, or OPTIONS failed) until the revival time.</summary>
    Down,
}

/// <summary>
/// Failure accounting of one service, like Squid's <c>icap_service_failure_limit</c> (N failures within a window) and
/// <c>icap_service_revival_delay</c>: reaching the limit marks the service down; after the delay the next use probes it.
/// Thread-safe; time comes from the injected <see cref="TimeProvider"/>.
/// </summary>
public sealed class IcapServiceHealth
{
    private readonly object _lock = new();
    private readonly Queue<long> _failures = new();
    private readonly TimeProvider _time;
    private readonly int _limit;
    private readonly TimeSpan _window;
    private readonly TimeSpan _revivalDelay;
    private long _downUntil;
    private bool _down;

    public IcapServiceHealth(int failureLimit, TimeSpan failureWindow, TimeSpan revivalDelay, TimeProvider time)
    {
        _limit = failureLimit;
        _window = failureWindow;
        _revivalDelay = revivalDelay;
        _time = time;
    }

    /// <summary>Why the service was last marked down, or null.</summary>
    public string? DownReason { get; private set; }

    public DateTimeOffset? DownSince { get; private set; }

    /// <summary>Total failures ever recorded.</summary>
    public long TotalFailures { get; private set; }

    /// <summary>Down, and the revival delay has not passed yet.</summary>
    public bool IsDown
    {
        get
        {
            lock (_lock)
            {
                return _down && _time.GetTimestamp() < _downUntil;
            }
        }
    }

    /// <summary>Marked down, but the revival delay has passed: the next use should probe (re-fetch OPTIONS).</summary>
    public bool NeedsProbe
    {
        get
        {
            lock (_lock)
            {
                return _down && _time.GetTimestamp() >= _downUntil;
            }
        }
    }

    public IcapServiceState State => IsDown ? IcapServiceState.Down : IcapServiceState.Up;

    /// <summary>Records a failure; returns true when this failure marked the service down.</summary>
    public bool RecordFailure(string reason)
    {
        lock (_lock)
        {
            TotalFailures++;
            var now = _time.GetTimestamp();
            _failures.Enqueue(now);
            while (_failures.Count > 0 && _time.GetElapsedTime(_failures.Peek(), now) > _window)
            {
                _failures.Dequeue();
            }
            if (_limit > 0 && _failures.Count >= _limit && !(_down && now < _downUntil))
            {
                MarkDownLocked(reason, now);
                return true;
            }
            return false;
        }
    }

    /// <summary>Marks the service down at once (a failed OPTIONS or failed revival probe).</summary>
    public void MarkDown(string reason)
    {
        lock (_lock)
        {
            MarkDownLocked(reason, _time.GetTimestamp());
        }
    }

    /// <summary>A successful probe or transaction after the revival delay: back in service.</summary>
    public bool MarkUp()
    {
        lock (_lock)
        {
            if (!_down) return false;
            _down = false;
            _failures.Clear();
            DownReason = null;
            DownSince = null;
            return true;
        }
    }

    private void MarkDownLocked(string reason, long now)
    {
        if (!_down) DownSince = _time.GetUtcNow();
        _down = true;
        _downUntil = now + (long)(_revivalDelay.TotalSeconds * _time.TimestampFrequency);
        DownReason = reason;
        _failures.Clear();
    }
}
