using System.Net;
using System.Text;
using Gateway.Caching;
using Gateway.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Gateway.Tests.Caching;

/// <summary>Restarts, damaged files, unusable directories, offline mode, PURGE, admin endpoints and the cache command.</summary>
public sealed class CachePersistenceTests
{
    private static RequestDelegate Respond(string body, string cacheControl = "max-age=600") => async context =>
    {
        context.Response.Headers.CacheControl = cacheControl;
        context.Response.Headers.ETag = "\"" + body.Length + "\"";
        context.Response.ContentType = "text/plain";
        await context.Response.WriteAsync(body);
    };

    private static string NewRoot() => Directory.CreateTempSubdirectory("gw-cache-").FullName;

    private static async Task<GatewayHost> StartGatewayAsync(string root, Uri backend, Dictionary<string, string?>? extra = null)
    {
        var config = new Dictionary<string, string?>
        {
            ["ReverseProxy:Routes:r1:ClusterId"] = "c1",
            ["ReverseProxy:Routes:r1:Match:Path"] = "{**catch-all}",
            ["ReverseProxy:Clusters:c1:Destinations:d1:Address"] = backend.ToString(),
        };
        foreach (var kv in extra ?? new())
        {
            config[kv.Key] = kv.Value;
        }
        return await GatewayHost.StartAsync(config, root);
    }

    /// <summary>A client that always sends the same Host: reverse-mode keys are the absolute URL, which must not depend on the port of each run.</summary>
    private static HttpClient HostClient(GatewayHost gw)
    {
        var client = gw.CreateClient();
        client.DefaultRequestHeaders.Host = "app.example";
        return client;
    }

    private static string CacheDir(string root) => Path.Combine(root, "data", "cache");

    private static string[] EntryFiles(string root) => Directory.GetFiles(CacheDir(root), "*.gwc", SearchOption.AllDirectories);

    [Fact]
    public async Task Survives_Restart_WithBackendGone()
    {
        var root = NewRoot();
        try
        {
            var backend = await TestBackend.StartAsync(Respond("persisted body"));
            var backendUri = backend.Uri;
            await using (var gw = await StartGatewayAsync(root, backendUri))
            {
                using var client = HostClient(gw);
                Assert.Equal("persisted body", await client.GetStringAsync("/p?q=1"));
            }
            await backend.DisposeAsync();

            await using (var gw = await StartGatewayAsync(root, backendUri))
            {
                using var client = HostClient(gw);
                var response = await client.GetAsync("/p?q=1");
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                Assert.Equal("persisted body", await response.Content.ReadAsStringAsync());
                Assert.Contains("; hit;", response.CacheStatus());
                Assert.Equal(1, gw.Services.GetRequiredService<CacheStore>().Count);
            }
        }
        finally
        {
            Directory.Delete(root, true);
        }
    }

    [Theory]
    [InlineData("flip-body")]
    [InlineData("truncate")]
    [InlineData("version")]
    [InlineData("garbage")]
    public async Task DamagedFile_IsAMiss_LoggedAndRemoved(string damage)
    {
        var root = NewRoot();
        try
        {
            await using var backend = await TestBackend.StartAsync(Respond("original body 0123456789"));
            await using (var gw = await StartGatewayAsync(root, backend.Uri))
            {
                using var client = HostClient(gw);
                await client.GetStringAsync("/d");
            }
            var file = Assert.Single(EntryFiles(root));
            var bytes = File.ReadAllBytes(file);
            switch (damage)
            {
                case "flip-body": bytes[^3] ^= 0x20; break;
                case "truncate": bytes = bytes[..^5]; break;
                case "version": bytes[4] = 99; break;
                case "garbage": bytes = Encoding.ASCII.GetBytes("not a cache entry at all"); break;
            }
            File.WriteAllBytes(file, bytes);

            await using (var gw = await StartGatewayAsync(root, backend.Uri))
            {
                using var client = HostClient(gw);
                var body = await client.GetStringAsync("/d");
                await gw.WaitForCacheIdleAsync();
                Assert.Equal("original body 0123456789", body);
                Assert.Equal(2, backend.Requests);
                var store = gw.Services.GetRequiredService<CacheStore>();
                Assert.Equal(1, store.Stats.Corrupt);
                // The fetched copy replaced the damaged one and verifies.
                var verified = CacheEntryFormat.TryReadHead(File.OpenHandle(Assert.Single(EntryFiles(root))), out var error);
                Assert.Null(error);
                Assert.Equal("original body 0123456789", await client.GetStringAsync("/d"));
                Assert.Equal(2, backend.Requests);
            }
        }
        finally
        {
            Directory.Delete(root, true);
        }
    }

