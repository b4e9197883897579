using System.Net;
using Gateway.Icap.Server;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Gateway.Interop.Tests.Peers;

/// <summary>Our ICAP server (echo, and filter blocking the keyword "blockme") on a real Kestrel listener, 127.0.0.1, free port.</summary>
public sealed class IcapServerHost : IAsyncLifetime
{
    public const string BlockedKeyword = "blockme";

    private WebApplication? _app;

    public int Port { get; private set; }

    public async Task InitializeAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Configuration.AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Gateway:Icap:Server:Services:filter:Keywords:k1"] = BlockedKeyword,
        });
        builder.Services.AddIcapServer(builder.Configuration.GetSection("Gateway:Icap:Server"));
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, lo => lo.UseIcapServer()));
        _app = builder.Build();
        await _app.StartAsync();
        Port = new Uri(_app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First()).Port;
    }

    public async Task DisposeAsync()
    {
        if (_app is not null) await _app.DisposeAsync();
    }
}
