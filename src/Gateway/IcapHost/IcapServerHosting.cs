using System.Net;
using Gateway.Configuration;
using Gateway.Icap.Server;
using Gateway.Proxy;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.Options;

namespace Gateway.IcapHost;

/// <summary>
/// Hosts the ICAP server of <c>Gateway.Icap</c> in the gateway: its options from <c>Gateway:Icap:Server</c>, its Kestrel
/// listener at <c>Listen</c> (registered as the "Icap" listener), its settings validated with the rest of the configuration.
/// </summary>
internal static class IcapServerHosting
{
    public const string Section = "Gateway:Icap:Server";

    public static IServiceCollection AddGatewayIcapServer(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddIcapServer(configuration.GetSection(Section));
        services.AddSingleton<IListenerContributor, IcapListener>();
        services.AddSingleton<IGatewayConfigValidator, IcapServerConfigValidator>();
        return services;
    }

    private sealed class IcapListener : IListenerContributor
    {
        public void Configure(KestrelServerOptions kestrel, ListenerRegistry registry)
        {
            var options = kestrel.ApplicationServices.GetRequiredService<IOptions<IcapServerOptions>>().Value;
            if (!options.Enabled || !IcapListenAddress.TryParse(options.Listen, out var parsed) || parsed is not { } address)
            {
                return; // invalid Listen is reported by the validator before anything binds
            }
            void Configure(ListenOptions lo)
            {
                registry.Add(ListenerRegistry.Icap, lo);
                lo.UseIcapServer();
            }
            switch (address.Host)
            {
                case "*":
                    kestrel.ListenAnyIP(address.Port, Configure);
                    break;
                case "localhost":
                    kestrel.ListenLocalhost(address.Port, Configure);
                    break;
                default:
                    kestrel.Listen(IPAddress.Parse(address.Host), address.Port, Configure);
                    break;
            }
        }
    }

    private sealed class IcapServerConfigValidator : IGatewayConfigValidator
    {
        public void Validate(IConfiguration configuration, ICollection<ConfigError> errors)
        {
            var section = configuration.GetSection(Section);
            ConfigChecks.Bool(section, nameof(IcapServerOptions.Enabled), errors);
            ConfigChecks.PositiveInt(section, nameof(IcapServerOptions.MaxConnections), errors);
            ConfigChecks.PositiveTimeSpan(section, nameof(IcapServerOptions.IdleTimeout), errors);
            ConfigChecks.PositiveTimeSpan(section, nameof(IcapServerOptions.RequestHeadersTimeout), errors);
            ConfigChecks.PositiveTimeSpan(section, nameof(IcapServerOptions.OptionsTtl), errors);
            ConfigChecks.PositiveInt(section, nameof(IcapServerOptions.MaxHeaderBytes), errors);
            ConfigChecks.PositiveInt(section, nameof(IcapServerOptions.MaxHeaderCount), errors);
            ConfigChecks.PositiveInt(section, nameof(IcapServerOptions.MaxLineLength), errors);
            ConfigChecks.PositiveInt(section, nameof(IcapServerOptions.MaxChunkSize), errors, long.MaxValue);
            var listen = section[nameof(IcapServerOptions.Listen)];
            if (listen is not null && !IcapListenAddress.TryParse(listen, out _))
            {
                errors.Add(new ConfigError(section.Path + ":Listen", $"'{listen}' is not host:port (host: an IP address, localhost or *)"));
            }
            if (errors.Count == 0)
            {
                // Range checks of the library itself (bound values), reported under the same keys.
                var options = new IcapServerOptions();
                section.Bind(options);
                foreach (var message in options.Validate())
                {
                    var colon = message.IndexOf(' ');
                    errors.Add(new ConfigError(colon > 0 ? message[..colon] : Section, colon > 0 ? message[(colon + 1)..] : message));
                }
            }
            var known = typeof(IcapServerOptions).GetProperties().Select(p => p.Name).Append("Services").ToArray();
            ConfigChecks.UnknownKeys(section, errors, known);
        }
    }
}