    [Fact]
    public async Task LeftoverTempFile_IsRemovedAtStart_AndNeverServed()
    {
        var root = NewRoot();
        try
        {
            await using var backend = await TestBackend.StartAsync(Respond("fresh"));
            var tmp = Path.Combine(CacheDir(root), ".tmp");
            Directory.CreateDirectory(tmp);
            File.WriteAllText(Path.Combine(tmp, "0123.tmp"), "half-written");
            await using var gw = await StartGatewayAsync(root, backend.Uri);
            using var client = HostClient(gw);
            Assert.Equal("fresh", await client.GetStringAsync("/t"));
            Assert.False(File.Exists(Path.Combine(tmp, "0123.tmp")));
        }
        finally
        {
            Directory.Delete(root, true);
        }
    }

    [Fact]
    public async Task UnusableCacheDirectory_ResponsesStillServed_ErrorsCounted_NotReady()
    {
        var root = NewRoot();
        try
        {
            // A regular file where the cache directory's parent should be: creating the directory fails, even as root.
            File.WriteAllText(Path.Combine(root, "blocker"), "I am a file");
            await using var backend = await TestBackend.StartAsync(Respond("still served"));
            await using var gw = await StartGatewayAsync(root, backend.Uri, new() { ["Gateway:Cache:Path"] = "blocker/cache" });
            using var client = HostClient(gw);
            Assert.Equal("still served", await client.GetStringAsync("/u"));
            Assert.Equal("still served", await client.GetStringAsync("/u"));
            Assert.Equal(2, backend.Requests);
            var store = gw.Services.GetRequiredService<CacheStore>();
            Assert.True(store.Stats.StoreErrors >= 2);
            using var admin = gw.CreateAdminClient();
            var ready = await admin.GetAsync("/readyz");
            Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
            Assert.Contains("cache", await ready.Content.ReadAsStringAsync());
        }
        finally
        {
            Directory.Delete(root, true);
        }
    }

    [Fact]
    public async Task DirectoryRemovedWhileRunning_WritesFail_ResponsesStillServed()
    {
        var root = NewRoot();
        try
        {
            await using var backend = await TestBackend.StartAsync(Respond("body"));
            await using var gw = await StartGatewayAsync(root, backend.Uri);
            using var client = HostClient(gw);
            Assert.Equal("body", await client.GetStringAsync("/before"));
            await gw.WaitForCacheIdleAsync();
            // Replace the temporary directory by a file: every new entry's temp file fails to open.
            var tmp = Path.Combine(CacheDir(root), ".tmp");
            Directory.Delete(tmp, true);
            File.WriteAllText(tmp, "blocked");
            var store = gw.Services.GetRequiredService<CacheStore>();
            var errors = store.Stats.StoreErrors;
            Assert.Equal("body", await client.GetStringAsync("/after"));
            Assert.Equal("body", await client.GetStringAsync("/after"));
            Assert.Equal(2, backend.RequestsFor("/after"));
            Assert.True(store.Stats.StoreErrors >= errors + 2);
            Assert.Equal("body", await client.GetStringAsync("/before"));
            Assert.Equal(1, backend.RequestsFor("/before"));
        }
        finally
        {
            Directory.Delete(root, true);
        }
    }

    [Fact]
    public async Task Offline_ServesStoredIncludingStale_And504ForMisses()
    {
        var root = NewRoot();
        try
        {
            await using var backend = await TestBackend.StartAsync(Respond("cached", "max-age=0, must-revalidate"));
            await using (var gw = await StartGatewayAsync(root, backend.Uri))
            {
                using var client = HostClient(gw);
                await client.GetStringAsync("/off");
            }
            await using (var gw = await StartGatewayAsync(root, backend.Uri, new() { ["Gateway:Cache:Offline"] = "true" }))
            {
                using var client = HostClient(gw);
                var hit = await client.GetAsync("/off");
                Assert.Equal(HttpStatusCode.OK, hit.StatusCode);
                Assert.Equal("cached", await hit.Content.ReadAsStringAsync());
                Assert.Contains("detail=offline", hit.CacheStatus());
                var miss = await client.GetAsync("/missing");
                Assert.Equal(HttpStatusCode.GatewayTimeout, miss.StatusCode);
                Assert.Equal(1, backend.Requests);
            }
        }
        finally
        {
            Directory.Delete(root, true);
        }
    }

