using System.Diagnostics;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using Gateway.Adaptation;
using Gateway.Configuration;
using Gateway.Tests.Infrastructure;
using Gateway.Tests.Proxy;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Gateway.Tests.Adaptation;

public sealed class AdaptationTests
{
    private static Dictionary<string, string?> Config(Uri backend, params (string Key, string? Value)[] extra)
    {
        var config = ReverseProxyTests.RouteTo(backend);
        foreach (var (k, v) in extra) config[k] = v;
        return config;
    }

    private static Task<TestBackend> TextBackend(string text = "hello from the origin")
        => TestBackend.StartAsync(async ctx =>
        {
            ctx.Response.ContentType = "text/plain";
            ctx.Response.Headers["X-Seen-Reqmod"] = ctx.Request.Headers["X-Icap-Reqmod"].ToString();
            var bytes = Encoding.UTF8.GetBytes(text);
            ctx.Response.ContentLength = bytes.Length;
            await ctx.Response.Body.WriteAsync(bytes);
        });

    [Fact]
    public async Task Reqmod_HeaderChange_ReachesBackend()
    {
        await using var icap = await OwnIcapServer.StartAsync(extra: new AddHeaderService());
        await using var backend = await TextBackend();
        await using var gw = await GatewayHost.StartAsync(Config(backend.Uri,
            ("Gateway:Icap:Services:add:Uri", icap.Uri("addheader")),
            ("Gateway:Adaptation:Reqmod:0", "add")));
        using var client = gw.CreateClient();

        using var response = await client.PostAsync("/submit?x=1", new StringContent("posted body"));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("added", response.Headers.GetValues("X-Seen-Reqmod").Single());
        Assert.Equal("added", backend.Last!.Headers["X-Icap-Reqmod"]);
        Assert.Equal("/submit?x=1", backend.Last.PathAndQuery);
        Assert.Equal("posted body".Length, backend.Last.BodyLength);
    }

    [Fact]
    public async Task Respmod_BodyChange_ReachesClient_WithCorrectContentLength()
    {
        await using var icap = await OwnIcapServer.StartAsync(extra: new UpperCaseService());
        await using var backend = await TextBackend("make me loud");
        await using var gw = await GatewayHost.StartAsync(Config(backend.Uri,
            ("Gateway:Icap:Services:upper:Uri", icap.Uri("upper")),
            ("Gateway:Adaptation:Respmod:0", "upper")));
        using var client = gw.CreateClient();

        using var response = await client.GetAsync("/page");
        var body = await response.Content.ReadAsByteArrayAsync();

        var expected = "MAKE ME LOUD" + UpperCaseService.Suffix;
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(expected, Encoding.UTF8.GetString(body));
        Assert.Equal(Encoding.UTF8.GetByteCount(expected), response.Content.Headers.ContentLength);
        Assert.Equal("upper", response.Headers.GetValues("X-Icap-Respmod").Single());
    }

    [Fact]
    public async Task Reqmod_BlockPage_AnsweredWithoutReachingBackend()
    {
        await using var icap = await OwnIcapServer.StartAsync(filterKeywords: new() { ["k1"] = "casino" });
        await using var backend = await TextBackend();
        await using var gw = await GatewayHost.StartAsync(Config(backend.Uri,
            ("Gateway:Icap:Services:filter:Uri", icap.Uri("filter")),
            ("Gateway:Adaptation:Reqmod:0", "filter")));
        using var client = gw.CreateClient();

        using var blocked = await client.GetAsync("/games/casino-royale");
        var page = await blocked.Content.ReadAsStringAsync();
        using var allowed = await client.GetAsync("/games/chess");

        Assert.Equal(HttpStatusCode.Forbidden, blocked.StatusCode);
        Assert.Contains("Access blocked", page);
        Assert.Equal(Encoding.UTF8.GetByteCount(page), blocked.Content.Headers.ContentLength);
        Assert.Equal(0, backend.RequestsFor("/games/casino-royale"));
        Assert.Equal(HttpStatusCode.OK, allowed.StatusCode);
        Assert.Equal(1, backend.RequestsFor("/games/chess"));
    }

