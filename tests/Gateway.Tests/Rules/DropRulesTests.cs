using System.Net;
using System.Net.Http.Headers;
using Gateway.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;

namespace Gateway.Tests.Rules;

public sealed class DropRulesTests
{
    private static async Task<HttpResponseMessage> GetAsync(HttpClient client, string path, string host, Action<HttpRequestMessage>? configure = null)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Host = host;
        configure?.Invoke(request);
        return await client.SendAsync(request);
    }

    [Fact]
    public async Task Drop_AnswersWithPlaceholderFittingTheRequest_AndNeverReachesTheOrigin()
    {
        await using var backend = await TestBackend.StartAsync(c => c.Response.WriteAsync("origin"));
        await using var gw = await GatewayHost.StartAsync(RulesConfig.Reverse(backend,
            ("Drop:ads:Match:Host", "*.ads.example")));
        using var client = gw.CreateClient();

        // A document: an HTML page naming the rule.
        using (var r = await GetAsync(client, "/banner", "x.ads.example", m => m.Headers.Accept.ParseAdd("text/html,application/xhtml+xml,*/*;q=0.8")))
        {
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
            Assert.Equal("text/html", r.Content.Headers.ContentType!.MediaType);
            var html = await r.Content.ReadAsStringAsync();
            Assert.Contains("Blocked", html);
            Assert.Contains("ads", html);
            Assert.Equal("drop/ads", r.Headers.GetValues("X-Gateway-Rule").Single());
            Assert.Contains("no-store", r.Headers.CacheControl!.ToString());
        }
        // An image (by Sec-Fetch-Dest): a transparent 1x1 GIF.
        using (var r = await GetAsync(client, "/pixel", "a.b.ads.example", m => m.Headers.Add("Sec-Fetch-Dest", "image")))
        {
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
            Assert.Equal("image/gif", r.Content.Headers.ContentType!.MediaType);
            var gif = await r.Content.ReadAsByteArrayAsync();
            Assert.Equal("GIF89a", System.Text.Encoding.ASCII.GetString(gif, 0, 6));
            Assert.Equal(1, gif[6] | gif[7] << 8);
            Assert.Equal(1, gif[8] | gif[9] << 8);
            Assert.Equal(0x3B, gif[^1]);
        }
        // An image by extension, a script by extension, a style by Accept.
        using (var r = await GetAsync(client, "/img/logo.png", "x.ads.example"))
        {
            Assert.Equal("image/gif", r.Content.Headers.ContentType!.MediaType);
        }
        using (var r = await GetAsync(client, "/tracker.js", "x.ads.example"))
        {
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
            Assert.Equal("application/javascript", r.Content.Headers.ContentType!.MediaType);
            Assert.Empty(await r.Content.ReadAsByteArrayAsync());
        }
        using (var r = await GetAsync(client, "/theme", "x.ads.example", m => m.Headers.Accept.ParseAdd("text/css,*/*;q=0.1")))
        {
            Assert.Equal("text/css", r.Content.Headers.ContentType!.MediaType);
            Assert.Empty(await r.Content.ReadAsByteArrayAsync());
        }
        // Anything else: 204.
        using (var r = await GetAsync(client, "/api/beacon", "x.ads.example", m => m.Headers.Add("Sec-Fetch-Dest", "empty")))
        {
            Assert.Equal(HttpStatusCode.NoContent, r.StatusCode);
        }
        // The domain itself is not below *.ads.example: it is proxied.
        using (var r = await GetAsync(client, "/", "ads.example"))
        {
            Assert.Equal("origin", await r.Content.ReadAsStringAsync());
        }
        Assert.Equal(1, backend.Requests);
    }

    [Fact]
    public async Task Drop_UsesConfiguredStatusAndBody()
    {
        await using var backend = await TestBackend.StartAsync(c => c.Response.WriteAsync("origin"));
        await using var gw = await GatewayHost.StartAsync(RulesConfig.Reverse(backend,
            ("Drop:tracking:Match:Path", "/track/*"),
            ("Drop:tracking:Match:Methods", "POST,GET"),
            ("Drop:tracking:Status", "403"),
            ("Drop:tracking:Body", "{\"blocked\":true}"),
            ("Drop:tracking:ContentType", "application/json")));
        using var client = gw.CreateClient();
        using var r = await client.PostAsync("/track/event", new StringContent("x"));
        Assert.Equal(HttpStatusCode.Forbidden, r.StatusCode);
        Assert.Equal("application/json", r.Content.Headers.ContentType!.MediaType);
        Assert.Equal("{\"blocked\":true}", await r.Content.ReadAsStringAsync());
        using var other = await client.GetAsync("/tracking-not/event");
        Assert.Equal("origin", await other.Content.ReadAsStringAsync());
        using var put = await client.PutAsync("/track/event", new StringContent("x"));
        Assert.Equal("origin", await put.Content.ReadAsStringAsync());
        Assert.Equal(2, backend.Requests);
    }

    [Fact]
    public async Task Drop_WorksInForwardMode()
    {
        await using var backend = await TestBackend.StartAsync(c => c.Response.WriteAsync("origin"));
        await using var gw = await GatewayHost.StartAsync(RulesConfig.Reverse(backend,
            ("Drop:blocked:Match:Url", "^http://localhost:\\d+/blocked/"),
            ("Drop:blocked:Status", "451")));
        using var client = gw.CreateForwardProxyClient();
        using var blocked = await client.GetAsync(new Uri($"http://localhost:{backend.Port}/blocked/page.html"));
        Assert.Equal((HttpStatusCode)451, blocked.StatusCode);
        Assert.Equal("text/html", blocked.Content.Headers.ContentType!.MediaType);
        using var allowed = await client.GetAsync(new Uri($"http://localhost:{backend.Port}/open/page.html"));
        Assert.Equal("origin", await allowed.Content.ReadAsStringAsync());
        Assert.Equal(1, backend.Requests);
        Assert.Equal(0, backend.RequestsFor("/blocked/page.html"));
    }
}
