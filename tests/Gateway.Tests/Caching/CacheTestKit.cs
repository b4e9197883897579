using Gateway.Caching;
using Gateway.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Gateway.Tests.Caching;

/// <summary>A clock the test moves by hand (the cache takes its time from the injected TimeProvider).</summary>
public sealed class ManualTime : TimeProvider
{
    private DateTimeOffset _now = DateTimeOffset.UtcNow;

    public override DateTimeOffset GetUtcNow() => _now;

    public void Advance(TimeSpan by) => _now += by;
}

/// <summary>A real origin (Kestrel, counting requests) behind the real gateway as a reverse proxy, cache on.</summary>
public sealed class CacheRig : IAsyncDisposable
{
    private CacheRig(TestBackend backend, GatewayHost gateway, ManualTime time)
    {
        Backend = backend;
        Gateway = gateway;
        Time = time;
        Client = gateway.CreateClient();
        Admin = gateway.CreateAdminClient();
    }

    public TestBackend Backend { get; }
    public GatewayHost Gateway { get; }
    public ManualTime Time { get; }
    public HttpClient Client { get; }
    public HttpClient Admin { get; }
    internal CacheStore Store => Gateway.Services.GetRequiredService<CacheStore>();
    public string CacheDir => Store.Settings.Directory;

    public static Dictionary<string, string?> RouteTo(TestBackend backend) => new()
    {
        ["ReverseProxy:Routes:r1:ClusterId"] = "c1",
        ["ReverseProxy:Routes:r1:Match:Path"] = "{**catch-all}",
        ["ReverseProxy:Clusters:c1:Destinations:d1:Address"] = backend.Uri.ToString(),
    };

    public static async Task<CacheRig> StartAsync(RequestDelegate handler, Dictionary<string, string?>? config = null, string? contentRoot = null,
        Action<IServiceCollection>? services = null)
    {
        var time = new ManualTime();
        // The origin's clock is the test's clock, so Date and the cache's age computations agree.
        var backend = await TestBackend.StartAsync(context =>
        {
            context.Response.Headers.Date = time.GetUtcNow().ToString("r");
            return handler(context);
        });
        var merged = RouteTo(backend);
        foreach (var kv in config ?? new())
        {
            merged[kv.Key] = kv.Value;
        }
        var gateway = await GatewayHost.StartAsync(merged, contentRoot, s =>
        {
            s.AddSingleton<TimeProvider>(time);
            services?.Invoke(s);
        });
        return new CacheRig(backend, gateway, time);
    }

    public async Task<(HttpResponseMessage Response, string Body)> GetAsync(string path, params (string Name, string Value)[] headers)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        foreach (var (name, value) in headers)
        {
            request.Headers.TryAddWithoutValidation(name, value);
        }
        var response = await Client.SendAsync(request);
        var body = await response.Content.ReadAsStringAsync();
        await Gateway.WaitForCacheIdleAsync();
        return (response, body);
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        Admin.Dispose();
        await Gateway.DisposeAsync();
        await Backend.DisposeAsync();
    }
}

public static class ResponseExtensions
{
    /// <summary>
    /// Waits (bounded) until no request is inside the cache stage: the client can see the last byte of a response
    /// just before the gateway commits its entry, and tests that go on at once must not race that commit.
    /// </summary>
    public static async Task WaitForCacheIdleAsync(this GatewayHost gateway)
    {
        var stage = gateway.Services.GetServices<Gateway.Proxy.IProxyPipelineStage>().OfType<CacheStage>().Single();
        for (var i = 0; i < 400 && stage.Active > 0; i++)
        {
            await Task.Delay(5);
        }
    }

    public static string CacheStatus(this HttpResponseMessage response)
        => response.Headers.TryGetValues("Cache-Status", out var v) ? string.Join(", ", v) : "";

    public static string? Header(this HttpResponseMessage response, string name)
        => response.Headers.TryGetValues(name, out var v) ? string.Join(", ", v)
            : response.Content.Headers.TryGetValues(name, out var c) ? string.Join(", ", c) : null;
}