    [Fact]
    public async Task Purge_FromAllowedClient_200Then404_OthersForbidden()
    {
        await using var rig = await CacheRig.StartAsync(Respond("x"));
        await rig.GetAsync("/purge-me");
        var purge = await rig.Client.SendAsync(new HttpRequestMessage(new HttpMethod("PURGE"), "/purge-me"));
        Assert.Equal(HttpStatusCode.OK, purge.StatusCode);
        var again = await rig.Client.SendAsync(new HttpRequestMessage(new HttpMethod("PURGE"), "/purge-me"));
        Assert.Equal(HttpStatusCode.NotFound, again.StatusCode);
        await rig.GetAsync("/purge-me");
        Assert.Equal(2, rig.Backend.Requests);

        await using var denied = await CacheRig.StartAsync(Respond("x"), new() { ["Gateway:ForwardProxy:AllowedClients:0"] = "10.0.0.0/8" });
        await denied.GetAsync("/keep");
        var forbidden = await denied.Client.SendAsync(new HttpRequestMessage(new HttpMethod("PURGE"), "/keep"));
        Assert.Equal(HttpStatusCode.Forbidden, forbidden.StatusCode);
        await denied.GetAsync("/keep");
        Assert.Equal(1, denied.Backend.Requests);
    }

    [Fact]
    public async Task ForwardProxyMode_CachesByAbsoluteUrl()
    {
        await using var rig = await CacheRig.StartAsync(Respond("via forward proxy"), new() { ["Gateway:ForwardProxy:Enabled"] = "true" });
        using var proxyClient = rig.Gateway.CreateForwardProxyClient();
        var url = new Uri(rig.Backend.Uri, "/fw");
        Assert.Equal("via forward proxy", await proxyClient.GetStringAsync(url));
        var second = await proxyClient.GetAsync(url);
        Assert.Equal("via forward proxy", await second.Content.ReadAsStringAsync());
        Assert.Contains("; hit;", second.CacheStatus());
        Assert.Equal(1, rig.Backend.Requests);
        Assert.Contains(rig.Store.All(), e => e.Url == url.AbsoluteUri);
    }

    [Fact]
    public async Task Admin_ListShowPurgeVerifyPruneStats()
    {
        await using var rig = await CacheRig.StartAsync(async c =>
        {
            c.Response.Headers.CacheControl = c.Request.Path.StartsWithSegments("/short") ? "max-age=5" : "max-age=600";
            await c.Response.WriteAsync(new string('a', c.Request.Path.StartsWithSegments("/big") ? 5000 : 10));
        });
        foreach (var p in new[] { "/a/1", "/a/2", "/b/1", "/big/1", "/short/1" })
        {
            await rig.GetAsync(p);
        }
        await rig.Gateway.WaitForCacheIdleAsync();
        await rig.GetAsync("/a/1");
        var stats = await rig.Admin.GetStringAsync("/cache/stats");
        Assert.Contains("\"entries\": 5", stats);
        Assert.Contains("\"hits\": 1", stats);

        var list = await rig.Admin.GetStringAsync("/cache/entries?url=" + Uri.EscapeDataString("/a/[0-9]$"));
        Assert.Contains("\"count\": 2", list);
        var big = await rig.Admin.GetStringAsync("/cache/entries?minSize=4KB");
        Assert.Contains("\"count\": 1", big);
        Assert.Contains("/big/1", big);
        var bad = await rig.Admin.GetAsync("/cache/entries?url=" + Uri.EscapeDataString("(["));
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);

        var show = await rig.Admin.GetStringAsync("/cache/entry?url=" + Uri.EscapeDataString(rig.Gateway.ProxyUri + "b/1"));
        Assert.Contains("Cache-Control: max-age=600", show);
        Assert.Contains(".gwc", show);

        var purge = await rig.Admin.DeleteAsync("/cache/entries?prefix=" + Uri.EscapeDataString(rig.Gateway.ProxyUri + "a/"));
        Assert.Contains("\"purged\": 2", await purge.Content.ReadAsStringAsync());

