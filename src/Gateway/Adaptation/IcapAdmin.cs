using Gateway.Admin;

namespace Gateway.Adaptation;

/// <summary><c>/readyz</c> check "icap": not ready while any configured ICAP service is marked down.</summary>
internal sealed class IcapReadinessCheck : IReadinessCheck
{
    private readonly IcapServiceRegistry _registry;

    public IcapReadinessCheck(IcapServiceRegistry registry) => _registry = registry;

    public string Name => "icap";

    public ValueTask<string?> CheckAsync(CancellationToken cancellationToken)
    {
        var down = _registry.Services.Where(s => s.Client.Health.IsDown).Select(s => $"{s.Name} ({s.Client.Health.DownReason})").ToArray();
        return ValueTask.FromResult(down.Length == 0 ? null : "ICAP services down: " + string.Join("; ", down));
    }
}

/// <summary><c>GET /icap/services</c> on the admin listener: every service with its state, ISTag, pool and OPTIONS.</summary>
internal sealed class IcapAdminHandler : IAdminHandler
{
    private readonly IcapServiceRegistry _registry;

    public IcapAdminHandler(IcapServiceRegistry registry) => _registry = registry;

    public string Prefix => "/icap";

    public Task HandleAsync(HttpContext context)
    {
        var path = context.Request.Path.Value ?? string.Empty;
        if (!path.Equals("/icap/services", StringComparison.OrdinalIgnoreCase) && !path.Equals("/icap", StringComparison.OrdinalIgnoreCase))
        {
            return AdminDispatcher.WriteJsonAsync(context, new { error = "not found", endpoints = new[] { "/icap/services" } }, StatusCodes.Status404NotFound);
        }
        var services = _registry.Services.Select(s =>
        {
            var health = s.Client.Health;
            var options = s.Client.ServiceOptions;
            return new
            {
                name = s.Name,
                uri = s.Config.Uri.ToString(),
                onError = s.Config.OnError.ToString(),
                state = health.IsDown ? "down" : "up",
                downReason = health.IsDown ? health.DownReason : null,
                downSince = health.IsDown ? health.DownSince : null,
                totalFailures = health.TotalFailures,
                isTag = s.Client.IsTag,
                connections = new { open = s.Client.OpenConnections, idle = s.Client.IdleConnections, limit = s.Client.ConnectionLimit },
                options = options is null ? null : new
                {
                    fetchedAt = options.FetchedAt,
                    expiresAt = options.ExpiresAt,
                    service = options.Service,
                    methods = options.Methods,
                    preview = options.Preview,
                    allow204 = options.Allows204,
                    allow206 = options.Allows206,
                    maxConnections = options.MaxConnections,
                    transferPreview = options.Headers["Transfer-Preview"],
                    transferIgnore = options.Headers["Transfer-Ignore"],
                    transferComplete = options.Headers["Transfer-Complete"],
                },
            };
        }).ToArray();
        return AdminDispatcher.WriteJsonAsync(context, new
        {
            reqmod = _registry.Settings.Reqmod,
            respmod = _registry.Settings.Respmod,
            services,
        });
    }
}