    [Theory]
    [InlineData(0, "echo?prefer=200")]
    [InlineData(1024, "echo?prefer=200")]
    [InlineData(1024, "echo")]
    [InlineData(200 * 1024, "echo")]
    public Task Respmod_Echo_BodiesByteIdentical(int size, string service) => EchoThroughRespmodAsync(size, service);

    internal static async Task EchoThroughRespmodAsync(int size, string service)
    {
        var payload = RandomNumberGenerator.GetBytes(size);
        await using var icap = await OwnIcapServer.StartAsync();
        await using var backend = await TestBackend.StartAsync(async ctx =>
        {
            ctx.Response.ContentType = "application/octet-stream";
            ctx.Response.ContentLength = payload.Length;
            // In 64 KB writes: one huge write would make the origin's own Kestrel copy the whole payload.
            for (var offset = 0; offset < payload.Length; offset += 65536)
            {
                await ctx.Response.Body.WriteAsync(payload.AsMemory(offset, Math.Min(65536, payload.Length - offset)));
            }
        });
        await using var gw = await GatewayHost.StartAsync(Config(backend.Uri,
            ("Gateway:Icap:Services:echo:Uri", icap.Uri(service)),
            ("Gateway:Adaptation:Respmod:0", "echo")));
        using var client = gw.CreateClient();

        GC.Collect();
        var before = GC.GetTotalMemory(forceFullCollection: true);
        long peak = 0;
        using var response = await client.GetAsync("/blob", HttpCompletionOption.ResponseHeadersRead);
        await using var stream = await response.Content.ReadAsStreamAsync();
        using var hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var buffer = new byte[81920];
        long total = 0;
        int n;
        while ((n = await stream.ReadAsync(buffer)) > 0)
        {
            hash.AppendData(buffer, 0, n);
            total += n;
            // Every 16 MB: live managed memory (a full collection), so garbage does not count, retained buffers do.
            if (size >= 100 * 1024 * 1024 && (total & 0xFFFFFF) < n) peak = Math.Max(peak, GC.GetTotalMemory(true) - before);
        }

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(size, total);
        Assert.Equal(SHA256.HashData(payload), hash.GetHashAndReset());
        Assert.Equal(size, response.Content.Headers.ContentLength);
        if (size >= 100 * 1024 * 1024)
        {
            // The payload itself (100 MB) was allocated before 'before'; streaming must not hold another copy.
            Assert.True(peak < 40L * 1024 * 1024, $"managed heap grew by {peak / 1024 / 1024} MB while streaming {size / 1024 / 1024} MB");
        }
    }

    [Theory]
    [InlineData("Bypass", 200)]
    [InlineData("Fail", 502)]
    public async Task Respmod_ServiceDown_FollowsOnError(string onError, int expected)
    {
        await using var backend = await TextBackend("original");
        await using var gw = await GatewayHost.StartAsync(Config(backend.Uri,
            ("Gateway:Icap:Services:gone:Uri", $"icap://127.0.0.1:{PortHelper.FreePort()}/echo"),
            ("Gateway:Icap:Services:gone:OnError", onError),
            ("Gateway:Adaptation:Respmod:0", "gone")));
        using var client = gw.CreateClient();

        using var response = await client.GetAsync("/x");
        var body = await response.Content.ReadAsStringAsync();

        Assert.Equal(expected, (int)response.StatusCode);
        if (expected == 200) Assert.Equal("original", body);
        else Assert.Contains("ICAP service 'gone'", body);
    }

