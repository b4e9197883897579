using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Net;
using Gateway.Icap.Services;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Gateway.Icap.Server;

public static class IcapServerServiceCollectionExtensions
{
    /// <summary>
    /// The ICAP server: options bound from <paramref name="configuration"/> (the <c>Gateway:Icap:Server</c> section,
    /// validated at start), the service registry, the connection handler and the built-in <c>echo</c> and <c>filter</c>
    /// services (<c>filter</c> configured from <c>Services:filter</c> of that section).
    /// </summary>
    public static IServiceCollection AddIcapServer(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<IcapServerOptions>().Bind(configuration).ValidateOnStart();
        services.AddOptions<FilterServiceOptions>().Bind(configuration.GetSection("Services:filter"));
        return services.AddIcapServerCore();
    }

    /// <summary>The ICAP server configured in code.</summary>
    public static IServiceCollection AddIcapServer(this IServiceCollection services, Action<IcapServerOptions>? configure = null)
    {
        var builder = services.AddOptions<IcapServerOptions>().ValidateOnStart();
        if (configure is not null) builder.Configure(configure);
        services.AddOptions<FilterServiceOptions>();
        return services.AddIcapServerCore();
    }

    private static IServiceCollection AddIcapServerCore(this IServiceCollection services)
    {
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IValidateOptions<IcapServerOptions>, IcapServerOptionsValidator>());
        services.TryAddSingleton<IcapServiceRegistry>();
        services.TryAddSingleton<IcapConnectionHandler>();
        services.AddIcapService<EchoService>();
        services.AddIcapService<FilterService>();
        return services;
    }

    /// <summary>Registers a service; its <see cref="IcapService.Name"/> is its URI path.</summary>
    public static IServiceCollection AddIcapService<TService>(this IServiceCollection services) where TService : IcapService
    {
        services.TryAddSingleton<TService>();
        services.TryAddEnumerable(ServiceDescriptor.Singleton<IcapService, TService>(sp => sp.GetRequiredService<TService>()));
        return services;
    }

    /// <summary>Registers a service instance.</summary>
    public static IServiceCollection AddIcapService(this IServiceCollection services, IcapService service)
    {
        services.AddSingleton(service);
        return services;
    }

    private sealed class IcapServerOptionsValidator : IValidateOptions<IcapServerOptions>
    {
        public ValidateOptionsResult Validate(string? name, IcapServerOptions options)
        {
            var errors = options.Validate().ToList();
            return errors.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(errors);
        }
    }
}

public static class IcapKestrelExtensions
{
    /// <summary>Serves ICAP on this endpoint.</summary>
    public static ListenOptions UseIcapServer(this ListenOptions listenOptions)
    {
        listenOptions.UseConnectionHandler<IcapConnectionHandler>();
        return listenOptions;
    }

    /// <summary>
    /// Adds the ICAP endpoint at <see cref="IcapServerOptions.Listen"/> when <see cref="IcapServerOptions.Enabled"/>
    /// (options from <c>AddIcapServer</c>). Call inside <c>ConfigureKestrel</c>.
    /// </summary>
    public static KestrelServerOptions ListenIcap(this KestrelServerOptions kestrel)
    {
        var options = kestrel.ApplicationServices.GetRequiredService<IOptions<IcapServerOptions>>().Value;
        if (!options.Enabled) return kestrel;
        if (!IcapListenAddress.TryParse(options.Listen, out var parsed) || parsed is not { } address)
        {
            throw new InvalidOperationException($"{IcapServerOptions.SectionName}:Listen '{options.Listen}' is not host:port");
        }
        Action<ListenOptions> configure = lo => lo.UseIcapServer();
        switch (address.Host)
        {
            case "*":
                kestrel.ListenAnyIP(address.Port, configure);
                break;
            case "localhost":
                kestrel.ListenLocalhost(address.Port, configure);
                break;
            default:
                kestrel.Listen(IPAddress.Parse(address.Host), address.Port, configure);
                break;
        }
        return kestrel;
    }
}

/// <summary><c>host:port</c> of <see cref="IcapServerOptions.Listen"/>: an IP (v6 in brackets), <c>localhost</c>, or <c>*</c>/<c>0.0.0.0</c>.</summary>
internal readonly record struct IcapListenAddress(string Host, int Port)
{
    public static bool TryParse(string? value, [NotNullWhen(true)] out IcapListenAddress? address)
    {
        address = null;
        if (string.IsNullOrWhiteSpace(value)) return false;
        var s = value.Trim();
        if (s.StartsWith("icap://", StringComparison.OrdinalIgnoreCase)) s = s[7..].TrimEnd('/');
        var colon = s.LastIndexOf(':');
        if (colon <= 0 || !int.TryParse(s.AsSpan(colon + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var port) || port is < 0 or > 65535)
        {
            return false;
        }
        var host = s[..colon];
        if (host.StartsWith('[') && host.EndsWith(']')) host = host[1..^1];
        if (host is "*" or "+") host = "*";
        else if (host.Equals("localhost", StringComparison.OrdinalIgnoreCase)) host = "localhost";
        else if (!IPAddress.TryParse(host, out _)) return false;
        address = new IcapListenAddress(host, port);
        return true;
    }
}
