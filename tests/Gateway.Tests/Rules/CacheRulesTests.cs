using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Gateway.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;

namespace Gateway.Tests.Rules;

/// <summary>NoCache and Sort set the cache fields of the request feature (the cache stage reads them).</summary>
public sealed class CacheRulesTests
{
    [Fact]
    public async Task NoCache_FlagsMatchingRequestsOnly()
    {
        await using var backend = await TestBackend.StartAsync(c => c.Response.WriteAsync("origin"));
        var probe = new FeatureProbe();
        await using var gw = await GatewayHost.StartAsync(RulesConfig.Reverse(backend,
            ("NoCache:mail:Match:Url", "^https?://mail\\.example/")), services: probe.Register);
        using var client = gw.CreateClient();

        using (var request = new HttpRequestMessage(HttpMethod.Get, "/inbox") { Headers = { Host = "mail.example" } })
        using (var r = await client.SendAsync(request))
        {
            Assert.Equal("origin", await r.Content.ReadAsStringAsync());
        }
        Assert.True(probe.Last.NoCache);
        using (var request = new HttpRequestMessage(HttpMethod.Get, "/inbox") { Headers = { Host = "www.example" } })
        using (var r = await client.SendAsync(request))
        {
            Assert.Equal("origin", await r.Content.ReadAsStringAsync());
        }
        Assert.False(probe.Last.NoCache);
        Assert.Equal(2, backend.Requests);
    }

    [Fact]
    public async Task Sort_SetsLocationArchiveAndKey_FromUrlCaptures()
    {
        await using var backend = await TestBackend.StartAsync(c => c.Response.WriteAsync("video"));
        var probe = new FeatureProbe();
        await using var gw = await GatewayHost.StartAsync(RulesConfig.Reverse(backend,
            ("Sort:videos:Match:Url", "^https?://video\\.example/watch\\?v=([^&]+)"),
            ("Sort:videos:Location", "videos/$1.mp4"),
            ("Sort:videos:Archive", "yyyy/MM/dd"),
            ("Sort:videos:Key:Template", "video:$1"),
            ("Sort:pages:Match:Host", "news.example"),
            ("Sort:pages:Key:DropQuery:0", "utm_*"),
            ("Sort:pages:Key:DropQuery:1", "fbclid"),
            ("Sort:pages:Key:SortQuery", "true")), services: probe.Register);
        using var client = gw.CreateClient();

        using (var request = new HttpRequestMessage(HttpMethod.Get, "/watch?v=abc123&t=10") { Headers = { Host = "video.example" } })
        using (var r = await client.SendAsync(request))
        {
            Assert.Equal("video", await r.Content.ReadAsStringAsync());
        }
        var seen = probe.Last;
        Assert.Equal("videos/abc123.mp4", seen.CacheLocation);
        Assert.Equal("yyyy/MM/dd", seen.CacheArchive);
        Assert.Equal("video:abc123", seen.CacheKey);
        Assert.False(seen.NoCache);

        using (var request = new HttpRequestMessage(HttpMethod.Get, "/story?b=2&utm_source=x&a=1&fbclid=zz") { Headers = { Host = "news.example" } })
        using (var r = await client.SendAsync(request))
        {
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        }
        seen = probe.Last;
        Assert.Equal("http://news.example/story?a=1&b=2", seen.CacheKey);
        Assert.Null(seen.CacheLocation);
        Assert.Null(seen.CacheArchive);

        // Unmatched: nothing set.
        using (var r = await client.GetAsync("/other"))
        {
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        }
        seen = probe.Last;
        Assert.Null(seen.CacheKey);
        Assert.Null(seen.CacheLocation);
        Assert.Equal(3, backend.Requests);
    }

    [Fact]
    public async Task Sort_RefusesALocationWhoseCaptureEscapesTheCacheDirectory()
    {
        await using var backend = await TestBackend.StartAsync(c => c.Response.WriteAsync("ok"));
        var probe = new FeatureProbe();
        await using var gw = await GatewayHost.StartAsync(RulesConfig.Reverse(backend,
            ("Sort:files:Match:Url", "[?&]name=([^&]+)"),
            ("Sort:files:Location", "files/$1")), services: probe.Register);
        using var client = gw.CreateClient();

        using (var r = await client.GetAsync("/get?name=report.pdf"))
        {
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        }
        Assert.Equal("files/report.pdf", probe.Last.CacheLocation);

        foreach (var evil in new[] { "../../etc/passwd", "..%2F..%2Fetc", "%2e%2e/x", "a/../../b", "x//y", "c:\\windows" })
        {
            using var r = await client.GetAsync("/get?name=" + evil);
            Assert.Equal(HttpStatusCode.OK, r.StatusCode); // the request still goes through, just not to that location
            Assert.Null(probe.Last.CacheLocation);
        }

        // The admin listener explains why.
        using var admin = gw.CreateAdminClient();
        var explain = await admin.GetFromJsonAsync<JsonElement>("/rules/explain?url=" + Uri.EscapeDataString("http://h/get?name=../../etc/passwd"));
        Assert.Contains("escapes the cache directory", explain.GetProperty("outcome").GetProperty("cacheLocationRefused").GetString());
    }
}