    [Theory]
    [InlineData("Bypass", 200)]
    [InlineData("Fail", 500)]
    public async Task Reqmod_ServiceDown_FollowsOnError(string onError, int expected)
    {
        await using var backend = await TestBackend.StartAsync(async ctx =>
        {
            using var reader = new StreamReader(ctx.Request.Body);
            await ctx.Response.WriteAsync("got:" + await reader.ReadToEndAsync());
        });
        await using var gw = await GatewayHost.StartAsync(Config(backend.Uri,
            ("Gateway:Icap:Services:gone:Uri", $"icap://127.0.0.1:{PortHelper.FreePort()}/echo"),
            ("Gateway:Icap:Services:gone:OnError", onError),
            ("Gateway:Adaptation:Reqmod:0", "gone")));
        using var client = gw.CreateClient();

        using var response = await client.PostAsync("/x", new StringContent("payload"));
        var body = await response.Content.ReadAsStringAsync();

        Assert.Equal(expected, (int)response.StatusCode);
        if (expected == 200) Assert.Equal("got:payload", body);
        else
        {
            Assert.Contains("ICAP service 'gone'", body);
            Assert.Equal(0, backend.Requests);
        }
    }

    [Fact]
    public async Task SlowService_HitsIoTimeout()
    {
        await using var fake = new FakeIcapServer(FakeIcapServer.Mode.Silent);
        await using var backend = await TextBackend();
        await using var gw = await GatewayHost.StartAsync(Config(backend.Uri,
            ("Gateway:Icap:Services:slow:Uri", fake.Uri),
            ("Gateway:Icap:Services:slow:IoTimeout", "00:00:01"),
            ("Gateway:Adaptation:Respmod:0", "slow")));
        using var client = gw.CreateClient();

        using var response = await client.GetAsync("/x");
        var body = await response.Content.ReadAsStringAsync();

        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        Assert.Contains("timed out", body);
    }

    [Fact]
    public async Task GarbageAnswer_CountsAsFailure_AndLimitMarksDown_ThenRevivalBringsBack()
    {
        await using var fake = new FakeIcapServer(FakeIcapServer.Mode.Garbage);
        await using var backend = await TextBackend("original");
        await using var gw = await GatewayHost.StartAsync(Config(backend.Uri,
            ("Gateway:Icap:Services:bad:Uri", fake.Uri),
            ("Gateway:Icap:Services:bad:FailureLimit", "2"),
            ("Gateway:Icap:Services:bad:RevivalDelay", "00:00:01"),
            ("Gateway:Adaptation:Respmod:0", "bad")));
        using var client = gw.CreateClient();
        using var admin = gw.CreateAdminClient();

        using (var r1 = await client.GetAsync("/1")) Assert.Equal(HttpStatusCode.BadGateway, r1.StatusCode);
        using (var ready = await admin.GetAsync("/readyz")) Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        using (var r2 = await client.GetAsync("/2")) Assert.Equal(HttpStatusCode.BadGateway, r2.StatusCode);
        var transactions = fake.Transactions;
        using (var ready = await admin.GetAsync("/readyz"))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
            Assert.Contains("bad", await ready.Content.ReadAsStringAsync());
        }
        // While down, the service is not even asked.
        using (var r3 = await client.GetAsync("/3"))
        {
            Assert.Equal(HttpStatusCode.BadGateway, r3.StatusCode);
            Assert.Contains("service down", await r3.Content.ReadAsStringAsync());
        }
        Assert.Equal(transactions, fake.Transactions);