        // Corrupt one file: verify finds and removes it.
        var bigEntry = rig.Store.All().Single(e => e.Url.EndsWith("/big/1"));
        var bytes = File.ReadAllBytes(bigEntry.FilePath);
        bytes[^10] ^= 1;
        File.WriteAllBytes(bigEntry.FilePath, bytes);
        var verify = await rig.Admin.PostAsync("/cache/verify", null);
        var verifyText = await verify.Content.ReadAsStringAsync();
        Assert.Contains("\"removed\": 1", verifyText);

        rig.Time.Advance(TimeSpan.FromSeconds(60));
        var prune = await rig.Admin.PostAsync("/cache/prune?stale=true", null);
        Assert.Contains("\"pruned\": 1", await prune.Content.ReadAsStringAsync());
        Assert.Equal(1, rig.Store.Count);
        Assert.Single(Directory.GetFiles(rig.CacheDir, "*.gwc", SearchOption.AllDirectories));
    }

    [Fact]
    public async Task Command_WorksOnStoppedGateway_AndRefusesChangesWhileRunning()
    {
        var root = NewRoot();
        try
        {
            await using var backend = await TestBackend.StartAsync(Respond("cmd body"));
            await using (var gw = await StartGatewayAsync(root, backend.Uri))
            {
                using var client = HostClient(gw);
                await client.GetStringAsync("/x/1");
                await client.GetStringAsync("/x/2");
                await client.GetStringAsync("/y/1");
                var (code, _, err) = Run(root, "cache", "purge", "--prefix", "http://");
                Assert.Equal(3, code);
                Assert.Contains("running", err);
            }
            var (listCode, list, _) = Run(root, "cache", "list", "--url", "/x/");
            Assert.Equal(0, listCode);
            Assert.Contains("2 entries", list);
            var (_, stats, _) = Run(root, "cache", "stats");
            Assert.Contains("entries    3", stats);
            var url = Assert.Single(list.Split('\n'), l => l.Contains("/x/1")).Split(' ', StringSplitOptions.RemoveEmptyEntries)[^1];
            var (showCode, show, _) = Run(root, "cache", "show", url);
            Assert.Equal(0, showCode);
            Assert.Contains("ETag", show);
            var (purgeCode, purged, _) = Run(root, "cache", "purge", url);
            Assert.Equal(0, purgeCode);
            Assert.Contains("purged 1", purged);
            var (_, verify, _) = Run(root, "cache", "verify");
            Assert.Contains("checked 2 entries, removed 0", verify);
            var (pruneCode, prune, _) = Run(root, "cache", "prune", "--larger-than", "1B");
            Assert.Equal(0, pruneCode);
            Assert.Contains("pruned 2", prune);
            Assert.Empty(EntryFiles(root));
            var (badCode, _, badErr) = Run(root, "cache", "frobnicate");
            Assert.Equal(2, badCode);
            Assert.Contains("unknown command", badErr);
        }
        finally
        {
            Directory.Delete(root, true);
        }
    }

    private static (int Code, string Out, string Err) Run(string root, params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var code = CacheCommand.Run(args, root, stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    [Fact]
    public void Config_RejectsUnknownAndBadKeys()
    {
        var root = NewRoot();
        Gateway.Configuration.GatewayConfigurationException ex;
        try
        {
            ex = Assert.Throws<Gateway.Configuration.GatewayConfigurationException>(() => GatewayHost.Build(new Dictionary<string, string?>
            {
                ["Gateway:Cache:MaxSzie"] = "1GB",
                ["Gateway:Cache:MaxSize"] = "lots",
                ["Gateway:Cache:Offline"] = "maybe",
                ["Gateway:Cache:HeuristicFraction"] = "2",
                ["Gateway:Cache:CollapseTimeout"] = "-1",
            }, root));
        }
        finally
        {
            Directory.Delete(root, true);
        }
        Assert.Contains("Gateway:Cache:MaxSzie", ex.Message);
        Assert.Contains("Gateway:Cache:MaxSize", ex.Message);
        Assert.Contains("Gateway:Cache:Offline", ex.Message);
        Assert.Contains("Gateway:Cache:HeuristicFraction", ex.Message);
        Assert.Contains("Gateway:Cache:CollapseTimeout", ex.Message);
    }
}
