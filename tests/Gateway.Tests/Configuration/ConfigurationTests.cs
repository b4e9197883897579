using System.Net;
using Gateway.Configuration;
using Gateway.Tests.Infrastructure;
using Gateway.Tests.Proxy;

namespace Gateway.Tests.Configuration;

public sealed class ConfigurationTests
{
    private static readonly Dictionary<string, string?> s_bad = new()
    {
        ["Gateway:ForwardProxy:Enabled"] = "sometimes",
        ["Gateway:ForwardProxy:AllowedClients:0"] = "not-an-ip",
        ["Gateway:ForwardProxy:ConnectPorts:0"] = "70000",
        ["Gateway:ForwardProxy:Timeout"] = "-5",
        ["Gateway:ForwardProxy:Colour"] = "blue",
        ["Gateway:Bogus"] = "x",
        ["ReverseProxy:Routes:r1:ClusterId"] = "missing",
        ["ReverseProxy:Routes:r1:Match:Path"] = "{**all}",
        ["ReverseProxy:Clusters:c1:SessionAffinity:Enabled"] = "true",
        ["ReverseProxy:Clusters:c1:SessionAffinity:Policy"] = "HashCookie",
        ["ReverseProxy:Clusters:c1:Destinations:d1:Address"] = "http://127.0.0.1:1/",
    };

    [Fact]
    public void BadConfiguration_FailsStart_ListingEveryError()
    {
        var ex = Assert.Throws<GatewayConfigurationException>(() => GatewayHost.Build(s_bad));

        var keys = ex.Errors.Select(e => e.Key).ToList();
        Assert.Contains("Gateway:ForwardProxy:Enabled", keys);
        Assert.Contains("Gateway:ForwardProxy:AllowedClients:0", keys);
        Assert.Contains("Gateway:ForwardProxy:ConnectPorts:0", keys);
        Assert.Contains("Gateway:ForwardProxy:Timeout", keys);
        Assert.Contains("Gateway:ForwardProxy:Colour", keys);
        Assert.Contains("Gateway:Bogus", keys);
        Assert.Contains("ReverseProxy:Routes:r1:ClusterId", keys);
        Assert.Contains("ReverseProxy:Clusters:c1:SessionAffinity:Policy", keys);
        Assert.Contains(ex.Errors, e => e.Reason.Contains("HashCookie", StringComparison.Ordinal));
        foreach (var e in ex.Errors)
        {
            Assert.Contains(e.Key, ex.Message);
        }
    }

    [Fact]
    public async Task BadConfiguration_InTheBinary_ExitsNonZero_WithAllErrorsOnStderr()
    {
        var root = Directory.CreateTempSubdirectory("gw-badcfg-").FullName;
        var env = s_bad.ToDictionary(kv => kv.Key.Replace(":", "__"), kv => kv.Value);
        env["Kestrel__Endpoints__Proxy__Url"] = "http://127.0.0.1:0";
        env["Kestrel__Endpoints__Admin__Url"] = "http://127.0.0.1:0";
        await using var process = GatewayProcess.Start(root, env);

        var exit = await process.WaitForExitAsync(TimeSpan.FromSeconds(60));

        Assert.Equal(2, exit);
        Assert.Contains("invalid configuration", process.Stderr);
        Assert.Contains("Gateway:ForwardProxy:AllowedClients:0", process.Stderr);
        Assert.Contains("Gateway:ForwardProxy:ConnectPorts:0", process.Stderr);
        Assert.Contains("HashCookie", process.Stderr);
    }

    [Fact]
    public async Task EnvironmentVariable_OverridesAppsettings()
    {
        var root = Directory.CreateTempSubdirectory("gw-envcfg-").FullName;
        int proxyPort = ReverseProxyTests.FreePort(), adminPort = ReverseProxyTests.FreePort();
        await File.WriteAllTextAsync(Path.Combine(root, "appsettings.json"), $$"""
            {
              "Kestrel": { "Endpoints": { "Proxy": { "Url": "http://127.0.0.1:{{proxyPort}}" }, "Admin": { "Url": "http://127.0.0.1:{{adminPort}}" } } },
              "Gateway": { "ForwardProxy": { "Enabled": false }, "Icap": { "Server": { "Listen": "127.0.0.1:0" } } }
            }
            """);
        await using var backend = await TestBackend.StartAsync(ctx => Microsoft.AspNetCore.Http.HttpResponseWritingExtensions.WriteAsync(ctx.Response, "via env"));
        await using var process = GatewayProcess.Start(root, new Dictionary<string, string?> { ["Gateway__ForwardProxy__Enabled"] = "true" });
        await process.WaitUntilHealthyAsync(new Uri($"http://127.0.0.1:{adminPort}/healthz"), TimeSpan.FromSeconds(60));

        using var client = new HttpClient(new HttpClientHandler { Proxy = new WebProxy($"http://127.0.0.1:{proxyPort}"), UseProxy = true });
        var body = await client.GetStringAsync(backend.Uri);

        Assert.Equal("via env", body);
        Assert.Contains("GET " + backend.Uri, process.Stdout);
    }
}