        // The service is fixed; after the revival delay the next request probes it and it is back.
        fake.CurrentMode = FakeIcapServer.Mode.Close;
        var registry = gw.Services.GetRequiredService<IcapServiceRegistry>();
        var sw = Stopwatch.StartNew();
        while (registry.Get("bad")!.Client.Health.IsDown && sw.Elapsed < TimeSpan.FromSeconds(20)) await Task.Delay(100);
        using (var r4 = await client.GetAsync("/4")) Assert.Equal(HttpStatusCode.BadGateway, r4.StatusCode);
        Assert.True(fake.Transactions > transactions, "after the revival delay the service is used again");
    }

    [Fact]
    public async Task Revival_BringsServiceBack_AndReadyzRecovers()
    {
        var port = PortHelper.FreePort();
        await using var backend = await TextBackend("original");
        await using var gw = await GatewayHost.StartAsync(Config(backend.Uri,
            ("Gateway:Icap:Services:e:Uri", $"icap://127.0.0.1:{port}/echo?prefer=200"),
            ("Gateway:Icap:Services:e:OnError", "Bypass"),
            ("Gateway:Icap:Services:e:FailureLimit", "1"),
            ("Gateway:Icap:Services:e:RevivalDelay", "00:00:01"),
            ("Gateway:Adaptation:Respmod:0", "e")));
        using var client = gw.CreateClient();
        using var admin = gw.CreateAdminClient();

        using (var r1 = await client.GetAsync("/1")) Assert.Equal("original", await r1.Content.ReadAsStringAsync());
        using (var ready = await admin.GetAsync("/readyz")) Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);

        await using var icap = await OwnIcapServer.StartAsync(port);
        var registry = gw.Services.GetRequiredService<IcapServiceRegistry>();
        var sw = Stopwatch.StartNew();
        while (registry.Get("e")!.Client.Health.IsDown && sw.Elapsed < TimeSpan.FromSeconds(20)) await Task.Delay(100);
        using (var r2 = await client.GetAsync("/2"))
        {
            Assert.Equal("original", await r2.Content.ReadAsStringAsync());
        }
        Assert.NotNull(registry.GetCurrentIsTag("e"));
        using (var ready = await admin.GetAsync("/readyz")) Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        using var services = await admin.GetAsync("/icap/services");
        Assert.Contains("\"state\": \"up\"", await services.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task ForwardProxyTraffic_IsAdapted()
    {
        await using var icap = await OwnIcapServer.StartAsync(extra: new UpperCaseService());
        await using var backend = await TextBackend("forward me");
        await using var gw = await GatewayHost.StartAsync(new Dictionary<string, string?>
        {
            ["Gateway:ForwardProxy:Enabled"] = "true",
            ["Gateway:Icap:Services:upper:Uri"] = icap.Uri("upper"),
            ["Gateway:Adaptation:Respmod:0"] = "upper",
        });
        using var client = gw.CreateForwardProxyClient();

        var body = await client.GetStringAsync(new Uri(backend.Uri, "/fwd"));

        Assert.Equal("FORWARD ME" + UpperCaseService.Suffix, body);
    }

    [Fact]
    public async Task RouteMetadata_ReplacesTheChain()
    {
        await using var icap = await OwnIcapServer.StartAsync(extra: new UpperCaseService());
        await using var backend = await TextBackend("quiet");
        var config = Config(backend.Uri,
            ("Gateway:Icap:Services:upper:Uri", icap.Uri("upper")),
            ("Gateway:Adaptation:Respmod:0", "upper"),
            ("ReverseProxy:Routes:plain:ClusterId", "backend"),
            ("ReverseProxy:Routes:plain:Match:Path", "/plain/{**rest}"),
            ("ReverseProxy:Routes:plain:Metadata:Adaptation.Respmod", ""));
        await using var gw = await GatewayHost.StartAsync(config);
        using var client = gw.CreateClient();

        Assert.Equal("quiet", await client.GetStringAsync("/plain/a"));
        Assert.Equal("QUIET" + UpperCaseService.Suffix, await client.GetStringAsync("/other"));
    }

    [Fact]
    public void InvalidConfiguration_ReportsEveryError()
    {
        var ex = Assert.Throws<GatewayConfigurationException>(() => GatewayHost.Build(new Dictionary<string, string?>
        {
            ["Gateway:Icap:Services:a:Uri"] = "http://not-icap/",
            ["Gateway:Icap:Services:a:OnError"] = "Explode",
            ["Gateway:Icap:Services:a:Colour"] = "blue",
            ["Gateway:Icap:Services:b:Uri"] = "icap://127.0.0.1:1344/echo",
            ["Gateway:Icap:Services:b:IoTimeout"] = "soon",
            ["Gateway:Adaptation:Respmod:0"] = "nosuch",
            ["Gateway:Adaptation:Bogus"] = "1",
        }));
        var keys = ex.Errors.Select(e => e.Key).ToArray();
        Assert.Contains("Gateway:Icap:Services:a:Uri", keys);
        Assert.Contains("Gateway:Icap:Services:a:OnError", keys);
        Assert.Contains("Gateway:Icap:Services:a:Colour", keys);
        Assert.Contains("Gateway:Icap:Services:b:IoTimeout", keys);
        Assert.Contains("Gateway:Adaptation:Respmod", keys);
        Assert.Contains("Gateway:Adaptation:Bogus", keys);
    }

    [Fact]
    public async Task EarlyAnswer_WhileTheBodyIsStillBeingSent_IsUsed()
    {
        await using var fake = new FakeIcapServer(FakeIcapServer.Mode.EarlyBlock);
        var payload = RandomNumberGenerator.GetBytes(8 * 1024 * 1024);
        await using var backend = await TestBackend.StartAsync(async ctx =>
        {
            ctx.Response.ContentLength = payload.Length;
            for (var offset = 0; offset < payload.Length; offset += 65536) await ctx.Response.Body.WriteAsync(payload.AsMemory(offset, 65536));
        });
        await using var gw = await GatewayHost.StartAsync(Config(backend.Uri,
            ("Gateway:Icap:Services:early:Uri", fake.Uri),
            ("Gateway:Adaptation:Respmod:0", "early")));
        using var client = gw.CreateClient();

        using var response = await client.GetAsync("/big");

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Equal("blocked early", await response.Content.ReadAsStringAsync());
        Assert.Equal(13, response.Content.Headers.ContentLength);
    }

    [Fact]
    public async Task TransferIgnore_SkipsTheService()
    {
        await using var fake = new FakeIcapServer(FakeIcapServer.Mode.Garbage) { OptionsExtra = "Transfer-Ignore: jpg, png\r\nTransfer-Preview: *\r\n" };
        await using var backend = await TextBackend("picture bytes");
        await using var gw = await GatewayHost.StartAsync(Config(backend.Uri,
            ("Gateway:Icap:Services:f:Uri", fake.Uri),
            ("Gateway:Adaptation:Respmod:0", "f")));
        using var client = gw.CreateClient();

        Assert.Equal("picture bytes", await client.GetStringAsync("/img/cat.JPG?size=2"));
        Assert.Equal(0, fake.Transactions);
    }

    [Fact]
    public async Task Reqmod_SendsClientIpAndAuthenticatedUser()
    {
        await using var fake = new FakeIcapServer(FakeIcapServer.Mode.NoContent);
        await using var backend = await TextBackend();
        await using var gw = await GatewayHost.StartAsync(Config(backend.Uri,
            ("Gateway:Icap:Services:f:Uri", fake.Uri),
            ("Gateway:Adaptation:Reqmod:0", "f")));
        using var client = gw.CreateClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, "/who");
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes("alice:secret")));

        using var response = await client.SendAsync(request);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Contains("X-Client-IP: 127.0.0.1\r\n", fake.LastRequest);
        Assert.Contains("X-Authenticated-User: " + Convert.ToBase64String(Encoding.UTF8.GetBytes("alice")) + "\r\n", fake.LastRequest);
        Assert.Contains("Allow: 204", fake.LastRequest);
        Assert.Equal(1, backend.Requests);
    }

    [Fact]
    public async Task Respmod_LargeBody_IsSentWithoutAllow204()
    {
        await using var fake = new FakeIcapServer(FakeIcapServer.Mode.EarlyBlock);
        await using var backend = await TextBackend(new string('a', 100_000));
        await using var gw = await GatewayHost.StartAsync(Config(backend.Uri,
            ("Gateway:Icap:Services:f:Uri", fake.Uri),
            ("Gateway:Adaptation:Respmod:0", "f")));
        using var client = gw.CreateClient();

        using var response = await client.GetAsync("/large");

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.DoesNotContain("Allow: 204", fake.LastRequest);
    }

    [Fact]
    public async Task CacheSeam_ReportsCurrentIsTags()
    {
        await using var fake = new FakeIcapServer(FakeIcapServer.Mode.NoContent);
        await using var backend = await TextBackend();
        await using var gw = await GatewayHost.StartAsync(Config(backend.Uri,
            ("Gateway:Icap:Services:f:Uri", fake.Uri),
            ("Gateway:Adaptation:Respmod:0", "f")));
        using var client = gw.CreateClient();

        using var response = await client.GetAsync("/tagged");
        var registry = gw.Services.GetRequiredService<IcapServiceRegistry>();

        Assert.Equal("\"FAKE-1\"", registry.GetCurrentIsTag("f"));
        var context = new DefaultHttpContext();
        Assert.Equal("\"FAKE-1\"", registry.GetCurrentTags(context)!["f"]);
    }

    [Fact]
    public async Task Reqmod_RewritesRequestLineAndBody()
    {
        await using var icap = await OwnIcapServer.StartAsync(extra: new RewriteService());
        await using var backend = await TestBackend.StartAsync(async ctx =>
        {
            using var reader = new StreamReader(ctx.Request.Body);
            await ctx.Response.WriteAsync($"{ctx.Request.Method} {ctx.Request.Path}{ctx.Request.QueryString} {await reader.ReadToEndAsync()}");
        });
        await using var gw = await GatewayHost.StartAsync(Config(backend.Uri,
            ("Gateway:Icap:Services:rw:Uri", icap.Uri("rewrite")),
            ("Gateway:Adaptation:Reqmod:0", "rw")));
        using var client = gw.CreateClient();

        using var response = await client.PostAsync("/old/item?id=7", new StringContent("original body"));

        Assert.Equal("PUT /new/item?id=7 rewritten body", await response.Content.ReadAsStringAsync());
        Assert.Equal(0, backend.RequestsFor("/old/item?id=7"));
    }

    [Fact]
    public async Task Chain_AppliesServicesInOrder()
    {
        await using var icap = await OwnIcapServer.StartAsync(extra: new UpperCaseService());
        await using var backend = await TextBackend("twice");
        await using var gw = await GatewayHost.StartAsync(Config(backend.Uri,
            ("Gateway:Icap:Services:echo:Uri", icap.Uri("echo?prefer=200")),
            ("Gateway:Icap:Services:upper:Uri", icap.Uri("upper")),
            ("Gateway:Adaptation:Respmod:0", "echo"),
            ("Gateway:Adaptation:Respmod:1", "upper"),
            ("Gateway:Adaptation:Respmod:2", "echo")));
        using var client = gw.CreateClient();

        using var response = await client.GetAsync("/chain");

        var expected = "TWICE" + UpperCaseService.Suffix;
        Assert.Equal(expected, await response.Content.ReadAsStringAsync());
        Assert.Equal(expected.Length, response.Content.Headers.ContentLength);
    }

    [Fact]
    public async Task PooledConnectionClosedBeforeAnswer_IsRetriedOnce()
    {
        await using var fake = new FakeIcapServer(FakeIcapServer.Mode.CloseSecond);
        await using var backend = await TextBackend("original");
        await using var gw = await GatewayHost.StartAsync(Config(backend.Uri,
            ("Gateway:Icap:Services:f:Uri", fake.Uri),
            ("Gateway:Adaptation:Respmod:0", "f")));
        using var client = gw.CreateClient();

        Assert.Equal("original", await client.GetStringAsync("/1"));
        Assert.Equal("original", await client.GetStringAsync("/2"));

        // /2 was sent on the pooled connection (dropped without an answer), then once more on a fresh one.
        Assert.Equal(3, fake.Transactions);
        var registry = gw.Services.GetRequiredService<IcapServiceRegistry>();
        Assert.Equal(0, registry.Get("f")!.Client.Health.TotalFailures);
    }

    [Fact]
    public async Task Non200Options_MarksTheServiceDown()
    {
        await using var fake = new FakeIcapServer(FakeIcapServer.Mode.NoContent) { OptionsStatus = "404 ICAP Service Not Found" };
        await using var backend = await TextBackend("original");
        await using var gw = await GatewayHost.StartAsync(Config(backend.Uri,
            ("Gateway:Icap:Services:f:Uri", fake.Uri),
            ("Gateway:Icap:Services:f:OnError", "Bypass"),
            ("Gateway:Adaptation:Respmod:0", "f")));
        using var client = gw.CreateClient();
        using var admin = gw.CreateAdminClient();

        Assert.Equal("original", await client.GetStringAsync("/1"));

        using var ready = await admin.GetAsync("/readyz");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
        Assert.Contains("OPTIONS answered 404", await ready.Content.ReadAsStringAsync());
        Assert.Equal(0, fake.Transactions);
    }

    [Fact]
    public async Task Respmod_HeadRequest_KeepsHeadersAndSendsNoBody()
    {
        await using var icap = await OwnIcapServer.StartAsync();
        await using var backend = await TextBackend("twelve bytes");
        await using var gw = await GatewayHost.StartAsync(Config(backend.Uri,
            ("Gateway:Icap:Services:echo:Uri", icap.Uri("echo?prefer=200")),
            ("Gateway:Icap:Services:echo:MaxConnections", "1"),
            ("Gateway:Adaptation:Respmod:0", "echo")));
        using var client = gw.CreateClient();

        for (var i = 0; i < 3; i++)
        {
            using var head = await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, "/h"));
            Assert.Equal(HttpStatusCode.OK, head.StatusCode);
            Assert.Equal(12, head.Content.Headers.ContentLength);
            Assert.Empty(await head.Content.ReadAsByteArrayAsync());
        }
        // With one pooled connection, a leaked one would make this wait forever.
        Assert.Equal("twelve bytes", await client.GetStringAsync("/g"));
    }

    [Fact]
    public async Task Telemetry_ActivityPerCall_WithServiceStatusIsTagAndBytes()
    {
        var stopped = new System.Collections.Concurrent.ConcurrentQueue<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == "Gateway",
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = a => { if (a.OperationName.StartsWith("ICAP ", StringComparison.Ordinal)) stopped.Enqueue(a); },
        };
        ActivitySource.AddActivityListener(listener);
        await using var icap = await OwnIcapServer.StartAsync();
        await using var backend = await TextBackend("measured body");
        await using var gw = await GatewayHost.StartAsync(Config(backend.Uri,
            ("Gateway:Icap:Services:echo:Uri", icap.Uri("echo?prefer=200")),
            ("Gateway:Adaptation:Respmod:0", "echo")));
        using var client = gw.CreateClient();

        Assert.Equal("measured body", await client.GetStringAsync("/t"));

        var sw = Stopwatch.StartNew();
        while (stopped.IsEmpty && sw.Elapsed < TimeSpan.FromSeconds(10)) await Task.Delay(20);
        var activity = Assert.Single(stopped);
        Assert.Equal("ICAP RESPMOD", activity.OperationName);
        Assert.Equal(ActivityKind.Client, activity.Kind);
        Assert.Equal("echo", activity.GetTagItem("icap.service"));
        Assert.Equal("RESPMOD", activity.GetTagItem("icap.method"));
        Assert.Equal(200, activity.GetTagItem("icap.status"));
        Assert.StartsWith("\"GW-", (string)activity.GetTagItem("icap.istag")!);
        Assert.True((long)activity.GetTagItem("icap.bytes_sent")! > 13);
        Assert.True((long)activity.GetTagItem("icap.bytes_received")! > 13);
        Assert.Equal(13L, activity.GetTagItem("icap.body_bytes"));
    }
}
