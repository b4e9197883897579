using System.Net;
using Gateway.Icap.Server;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace Gateway.Icap.Tests.Server;

/// <summary>A real Kestrel ICAP listener on 127.0.0.1, port 0.</summary>
internal sealed class IcapKestrelHost : IAsyncDisposable
{
    private readonly WebApplication _app;

    private IcapKestrelHost(WebApplication app, int port)
    {
        _app = app;
        Port = port;
    }

    public int Port { get; }

    public IServiceProvider Services => _app.Services;

    public static async Task<IcapKestrelHost> StartAsync(Action<IcapServerOptions>? configure = null, Action<IServiceCollection>? services = null,
        TimeSpan? shutdownTimeout = null)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddIcapServer(configure);
        builder.Services.AddIcapService<SinkService>();
        services?.Invoke(builder.Services);
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = shutdownTimeout ?? TimeSpan.FromSeconds(10));
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxConcurrentConnections = null;
            k.Listen(IPAddress.Loopback, 0, lo => lo.UseIcapServer());
        });
        var app = builder.Build();
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First();
        return new IcapKestrelHost(app, new Uri(address).Port);
    }

    public Task StopAsync() => _app.StopAsync();

    public async ValueTask DisposeAsync() => await _app.DisposeAsync();
}
