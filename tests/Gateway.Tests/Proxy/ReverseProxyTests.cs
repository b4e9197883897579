using System.Net;
using System.Security.Cryptography;
using Gateway.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;

namespace Gateway.Tests.Proxy;

public sealed class ReverseProxyTests
{
    internal static Dictionary<string, string?> RouteTo(Uri backend, Dictionary<string, string?>? extra = null)
    {
        var config = new Dictionary<string, string?>
        {
            ["ReverseProxy:Routes:all:ClusterId"] = "backend",
            ["ReverseProxy:Routes:all:Match:Path"] = "{**catch-all}",
            ["ReverseProxy:Clusters:backend:Destinations:d1:Address"] = backend.ToString(),
        };
        foreach (var kv in extra ?? [])
        {
            config[kv.Key] = kv.Value;
        }
        return config;
    }

    [Fact]
    public async Task Forwards_StatusHeadersAndQueryString()
    {
        await using var backend = await TestBackend.StartAsync(async ctx =>
        {
            ctx.Response.StatusCode = 201;
            ctx.Response.Headers["X-Backend"] = "yes";
            ctx.Response.Headers["X-Echo-Query"] = ctx.Request.QueryString.Value;
            await ctx.Response.WriteAsync("created");
        });
        await using var gw = await GatewayHost.StartAsync(RouteTo(backend.Uri));
        using var client = gw.CreateClient();

        using var request = new HttpRequestMessage(HttpMethod.Get, "/items/42?a=1&b=%20x");
        request.Headers.TryAddWithoutValidation("Via", "1.0 edge-proxy");
        using var response = await client.SendAsync(request);

        Assert.Equal(HttpStatusCode.Created, response.StatusCode);
        Assert.Equal("yes", response.Headers.GetValues("X-Backend").Single());
        Assert.Equal("?a=1&b=%20x", response.Headers.GetValues("X-Echo-Query").Single());
        Assert.Contains(response.Headers.Via, v => v.ReceivedBy.StartsWith("gateway", StringComparison.Ordinal));
        Assert.Equal("created", await response.Content.ReadAsStringAsync());
        Assert.Equal("/items/42?a=1&b=%20x", backend.Last!.PathAndQuery);
        Assert.Matches("^1.0 edge-proxy, ?1.1 gateway", backend.Last.Headers["Via"]);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(10 * 1024 * 1024)]
    public async Task Streams_ResponseBodies_ByteIdentical(int size)
    {
        var payload = RandomNumberGenerator.GetBytes(size);
        await using var backend = await TestBackend.StartAsync(ctx =>
        {
            ctx.Response.ContentLength = payload.Length;
            return ctx.Response.Body.WriteAsync(payload).AsTask();
        });
        await using var gw = await GatewayHost.StartAsync(RouteTo(backend.Uri));
        using var client = gw.CreateClient();

        var body = await client.GetByteArrayAsync("/blob");

        Assert.Equal(SHA256.HashData(payload), SHA256.HashData(body));
    }

