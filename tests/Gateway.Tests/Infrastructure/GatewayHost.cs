using Microsoft.Extensions.Configuration;
using System.Net;
using Gateway.Proxy;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Gateway.Tests.Infrastructure;

/// <summary>
/// The real gateway (GatewayApp.Build, real Kestrel) on free loopback ports, configured by a dictionary laid over
/// defaults that bind the proxy and admin listeners to 127.0.0.1:0. The content root is a fresh temp directory
/// (no appsettings.json unless the test writes one), removed on dispose.
/// </summary>
public sealed class GatewayHost : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly bool _ownsContentRoot;

    private GatewayHost(WebApplication app, string contentRoot, bool ownsContentRoot)
    {
        _app = app;
        ContentRoot = contentRoot;
        _ownsContentRoot = ownsContentRoot;
    }

    public string ContentRoot { get; }
    public IServiceProvider Services => _app.Services;
    public WebApplication App => _app;

    public IPEndPoint ProxyEndPoint => (IPEndPoint)Registry.GetEndPoint(ListenerRegistry.Proxy)!;
    public IPEndPoint AdminEndPoint => (IPEndPoint)Registry.GetEndPoint(ListenerRegistry.Admin)!;
    public Uri ProxyUri => new($"http://127.0.0.1:{ProxyEndPoint.Port}/");
    public Uri AdminUri => new($"http://127.0.0.1:{AdminEndPoint.Port}/");

    /// <summary>Endpoint of another named listener (e.g. "Icap").</summary>
    public IPEndPoint? EndPoint(string listener) => Registry.GetEndPoint(listener) as IPEndPoint;

    private ListenerRegistry Registry => _app.Services.GetRequiredService<ListenerRegistry>();

    public static Dictionary<string, string?> BaseConfig() => new()
    {
        ["Kestrel:Endpoints:Proxy:Url"] = "http://127.0.0.1:0",
        ["Kestrel:Endpoints:Admin:Url"] = "http://127.0.0.1:0",
        ["Logging:LogLevel:Default"] = "Warning",
        ["Logging:LogLevel:Gateway"] = Environment.GetEnvironmentVariable("GW_TEST_LOGLEVEL") ?? "Warning",
        ["Gateway:Icap:Server:Listen"] = "127.0.0.1:0",
    };

    /// <summary>Builds (not starts) the gateway; throws what start-up validation throws.</summary>
    public static WebApplication Build(IDictionary<string, string?> config, string? contentRoot = null, Action<IServiceCollection>? services = null)
    {
        var merged = BaseConfig();
        foreach (var kv in config)
        {
            merged[kv.Key] = kv.Value;
        }
        return GatewayApp.Build([], new GatewayAppOptions
        {
            ContentRoot = contentRoot ?? Directory.CreateTempSubdirectory("gw-test-").FullName,
            ConfigureConfiguration = c => c.AddInMemoryCollection(merged),
            ConfigureServices = services,
        });
    }

    public static async Task<GatewayHost> StartAsync(IDictionary<string, string?>? config = null, string? contentRoot = null, Action<IServiceCollection>? services = null)
    {
        var owns = contentRoot is null;
        contentRoot ??= Directory.CreateTempSubdirectory("gw-test-").FullName;
        var app = Build(config ?? new Dictionary<string, string?>(), contentRoot, services);
        await app.StartAsync();
        return new GatewayHost(app, contentRoot, owns);
    }

    /// <summary>An HttpClient that talks to the proxy listener as a reverse proxy (no proxy settings).</summary>
    public HttpClient CreateClient()
        => new(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false, AutomaticDecompression = DecompressionMethods.None }) { BaseAddress = ProxyUri, Timeout = TimeSpan.FromSeconds(60) };

    /// <summary>An HttpClient that uses the gateway as its forward proxy.</summary>
    public HttpClient CreateForwardProxyClient(Func<HttpRequestMessage, System.Security.Cryptography.X509Certificates.X509Certificate2?, System.Security.Cryptography.X509Certificates.X509Chain?, System.Net.Security.SslPolicyErrors, bool>? certificateValidation = null)
    {
        var handler = new HttpClientHandler
        {
            Proxy = new WebProxy(ProxyUri),
            UseProxy = true,
            AllowAutoRedirect = false,
            AutomaticDecompression = DecompressionMethods.None,
        };
        if (certificateValidation is not null)
        {
            handler.ServerCertificateCustomValidationCallback = certificateValidation;
        }
        return new HttpClient(handler) { Timeout = TimeSpan.FromSeconds(60) };
    }

    public HttpClient CreateAdminClient() => new(new SocketsHttpHandler { UseProxy = false }) { BaseAddress = AdminUri };

    public async ValueTask DisposeAsync()
    {
        try
        {
            await _app.StopAsync(new CancellationTokenSource(TimeSpan.FromSeconds(10)).Token);
        }
        finally
        {
            await _app.DisposeAsync();
            if (_ownsContentRoot)
            {
                try { Directory.Delete(ContentRoot, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
            }
        }
    }
}
