using Gateway.Adaptation;
using Gateway.Admin;
using Gateway.Caching;
using Gateway.Configuration;
using Gateway.IcapHost;
using Gateway.Observability;
using Gateway.Proxy;
using Gateway.Rules;

namespace Gateway;

/// <summary>Options for building the gateway in-process (tests, tools). The defaults are the production ones.</summary>
public sealed class GatewayAppOptions
{
    /// <summary>Content root: where <c>appsettings.json</c> is read and relative paths resolve. Default: current directory.</summary>
    public string? ContentRoot { get; init; }

    /// <summary>Extra configuration added last (highest precedence).</summary>
    public Action<IConfigurationBuilder>? ConfigureConfiguration { get; init; }

    /// <summary>Extra services registered after the gateway's own.</summary>
    public Action<IServiceCollection>? ConfigureServices { get; init; }

    /// <summary>Environment name (Production by default).</summary>
    public string? EnvironmentName { get; init; }
}

/// <summary>Builds the gateway: configuration, listeners, services and the proxy pipeline.</summary>
public static class GatewayApp
{
    /// <summary>Configuration defaults, at the lowest precedence: the contract's documented defaults.</summary>
    internal static readonly Dictionary<string, string?> Defaults = new()
    {
        ["Kestrel:Endpoints:Proxy:Url"] = "http://0.0.0.0:8080",
        ["Kestrel:Endpoints:Admin:Url"] = "http://127.0.0.1:9901",
    };

    public static WebApplication Build(string[] args, GatewayAppOptions? options = null)
    {
        options ??= new GatewayAppOptions();
        var builder = WebApplication.CreateBuilder(new WebApplicationOptions
        {
            Args = args,
            ContentRootPath = options.ContentRoot,
            EnvironmentName = options.EnvironmentName,
        });

        // Lowest precedence: the documented defaults; highest: the caller's overrides.
        builder.Configuration.Sources.Insert(0, new Microsoft.Extensions.Configuration.Memory.MemoryConfigurationSource { InitialData = Defaults });
        options.ConfigureConfiguration?.Invoke(builder.Configuration);

        builder.Logging.AddSimpleConsole(o =>
        {
            o.SingleLine = true;
            o.TimestampFormat = "yyyy-MM-ddTHH:mm:ss.fffZ ";
            o.UseUtcTimestamp = true;
        });

        var services = builder.Services;
        services.AddSingleton(TimeProvider.System);
        services.AddSingleton<ListenerRegistry>();
        services.AddSingleton<IGatewayConfigValidator, GatewaySectionValidator>();
        services.AddGatewayObservability(builder.Configuration);
        services.AddGatewayProxy(builder.Configuration);
        services.AddGatewayAdmin();
        services.AddGatewayIcapServer(builder.Configuration);
        services.AddGatewayRules(builder.Configuration);
        services.AddGatewayAdaptation(builder.Configuration);
        services.AddGatewayCache(builder.Configuration);
        options.ConfigureServices?.Invoke(services);

        builder.WebHost.ConfigureKestrel((context, kestrel) =>
        {
            kestrel.AddServerHeader = false;
            // A proxy streams uploads of any size unless told otherwise (Kestrel's own default is 30 MB).
            var maxBody = context.Configuration["Kestrel:Limits:MaxRequestBodySize"];
            kestrel.Limits.MaxRequestBodySize = long.TryParse(maxBody, out var limit) && limit >= 0 ? limit : null;
            var registry = kestrel.ApplicationServices.GetRequiredService<ListenerRegistry>();
            var loader = kestrel.Configure(context.Configuration.GetSection("Kestrel"), reloadOnChange: false);
            loader.Endpoint(ListenerRegistry.Proxy, ep => registry.ConfigureProxy(ep.ListenOptions));
            loader.Endpoint(ListenerRegistry.Admin, ep => registry.ConfigureAdmin(ep.ListenOptions));
            foreach (var extra in kestrel.ApplicationServices.GetServices<IListenerContributor>())
            {
                extra.Configure(kestrel, registry);
            }
        });

        // Validate the whole configuration at once, before anything is built or bound.
        ValidateConfiguration(builder.Configuration, services);

        var app = builder.Build();

        app.Services.GetRequiredService<GatewayTelemetryHost>().Start();

        // Admin listener: its own small dispatcher, never proxied.
        app.MapWhen(ListenerRegistry.IsAdmin, admin => admin.Run(AdminDispatcher.HandleAsync));

        // Proxy listener, in the order of ARCHITECTURE.md's data flow.
        app.UseGatewayAccessLog();
        app.UseGatewayProxyGate();
        foreach (var stage in app.Services.GetServices<IProxyPipelineStage>().OrderBy(s => s.Order))
        {
            var current = stage;
            app.Use(next => context => current.InvokeAsync(context, next));
        }
        app.UseForwardProxy();
        app.MapGatewayReverseProxy();
        return app;
    }

    /// <summary>
    /// Runs every registered <see cref="IGatewayConfigValidator"/> (they are stateless, created here without the
    /// container, which does not exist yet) and throws one exception listing every error.
    /// </summary>
    private static void ValidateConfiguration(IConfiguration configuration, IServiceCollection services)
    {
        var errors = new List<ConfigError>();
        foreach (var descriptor in services.Where(d => d.ServiceType == typeof(IGatewayConfigValidator)))
        {
            var validator = (IGatewayConfigValidator)(descriptor.ImplementationInstance
                ?? Activator.CreateInstance(descriptor.ImplementationType
                    ?? throw new InvalidOperationException("configuration validators must be registered by type or instance"))!);
            validator.Validate(configuration, errors);
        }
        if (errors.Count > 0)
        {
            throw new GatewayConfigurationException(errors);
        }
    }
}