    [Theory]
    [InlineData(0)]
    [InlineData(3 * 1024 * 1024 + 7)]
    [InlineData(40 * 1024 * 1024)]
    public async Task Forwards_PostBody(int size)
    {
        var payload = RandomNumberGenerator.GetBytes(size);
        await using var backend = await TestBackend.StartAsync(async ctx =>
        {
            using var ms = new MemoryStream();
            await ctx.Request.Body.CopyToAsync(ms);
            ctx.Response.Headers["X-Method"] = ctx.Request.Method;
            await ctx.Response.Body.WriteAsync(SHA256.HashData(ms.ToArray()));
        });
        await using var gw = await GatewayHost.StartAsync(RouteTo(backend.Uri));
        using var client = gw.CreateClient();

        using var response = await client.PostAsync("/upload", new ByteArrayContent(payload));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("POST", response.Headers.GetValues("X-Method").Single());
        Assert.Equal(SHA256.HashData(payload), await response.Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task ConfiguredRequestBodyLimit_IsHonoured()
    {
        await using var backend = await TestBackend.StartAsync(async ctx => { await ctx.Request.Body.CopyToAsync(Stream.Null); await ctx.Response.WriteAsync("read"); });
        await using var gw = await GatewayHost.StartAsync(RouteTo(backend.Uri, new() { ["Kestrel:Limits:MaxRequestBodySize"] = "1000" }));
        using var client = gw.CreateClient();

        using var response = await client.PostAsync("/upload", new ByteArrayContent(new byte[5000]));

        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
    }

    [Fact]
    public async Task Routes_HotReload_WhenAppsettingsChanges()
    {
        await using var a = await TestBackend.StartAsync(ctx => ctx.Response.WriteAsync("A"));
        await using var b = await TestBackend.StartAsync(ctx => ctx.Response.WriteAsync("B"));
        var root = Directory.CreateTempSubdirectory("gw-reload-").FullName;
        var file = Path.Combine(root, "appsettings.json");
        static string Settings(Uri destination) => $$"""
            { "ReverseProxy": { "Routes": { "r": { "ClusterId": "c", "Match": { "Path": "{**all}" } } },
                                "Clusters": { "c": { "Destinations": { "d": { "Address": "{{destination}}" } } } } } }
            """;
        await File.WriteAllTextAsync(file, Settings(a.Uri));
        await using var gw = await GatewayHost.StartAsync(contentRoot: root);
        using var client = gw.CreateClient();
        Assert.Equal("A", await client.GetStringAsync("/"));

        await File.WriteAllTextAsync(file, Settings(b.Uri));
        var deadline = DateTime.UtcNow.AddSeconds(20);
        string seen;
        do
        {
            await Task.Delay(200);
            seen = await client.GetStringAsync("/");
        }
        while (seen != "B" && DateTime.UtcNow < deadline);

        Assert.Equal("B", seen);
    }

    [Fact]
    public async Task Unmatched_Request_Gets404_WithBody()
    {
        await using var gw = await GatewayHost.StartAsync();
        using var client = gw.CreateClient();

        using var response = await client.GetAsync("/nothing");

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Contains("no route", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task UnreachableDestination_Gets502_SayingSo()
    {
        var port = FreePort();
        await using var gw = await GatewayHost.StartAsync(RouteTo(new Uri($"http://127.0.0.1:{port}/")));
        using var client = gw.CreateClient();

        using var response = await client.GetAsync("/x");

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Contains("unreachable", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task SlowDestination_Gets504_SayingSo()
    {
        await using var backend = await TestBackend.StartAsync(async ctx =>
        {
            try { await Task.Delay(TimeSpan.FromSeconds(10), ctx.RequestAborted); } catch (OperationCanceledException) { }
        });
        await using var gw = await GatewayHost.StartAsync(RouteTo(backend.Uri, new()
        {
            ["ReverseProxy:Clusters:backend:HttpRequest:ActivityTimeout"] = "00:00:00.500",
        }));
        using var client = gw.CreateClient();

        using var response = await client.GetAsync("/slow");

        Assert.Equal(HttpStatusCode.GatewayTimeout, response.StatusCode);
        Assert.Contains("did not answer in time", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task RequestCarryingOurVia_IsRefusedAsLoop()
    {
        await using var backend = await TestBackend.StartAsync(ctx => ctx.Response.WriteAsync("should not be reached"));
        await using var gw = await GatewayHost.StartAsync(RouteTo(backend.Uri, new() { ["Gateway:Name"] = "gw-loop-test" }));
        using var client = gw.CreateClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, "/x");
        request.Headers.TryAddWithoutValidation("Via", "1.1 other, 1.1 gw-loop-test");

        using var response = await client.SendAsync(request);

        Assert.Equal((HttpStatusCode)508, response.StatusCode);
        Assert.Equal(0, backend.Requests);
    }

    [Fact]
    public async Task HopByHopAndProxyHeaders_AreStripped()
    {
        await using var backend = await TestBackend.StartAsync(ctx =>
        {
            ctx.Response.Headers["Keep-Alive"] = "timeout=5";
            ctx.Response.Headers["X-Origin"] = "1";
            return ctx.Response.WriteAsync("ok");
        });
        await using var gw = await GatewayHost.StartAsync(RouteTo(backend.Uri));
        using var client = gw.CreateClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, "/h");
        request.Headers.TryAddWithoutValidation("Proxy-Authorization", "Basic Zm9vOmJhcg==");
        request.Headers.TryAddWithoutValidation("Proxy-Connection", "keep-alive");
        request.Headers.TryAddWithoutValidation("Connection", "X-Private-Hop");
        request.Headers.TryAddWithoutValidation("X-Private-Hop", "secret");
        request.Headers.TryAddWithoutValidation("X-End-To-End", "kept");

        using var response = await client.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var seen = backend.Last!.Headers;
        Assert.False(seen.ContainsKey("Proxy-Authorization"));
        Assert.False(seen.ContainsKey("Proxy-Connection"));
        Assert.False(seen.ContainsKey("X-Private-Hop"));
        Assert.Equal("kept", seen["X-End-To-End"]);
        Assert.False(response.Headers.Contains("Keep-Alive"));
    }

    internal static int FreePort()
    {
        using var l = new System.Net.Sockets.TcpListener(IPAddress.Loopback, 0);
        l.Start();
        return ((IPEndPoint)l.LocalEndpoint).Port;
    }
}
