using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace Gateway.Icap.Server;

/// <summary>
/// Kestrel connection handler for ICAP: <c>listenOptions.UseConnectionHandler&lt;IcapConnectionHandler&gt;()</c>.
/// A thin adapter over <see cref="IcapServerConnection"/>; counts connections for <c>Max-Connections</c>.
/// </summary>
public sealed class IcapConnectionHandler : ConnectionHandler
{
    private readonly IcapServiceRegistry _services;
    private readonly IOptionsMonitor<IcapServerOptions> _options;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private int _active;

    public IcapConnectionHandler(IcapServiceRegistry services, IOptionsMonitor<IcapServerOptions> options, ILoggerFactory loggerFactory,
        TimeProvider? timeProvider = null)
    {
        _services = services;
        _options = options;
        _logger = loggerFactory.CreateLogger("Gateway.Icap.Server");
        _time = timeProvider ?? TimeProvider.System;
    }

    /// <summary>Connections being served now.</summary>
    public int ActiveConnections => Volatile.Read(ref _active);

    public override async Task OnConnectedAsync(ConnectionContext connection)
    {
        var options = _options.CurrentValue;
        var active = Interlocked.Increment(ref _active);
        IcapServerMetrics.ConnectionOpened();
        try
        {
            var overLimit = active > options.MaxConnections;
            if (overLimit)
            {
                IcapServerMetrics.ConnectionRejected();
                IcapServerLog.OverConnectionLimit(_logger, connection.ConnectionId, options.MaxConnections);
            }
            var core = new IcapServerConnection(connection.Transport, _services, options, _logger, _time, connection.ConnectionId,
                connection.RemoteEndPoint as IPEndPoint, overLimit);
            var lifetime = connection.Features.Get<IConnectionLifetimeNotificationFeature>();
            await core.RunAsync(lifetime?.ConnectionClosedRequested ?? CancellationToken.None, connection.ConnectionClosed);
        }
        finally
        {
            Interlocked.Decrement(ref _active);
            IcapServerMetrics.ConnectionClosed();
        }
    }
}
