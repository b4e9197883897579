using System.Net;
using System.Text;
using Microsoft.AspNetCore.Http;

namespace Gateway.Tests.Caching;

/// <summary>RFC 9111 behaviour end to end: real origin (headers set by the test, requests counted) → real gateway.</summary>
public sealed class CacheSemanticsTests
{
    private static RequestDelegate Respond(string body, params (string Name, string Value)[] headers) => async context =>
    {
        foreach (var (name, value) in headers)
        {
            context.Response.Headers.Append(name, value);
        }
        context.Response.ContentType = "text/plain";
        await context.Response.WriteAsync(body);
    };

    [Fact]
    public async Task Serves_FreshHit_WithoutOrigin()
    {
        await using var rig = await CacheRig.StartAsync(Respond("hello", ("Cache-Control", "max-age=60")));
        var (r1, b1) = await rig.GetAsync("/a");
        var (r2, b2) = await rig.GetAsync("/a");
        Assert.Equal("hello", b1);
        Assert.Equal("hello", b2);
        Assert.Equal(1, rig.Backend.Requests);
        Assert.Contains("fwd=uri-miss", r1.CacheStatus());
        Assert.Contains("stored", r1.CacheStatus());
        Assert.Contains("; hit; ttl=", r2.CacheStatus());
        Assert.NotNull(r2.Headers.Age);
        Assert.Equal("text/plain", r2.Content.Headers.ContentType!.MediaType);
        Assert.Equal(5, r2.Content.Headers.ContentLength);
    }

    [Theory]
    [InlineData("no-store")]
    [InlineData("private, max-age=60")]
    [InlineData("max-age=60, no-store")]
    public async Task DoesNotStore_NoStoreOrPrivate(string cacheControl)
    {
        await using var rig = await CacheRig.StartAsync(Respond("x", ("Cache-Control", cacheControl)));
        await rig.GetAsync("/p");
        var (r2, _) = await rig.GetAsync("/p");
        Assert.Equal(2, rig.Backend.Requests);
        Assert.DoesNotContain("stored", r2.CacheStatus());
    }

    [Fact]
    public async Task DoesNotStore_WithoutFreshnessOrValidator()
    {
        await using var rig = await CacheRig.StartAsync(Respond("x"));
        await rig.GetAsync("/n");
        await rig.GetAsync("/n");
        Assert.Equal(2, rig.Backend.Requests);
    }

    [Fact]
    public async Task DoesNotStore_PostOrNonCacheableStatus()
    {
        await using var rig = await CacheRig.StartAsync(async c =>
        {
            c.Response.StatusCode = c.Request.Path == "/500" ? 500 : 200;
            c.Response.Headers.CacheControl = "max-age=60";
            await c.Response.WriteAsync("x");
        });
        await rig.GetAsync("/500");
        await rig.GetAsync("/500");
        Assert.Equal(2, rig.Backend.RequestsFor("/500"));
        var p1 = await rig.Client.PostAsync("/post", new StringContent("a"));
        var p2 = await rig.Client.PostAsync("/post", new StringContent("a"));
        Assert.Equal(2, rig.Backend.RequestsFor("/post"));
        Assert.Contains("fwd=method", p2.CacheStatus());
    }

    [Fact]
    public async Task Authorization_StoredOnlyWithPublicSMaxAgeOrMustRevalidate()
    {
        await using var rig = await CacheRig.StartAsync(async c =>
        {
            c.Response.Headers.CacheControl = c.Request.Path == "/public" ? "public, max-age=60" : "max-age=60";
            await c.Response.WriteAsync("secret");
        });
        var auth = ("Authorization", "Bearer abc");
        await rig.GetAsync("/plain", auth);
        await rig.GetAsync("/plain", auth);
        Assert.Equal(2, rig.Backend.RequestsFor("/plain"));
        await rig.GetAsync("/public", auth);
        await rig.GetAsync("/public", auth);
        Assert.Equal(1, rig.Backend.RequestsFor("/public"));
    }

    [Fact]
    public async Task SetCookie_NeverServedToAnotherClient()
    {
        await using var rig = await CacheRig.StartAsync(async c =>
        {
            c.Response.Headers.CacheControl = c.Request.Path == "/public" ? "public, max-age=60" : "max-age=60";
            c.Response.Headers.SetCookie = "session=alice";
            await c.Response.WriteAsync("page");
        });
        var (first, _) = await rig.GetAsync("/plain");
        Assert.Contains("session=alice", first.Header("Set-Cookie"));
        await rig.GetAsync("/plain");
        Assert.Equal(2, rig.Backend.RequestsFor("/plain"));

        var (p1, _) = await rig.GetAsync("/public");
        Assert.Contains("session=alice", p1.Header("Set-Cookie"));
        var (p2, body) = await rig.GetAsync("/public");
        Assert.Equal(1, rig.Backend.RequestsFor("/public"));
        Assert.Equal("page", body);
        Assert.Null(p2.Header("Set-Cookie"));
    }

    [Fact]
    public async Task Freshness_FromExpires_AndSMaxAgeOverMaxAge()
    {
        await using var rig = await CacheRig.StartAsync(async c =>
        {
            if (c.Request.Path == "/expires")
            {
                c.Response.Headers.Expires = DateTimeOffset.UtcNow.AddSeconds(100).ToString("r");
            }
            else
            {
                c.Response.Headers.CacheControl = "max-age=1000, s-maxage=10";
            }
            await c.Response.WriteAsync("x");
        });
        await rig.GetAsync("/expires");
        await rig.GetAsync("/smax");
        rig.Time.Advance(TimeSpan.FromSeconds(50));
        await rig.GetAsync("/expires");
        var (smax, _) = await rig.GetAsync("/smax");
        Assert.Equal(1, rig.Backend.RequestsFor("/expires"));
        Assert.Equal(2, rig.Backend.RequestsFor("/smax"));
        rig.Time.Advance(TimeSpan.FromSeconds(60));
        await rig.GetAsync("/expires");
        Assert.Equal(2, rig.Backend.RequestsFor("/expires"));
    }

    [Fact]
    public async Task Freshness_Heuristic_TenPercentOfLastModified_Capped()
    {
        await using var rig = await CacheRig.StartAsync(async c =>
        {
            var days = c.Request.Path == "/old" ? 100 : 1;
            c.Response.Headers.LastModified = DateTimeOffset.UtcNow.AddDays(-days).ToString("r");
            await c.Response.WriteAsync("x");
        });
        await rig.GetAsync("/recent");   // 1 day old → fresh for 2.4 h
        await rig.GetAsync("/old");      // 100 days old → 10 days, capped at HeuristicMax (1 day)
        rig.Time.Advance(TimeSpan.FromHours(2));
        await rig.GetAsync("/recent");
        await rig.GetAsync("/old");
        Assert.Equal(1, rig.Backend.RequestsFor("/recent"));
        Assert.Equal(1, rig.Backend.RequestsFor("/old"));
        rig.Time.Advance(TimeSpan.FromHours(1));
        await rig.GetAsync("/recent");
        Assert.Equal(2, rig.Backend.RequestsFor("/recent"));
        rig.Time.Advance(TimeSpan.FromHours(22));
        await rig.GetAsync("/old");
        Assert.Equal(2, rig.Backend.RequestsFor("/old"));
    }

    [Fact]
    public async Task Age_IncludesOriginAgeAndResidentTime()
    {
        await using var rig = await CacheRig.StartAsync(Respond("x", ("Cache-Control", "max-age=3600"), ("Age", "100")));
        await rig.GetAsync("/age");
        rig.Time.Advance(TimeSpan.FromSeconds(30));
        var (r, _) = await rig.GetAsync("/age");
        var age = r.Headers.Age!.Value.TotalSeconds;
        Assert.InRange(age, 130, 135);
        Assert.Contains("ttl=34", r.CacheStatus());
    }

    [Fact]
    public async Task Vary_KeepsOneVariantPerRequestValue()
    {
        await using var rig = await CacheRig.StartAsync(async c =>
        {
            c.Response.Headers.CacheControl = "max-age=60";
            c.Response.Headers.Vary = "Accept-Language";
            await c.Response.WriteAsync("lang=" + c.Request.Headers.AcceptLanguage);
        });
        var (_, en1) = await rig.GetAsync("/v", ("Accept-Language", "en"));
        var (fr1r, fr1) = await rig.GetAsync("/v", ("Accept-Language", "fr"));
        var (_, en2) = await rig.GetAsync("/v", ("Accept-Language", "en"));
        var (_, fr2) = await rig.GetAsync("/v", ("Accept-Language", "fr"));
        var (_, none) = await rig.GetAsync("/v");
        Assert.Equal("lang=en", en1);
        Assert.Equal("lang=en", en2);
        Assert.Equal("lang=fr", fr2);
        Assert.Equal("lang=", none);
        Assert.Contains("fwd=vary-miss", fr1r.CacheStatus());
        Assert.Equal(3, rig.Backend.Requests);
    }

    [Fact]
    public async Task RequestDirectives_MaxAgeMinFreshNoCacheNoStore()
    {
        await using var rig = await CacheRig.StartAsync(Respond("x", ("Cache-Control", "max-age=100")));
        await rig.GetAsync("/d");
        rig.Time.Advance(TimeSpan.FromSeconds(50));
        await rig.GetAsync("/d", ("Cache-Control", "max-age=60"));
        Assert.Equal(1, rig.Backend.Requests);
        await rig.GetAsync("/d", ("Cache-Control", "max-age=10"));
        Assert.Equal(2, rig.Backend.Requests);
        await rig.GetAsync("/d", ("Cache-Control", "min-fresh=200"));
        Assert.Equal(3, rig.Backend.Requests);
        var (nc, _) = await rig.GetAsync("/d", ("Cache-Control", "no-cache"));
        Assert.Equal(4, rig.Backend.Requests);
        Assert.Contains("fwd=request", nc.CacheStatus());
        await rig.GetAsync("/d", ("Pragma", "no-cache"));
        Assert.Equal(5, rig.Backend.Requests);

        await rig.GetAsync("/ns", ("Cache-Control", "no-store"));
        await rig.GetAsync("/ns");
        Assert.Equal(2, rig.Backend.RequestsFor("/ns"));
    }

    [Fact]
    public async Task MaxStale_ServesStale_UnlessMustRevalidate()
    {
        await using var rig = await CacheRig.StartAsync(async c =>
        {
            c.Response.Headers.CacheControl = c.Request.Path == "/mr" ? "max-age=10, must-revalidate" : "max-age=10";
            await c.Response.WriteAsync("x");
        });
        await rig.GetAsync("/s");
        await rig.GetAsync("/mr");
        rig.Time.Advance(TimeSpan.FromSeconds(30));
        var (stale, _) = await rig.GetAsync("/s", ("Cache-Control", "max-stale=60"));
        Assert.Equal(1, rig.Backend.RequestsFor("/s"));
        Assert.Contains("ttl=-20", stale.CacheStatus());
        await rig.GetAsync("/s", ("Cache-Control", "max-stale=5"));
        Assert.Equal(2, rig.Backend.RequestsFor("/s"));
        await rig.GetAsync("/mr", ("Cache-Control", "max-stale"));
        Assert.Equal(2, rig.Backend.RequestsFor("/mr"));
    }

    [Theory]
    [InlineData("max-age=10, proxy-revalidate")]
    [InlineData("max-age=10, s-maxage=10")]
    [InlineData("max-age=10, must-revalidate")]
    public async Task RevalidateDirectives_ForbidStaleWithoutRevalidation(string cacheControl)
    {
        await using var rig = await CacheRig.StartAsync(Respond("x", ("Cache-Control", cacheControl + ", stale-while-revalidate=600, stale-if-error=600")));
        await rig.GetAsync("/pr");
        rig.Time.Advance(TimeSpan.FromSeconds(30));
        var (r, _) = await rig.GetAsync("/pr", ("Cache-Control", "max-stale=600"));
        Assert.Equal(2, rig.Backend.Requests);
        Assert.DoesNotContain("; hit;", r.CacheStatus());
    }

    [Fact]
    public async Task ResponseNoCache_IsStoredButAlwaysRevalidated()
    {
        await using var rig = await CacheRig.StartAsync(async c =>
        {
            c.Response.Headers.CacheControl = "no-cache, max-age=600";
            c.Response.Headers.ETag = "\"nc\"";
            if (c.Request.Headers.IfNoneMatch == "\"nc\"")
            {
                c.Response.StatusCode = 304;
                return;
            }
            await c.Response.WriteAsync("revalidate me");
        });
        await rig.GetAsync("/nc");
        var (r, body) = await rig.GetAsync("/nc");
        Assert.Equal("revalidate me", body);
        Assert.Equal(2, rig.Backend.Requests);
        Assert.Contains("fwd-status=304", r.CacheStatus());
    }

    [Fact]
    public async Task RangeMiss_IsForwarded_NotStored_HeadMissNotStored()
    {
        await using var rig = await CacheRig.StartAsync(async c =>
        {
            c.Response.Headers.CacheControl = "max-age=600";
            if (c.Request.Headers.Range.Count > 0)
            {
                c.Response.StatusCode = 206;
                c.Response.Headers.ContentRange = "bytes 0-1/10";
                await c.Response.WriteAsync("01");
                return;
            }
            c.Response.ContentLength = 10;
            if (!HttpMethods.IsHead(c.Request.Method))
            {
                await c.Response.WriteAsync("0123456789");
            }
        });
        var (r, body) = await rig.GetAsync("/rm", ("Range", "bytes=0-1"));
        Assert.Equal(HttpStatusCode.PartialContent, r.StatusCode);
        Assert.Equal("01", body);
        using var head = await rig.Client.SendAsync(new HttpRequestMessage(HttpMethod.Head, "/rm"));
        await rig.Gateway.WaitForCacheIdleAsync();
        Assert.Equal(0, rig.Store.Count);
        var (full, fullBody) = await rig.GetAsync("/rm");
        Assert.Equal("0123456789", fullBody);
        Assert.Equal(1, rig.Store.Count);
        Assert.Equal(3, rig.Backend.Requests);
    }

    [Fact]
    public async Task OnlyIfCached_Miss_Is504()
    {
        await using var rig = await CacheRig.StartAsync(Respond("x", ("Cache-Control", "max-age=60")));
        var (miss, _) = await rig.GetAsync("/o", ("Cache-Control", "only-if-cached"));
        Assert.Equal(HttpStatusCode.GatewayTimeout, miss.StatusCode);
        Assert.Equal(0, rig.Backend.Requests);
        await rig.GetAsync("/o");
        var (hit, body) = await rig.GetAsync("/o", ("Cache-Control", "only-if-cached"));
        Assert.Equal(HttpStatusCode.OK, hit.StatusCode);
        Assert.Equal("x", body);
        Assert.Equal(1, rig.Backend.Requests);
    }

    [Fact]
    public async Task Revalidation_304_UpdatesStoredHeaders_AndServesStoredBody()
    {
        var version = 1;
        await using var rig = await CacheRig.StartAsync(async c =>
        {
            c.Response.Headers.CacheControl = "max-age=10";
            c.Response.Headers.ETag = "\"v1\"";
            c.Response.Headers["X-Version"] = version.ToString();
            if (c.Request.Headers.IfNoneMatch == "\"v1\"")
            {
                c.Response.StatusCode = 304;
                return;
            }
            await c.Response.WriteAsync("body-v1");
        });
        await rig.GetAsync("/r");
        rig.Time.Advance(TimeSpan.FromSeconds(20));
        version = 2;
        var (r, body) = await rig.GetAsync("/r");
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        Assert.Equal("body-v1", body);
        Assert.Equal("2", r.Header("X-Version"));
        Assert.Contains("fwd=stale; fwd-status=304", r.CacheStatus());
        Assert.Equal(2, rig.Backend.Requests);
        Assert.Equal("\"v1\"", rig.Backend.Last!.Headers["If-None-Match"]);
        // Fresh again after the 304: the next one is a hit with the updated header.
        var (r3, _) = await rig.GetAsync("/r");
        Assert.Equal(2, rig.Backend.Requests);
        Assert.Equal("2", r3.Header("X-Version"));
        Assert.Contains("; hit;", r3.CacheStatus());
    }

    [Fact]
    public async Task Revalidation_UsesIfModifiedSince_AndNewBodyReplacesEntry()
    {
        var lastModified = DateTimeOffset.UtcNow.AddDays(-1).ToString("r");
        var n = 0;
        await using var rig = await CacheRig.StartAsync(async c =>
        {
            n++;
            c.Response.Headers.CacheControl = "max-age=10";
            c.Response.Headers.LastModified = lastModified;
            await c.Response.WriteAsync("body" + n);
        });
        await rig.GetAsync("/ims");
        rig.Time.Advance(TimeSpan.FromSeconds(20));
        var (r, body) = await rig.GetAsync("/ims");
        Assert.Equal(lastModified, rig.Backend.Last!.Headers["If-Modified-Since"]);
        Assert.Equal("body2", body);
        var (_, body3) = await rig.GetAsync("/ims");
        Assert.Equal("body2", body3);
        Assert.Equal(2, rig.Backend.Requests);
    }

    [Fact]
    public async Task ClientConditionals_AnsweredFromCache()
    {
        var lm = DateTimeOffset.UtcNow.AddDays(-1);
        await using var rig = await CacheRig.StartAsync(Respond("x", ("Cache-Control", "max-age=60"), ("ETag", "\"e1\""), ("Last-Modified", lm.ToString("r"))));
        await rig.GetAsync("/c");
        var (inm, _) = await rig.GetAsync("/c", ("If-None-Match", "W/\"e1\""));
        Assert.Equal(HttpStatusCode.NotModified, inm.StatusCode);
        var (other, body) = await rig.GetAsync("/c", ("If-None-Match", "\"zz\""));
        Assert.Equal(HttpStatusCode.OK, other.StatusCode);
        Assert.Equal("x", body);
        var (ims, _) = await rig.GetAsync("/c", ("If-Modified-Since", DateTimeOffset.UtcNow.ToString("r")));
        Assert.Equal(HttpStatusCode.NotModified, ims.StatusCode);
        var (older, _) = await rig.GetAsync("/c", ("If-Modified-Since", lm.AddDays(-1).ToString("r")));
        Assert.Equal(HttpStatusCode.OK, older.StatusCode);
        Assert.Equal(1, rig.Backend.Requests);
    }

    [Fact]
    public async Task StaleIfError_ServesStale_ButNotWhenMustRevalidate()
    {
        var fail = false;
        await using var rig = await CacheRig.StartAsync(async c =>
        {
            if (fail)
            {
                c.Response.StatusCode = 503;
                await c.Response.WriteAsync("down");
                return;
            }
            c.Response.Headers.CacheControl = c.Request.Path == "/mr" ? "max-age=10, stale-if-error=600, must-revalidate" : "max-age=10, stale-if-error=600";
            c.Response.Headers.ETag = "\"a\"";
            await c.Response.WriteAsync("good");
        });
        await rig.GetAsync("/sie");
        await rig.GetAsync("/mr");
        rig.Time.Advance(TimeSpan.FromSeconds(60));
        fail = true;
        var (r, body) = await rig.GetAsync("/sie");
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        Assert.Equal("good", body);
        Assert.Contains("stale-if-error", r.CacheStatus());
        var (mr, mrBody) = await rig.GetAsync("/mr");
        Assert.Equal(HttpStatusCode.ServiceUnavailable, mr.StatusCode);
        Assert.Equal("down", mrBody);
    }

    [Fact]
    public async Task StaleIfError_WhenOriginUnreachable()
    {
        await using var rig = await CacheRig.StartAsync(Respond("good", ("Cache-Control", "max-age=10, stale-if-error=600")));
        await rig.GetAsync("/gone");
        rig.Time.Advance(TimeSpan.FromSeconds(60));
        await rig.Backend.DisposeAsync();
        var (r, body) = await rig.GetAsync("/gone");
        Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        Assert.Equal("good", body);
    }

    [Fact]
    public async Task StaleWhileRevalidate_ServesStale_AndRefreshesInBackground()
    {
        var n = 0;
        await using var rig = await CacheRig.StartAsync(async c =>
        {
            var v = Interlocked.Increment(ref n);
            c.Response.Headers.CacheControl = "max-age=10, stale-while-revalidate=600";
            c.Response.Headers.ETag = "\"v" + v + "\"";
            await c.Response.WriteAsync("v" + v);
        });
        await rig.GetAsync("/swr");
        rig.Time.Advance(TimeSpan.FromSeconds(30));
        var (r, body) = await rig.GetAsync("/swr");
        Assert.Equal("v1", body);
        Assert.Contains("stale-while-revalidate", r.CacheStatus());
        // The background refresh reaches the origin and stores v2.
        for (var i = 0; i < 200 && rig.Backend.Requests < 2; i++)
        {
            await Task.Delay(25);
        }
        Assert.Equal(2, rig.Backend.Requests);
        string latest = "";
        for (var i = 0; i < 200; i++)
        {
            (_, latest) = await rig.GetAsync("/swr");
            if (latest == "v2")
            {
                break;
            }
            await Task.Delay(25);
        }
        Assert.Equal("v2", latest);
        Assert.Equal(2, rig.Backend.Requests);
        // The refresh marker never reaches the origin, and a client cannot forge it.
        Assert.All(rig.Backend.Recorded, r => Assert.False(r.Headers.ContainsKey("X-Gateway-Cache-Refresh")));
        var (forged, _) = await rig.GetAsync("/swr", ("X-Gateway-Cache-Refresh", "guess"));
        Assert.Contains("; hit;", forged.CacheStatus());
        Assert.Equal(2, rig.Backend.Requests);
    }

    [Fact]
    public async Task UnsafeMethod_InvalidatesUrlAndLocation()
    {
        await using var rig = await CacheRig.StartAsync(async c =>
        {
            if (HttpMethods.IsPost(c.Request.Method))
            {
                c.Response.StatusCode = 201;
                c.Response.Headers.Location = "/other";
                return;
            }
            c.Response.Headers.CacheControl = "max-age=600";
            await c.Response.WriteAsync("x");
        });
        await rig.GetAsync("/item");
        await rig.GetAsync("/other");
        await rig.GetAsync("/item");
        await rig.GetAsync("/other");
        Assert.Equal(1, rig.Backend.RequestsFor("/item"));
        Assert.Equal(1, rig.Backend.RequestsFor("/other"));
        var post = await rig.Client.PostAsync("/item", new StringContent("change"));
        Assert.Equal(HttpStatusCode.Created, post.StatusCode);
        await rig.GetAsync("/item");
        await rig.GetAsync("/other");
        Assert.Equal(3, rig.Backend.RequestsFor("/item")); // GET, POST, GET
        Assert.Equal(2, rig.Backend.RequestsFor("/other"));
    }

    [Fact]
    public async Task Head_AnsweredFromStoredGet()
    {
        await using var rig = await CacheRig.StartAsync(Respond("0123456789", ("Cache-Control", "max-age=60")));
        await rig.GetAsync("/h");
        using var head = await rig.Client.SendAsync(new HttpRequestMessage(HttpMethod.Head, "/h"));
        Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        Assert.Equal(10, head.Content.Headers.ContentLength);
        Assert.Contains("; hit;", head.CacheStatus());
        Assert.Equal(1, rig.Backend.Requests);
    }

    [Fact]
    public async Task Range_FromCompleteEntry_206_416_AndMultiRangeFull()
    {
        await using var rig = await CacheRig.StartAsync(Respond("0123456789", ("Cache-Control", "max-age=60"), ("ETag", "\"r\"")));
        await rig.GetAsync("/range");
        var (r1, b1) = await rig.GetAsync("/range", ("Range", "bytes=2-5"));
        Assert.Equal(HttpStatusCode.PartialContent, r1.StatusCode);
        Assert.Equal("2345", b1);
        Assert.Equal("bytes 2-5/10", r1.Content.Headers.ContentRange!.ToString());
        var (r2, b2) = await rig.GetAsync("/range", ("Range", "bytes=-3"));
        Assert.Equal("789", b2);
        var (r3, b3) = await rig.GetAsync("/range", ("Range", "bytes=7-"));
        Assert.Equal("789", b3);
        var (r4, _) = await rig.GetAsync("/range", ("Range", "bytes=20-30"));
        Assert.Equal(HttpStatusCode.RequestedRangeNotSatisfiable, r4.StatusCode);
        Assert.Equal("bytes */10", r4.Content.Headers.ContentRange!.ToString());
        var (r5, b5) = await rig.GetAsync("/range", ("Range", "bytes=0-1,4-5"));
        Assert.Equal(HttpStatusCode.OK, r5.StatusCode);
        Assert.Equal("0123456789", b5);
        var (r6, b6) = await rig.GetAsync("/range", ("Range", "bytes=0-1"), ("If-Range", "\"other\""));
        Assert.Equal(HttpStatusCode.OK, r6.StatusCode);
        var (r7, b7) = await rig.GetAsync("/range", ("Range", "bytes=0-1"), ("If-Range", "\"r\""));
        Assert.Equal("01", b7);
        Assert.Equal(1, rig.Backend.Requests);
    }

    [Fact]
    public async Task CacheStatus_OnEveryResponse()
    {
        await using var rig = await CacheRig.StartAsync(async c =>
        {
            c.Response.StatusCode = c.Request.Path == "/404" ? 404 : 200;
            await c.Response.WriteAsync("x");
        });
        var responses = new List<HttpResponseMessage>
        {
            (await rig.GetAsync("/plain")).Response,
            (await rig.GetAsync("/404")).Response,
            await rig.Client.PostAsync("/post", new StringContent("a")),
            await rig.Client.SendAsync(new HttpRequestMessage(HttpMethod.Head, "/plain")),
            (await rig.GetAsync("/x", ("Cache-Control", "only-if-cached"))).Response,
        };
        foreach (var r in responses)
        {
            Assert.StartsWith("gateway", r.CacheStatus());
        }
    }

    [Fact]
    public async Task OriginDyingMidBody_LeavesNoEntry()
    {
        var n = 0;
        CacheRig? rigRef = null;
        await using var rig = await CacheRig.StartAsync(async c =>
        {
            c.Response.Headers.CacheControl = "max-age=600";
            c.Response.ContentLength = 100_000;
            await c.Response.Body.WriteAsync(new byte[40_000]);
            await c.Response.Body.FlushAsync();
            if (Interlocked.Increment(ref n) == 1)
            {
                // Die only once the gateway is teeing this body into a temporary file.
                var tmp = Path.Combine(rigRef!.CacheDir, ".tmp");
                for (var i = 0; i < 200 && !Directory.EnumerateFiles(tmp).Any(); i++)
                {
                    await Task.Delay(25);
                }
                c.Abort();
                return;
            }
            await c.Response.Body.WriteAsync(new byte[60_000]);
        });
        rigRef = rig;
        var ex = await Record.ExceptionAsync(() => rig.GetAsync("/die"));
        Assert.True(ex is not null, "the client should see the broken response: " + rig.Backend.Requests + " " + rig.Store.Count);
        // The client sees the reset before the gateway has finished cleaning up: wait for the temporary file to go.
        for (var i = 0; i < 200 && Directory.GetFiles(Path.Combine(rig.CacheDir, ".tmp")).Length > 0; i++)
        {
            await Task.Delay(25);
        }
        Assert.Empty(Directory.GetFiles(Path.Combine(rig.CacheDir, ".tmp")));
        Assert.Equal(0, rig.Store.Count);
        Assert.Empty(Directory.GetFiles(rig.CacheDir, "*.gwc", SearchOption.AllDirectories));
        var (r, body) = await rig.GetAsync("/die");
        Assert.Equal(100_000, body.Length);
        for (var i = 0; i < 200 && rig.Store.Count == 0; i++)
        {
            await Task.Delay(25); // the entry is committed just after the last byte went to the client
        }
        Assert.Equal(1, rig.Store.Count);
    }

    [Fact]
    public async Task BodyIsTeed_LargeBodyStoredAndServedFromFile()
    {
        var payload = new byte[3 * 1024 * 1024 + 17];
        new Random(5).NextBytes(payload);
        await using var rig = await CacheRig.StartAsync(async c =>
        {
            c.Response.Headers.CacheControl = "max-age=600";
            // chunked: no Content-Length
            for (var i = 0; i < payload.Length; i += 100_000)
            {
                await c.Response.Body.WriteAsync(payload.AsMemory(i, Math.Min(100_000, payload.Length - i)));
            }
        });
        var first = await rig.Client.GetByteArrayAsync("/big");
        var second = await rig.Client.GetByteArrayAsync("/big");
        Assert.Equal(payload, first);
        Assert.Equal(payload, second);
        Assert.Equal(1, rig.Backend.Requests);
        using var ranged = new HttpRequestMessage(HttpMethod.Get, "/big");
        ranged.Headers.Range = new System.Net.Http.Headers.RangeHeaderValue(1_000_000, 2_999_999);
        var part = await (await rig.Client.SendAsync(ranged)).Content.ReadAsByteArrayAsync();
        Assert.Equal(payload.AsSpan(1_000_000, 2_000_000).ToArray(), part);
    }

    [Fact]
    public async Task ConcurrentMisses_CollapseIntoOneOriginRequest()
    {
        CacheRig? rigRef = null;
        await using var rig = await CacheRig.StartAsync(async c =>
        {
            // Hold the leader's response until the other 49 are waiting for it (bounded).
            for (var i = 0; i < 400 && rigRef!.Store.Stats.Collapsed < 49; i++)
            {
                await Task.Delay(25);
            }
            c.Response.Headers.CacheControl = "max-age=60";
            await c.Response.WriteAsync("shared");
        });
        rigRef = rig;
        var tasks = Enumerable.Range(0, 50).Select(_ => rig.GetAsync("/hot")).ToArray();
        var results = await Task.WhenAll(tasks);
        Assert.All(results, r => Assert.Equal("shared", r.Body));
        Assert.Equal(1, rig.Backend.Requests);
        Assert.Equal(49, rig.Store.Stats.Collapsed);
        Assert.Equal(49, results.Count(r => r.Response.CacheStatus().Contains("collapsed")));
    }

    [Fact]
    public async Task Eviction_KeepsTotalUnderMaxSize_LeastRecentlyUsedFirst()
    {
        await using var rig = await CacheRig.StartAsync(async c =>
        {
            c.Response.Headers.CacheControl = "max-age=600";
            await c.Response.Body.WriteAsync(new byte[10_000]);
        }, new() { ["Gateway:Cache:MaxSize"] = "45KB", ["Gateway:Cache:MaxEntrySize"] = "20KB" });
        await rig.GetAsync("/e1");
        rig.Time.Advance(TimeSpan.FromSeconds(1));
        await rig.GetAsync("/e2");
        rig.Time.Advance(TimeSpan.FromSeconds(1));
        await rig.GetAsync("/e3");
        rig.Time.Advance(TimeSpan.FromSeconds(1));
        await rig.GetAsync("/e4");
        rig.Time.Advance(TimeSpan.FromSeconds(1));
        await rig.GetAsync("/e1"); // touch e1: e2 becomes least recently used
        rig.Time.Advance(TimeSpan.FromSeconds(1));
        await rig.GetAsync("/e5");
        Assert.True(rig.Store.TotalBytes <= 45 * 1024, $"total {rig.Store.TotalBytes}");
        Assert.True(rig.Store.Stats.Evictions >= 1);
        await rig.GetAsync("/e1");
        await rig.GetAsync("/e5");
        Assert.Equal(1, rig.Backend.RequestsFor("/e1"));
        Assert.Equal(1, rig.Backend.RequestsFor("/e5"));
        await rig.GetAsync("/e2");
        Assert.Equal(2, rig.Backend.RequestsFor("/e2"));
        Assert.Equal(rig.Store.Count, Directory.GetFiles(rig.CacheDir, "*.gwc", SearchOption.AllDirectories).Length);
    }

    [Fact]
    public async Task MaxEntrySize_LargerResponsesPassThroughUnstored()
    {
        await using var rig = await CacheRig.StartAsync(async c =>
        {
            c.Response.Headers.CacheControl = "max-age=600";
            if (c.Request.Path == "/chunked")
            {
                await c.Response.Body.WriteAsync(new byte[30_000]);
                await c.Response.Body.FlushAsync();
                await c.Response.Body.WriteAsync(new byte[30_000]);
            }
            else
            {
                c.Response.ContentLength = 60_000;
                await c.Response.Body.WriteAsync(new byte[60_000]);
            }
        }, new() { ["Gateway:Cache:MaxEntrySize"] = "50KB" });
        var (_, a) = await rig.GetAsync("/sized");
        var (_, b) = await rig.GetAsync("/chunked");
        Assert.Equal(60_000, a.Length);
        Assert.Equal(60_000, b.Length);
        await rig.GetAsync("/sized");
        await rig.GetAsync("/chunked");
        Assert.Equal(4, rig.Backend.Requests);
        Assert.Equal(0, rig.Store.Count);
    }

    [Fact]
    public async Task NoCacheRule_Bypasses()
    {
        await using var rig = await CacheRig.StartAsync(Respond("x", ("Cache-Control", "max-age=60")), services: s =>
            Microsoft.Extensions.DependencyInjection.ServiceCollectionServiceExtensions.AddSingleton<Gateway.Proxy.IProxyPipelineStage>(s, new SetFeatureStage(f => f.NoCache = true)));
        var (r, _) = await rig.GetAsync("/b");
        await rig.GetAsync("/b");
        Assert.Equal(2, rig.Backend.Requests);
        Assert.Contains("fwd=bypass", r.CacheStatus());
    }

    [Fact]
    public async Task CacheKeyAndLocation_FromRules_AreUsed()
    {
        await using var rig = await CacheRig.StartAsync(Respond("x", ("Cache-Control", "max-age=60")), services: s =>
            Microsoft.Extensions.DependencyInjection.ServiceCollectionServiceExtensions.AddSingleton<Gateway.Proxy.IProxyPipelineStage>(s, new SetFeatureStage(f =>
            {
                f.CacheKey = "key:" + f.TargetUri.AbsolutePath.Split('?')[0];
                f.CacheLocation = f.TargetUri.AbsolutePath.StartsWith("/escape") ? "../../etc" : "sites/example";
            })));
        await rig.GetAsync("/k?a=1");
        await rig.GetAsync("/k?a=2");
        Assert.Equal(1, rig.Backend.Requests);
        var files = Directory.GetFiles(Path.Combine(rig.CacheDir, "sites", "example"), "*.gwc", SearchOption.AllDirectories);
        Assert.Single(files);
        var list = await rig.Admin.GetStringAsync("/cache/entries?location=sites/example");
        Assert.Contains("\"count\": 1", list);
        await rig.GetAsync("/escape");
        await rig.GetAsync("/escape");
        Assert.Equal(3, rig.Backend.Requests);
        Assert.Empty(Directory.GetFiles(Path.GetDirectoryName(rig.CacheDir)!, "*.gwc", SearchOption.TopDirectoryOnly));
    }

    [Fact]
    public async Task Archive_KeepsDatedCopy_ListedAndFetchedByAdmin()
    {
        var n = 0;
        await using var rig = await CacheRig.StartAsync(async c =>
        {
            c.Response.Headers.CacheControl = "max-age=1";
            c.Response.ContentType = "text/plain";
            await c.Response.WriteAsync("copy" + Interlocked.Increment(ref n));
        }, services: s =>
            Microsoft.Extensions.DependencyInjection.ServiceCollectionServiceExtensions.AddSingleton<Gateway.Proxy.IProxyPipelineStage>(s, new SetFeatureStage(f => f.CacheArchive = "yyyy-MM-dd")));
        await rig.GetAsync("/arch");
        rig.Time.Advance(TimeSpan.FromDays(1));
        await rig.GetAsync("/arch");
        var url = rig.Gateway.ProxyUri + "arch";
        var list = await rig.Admin.GetStringAsync("/cache/archive?url=" + Uri.EscapeDataString(url));
        Assert.Contains("\"count\": 2", list);
        var day1 = (rig.Time.GetUtcNow() - TimeSpan.FromDays(1)).UtcDateTime.ToString("yyyy-MM-dd");
        var old = await rig.Admin.GetStringAsync($"/cache/archive?url={Uri.EscapeDataString(url)}&period={day1}");
        Assert.Equal("copy1", old);
        var (_, live) = await rig.GetAsync("/arch");
        Assert.Equal("copy2", live);
    }

    [Fact]
    public async Task AdaptationTags_ChangedTag_IsNotServed()
    {
        var tags = new MutableTags();
        await using var rig = await CacheRig.StartAsync(Respond("x", ("Cache-Control", "max-age=60")), services: s =>
        {
            Microsoft.Extensions.DependencyInjection.ServiceCollectionServiceExtensions.AddSingleton<Gateway.Caching.IAdaptationTagSource>(s, tags);
            Microsoft.Extensions.DependencyInjection.ServiceCollectionServiceExtensions.AddSingleton<Gateway.Proxy.IProxyPipelineStage>(s, new SetFeatureStage(f => f.AdaptationTags = new() { ["av"] = tags.Tag }));
        });
        await rig.GetAsync("/t");
        await rig.GetAsync("/t");
        Assert.Equal(1, rig.Backend.Requests);
        tags.Tag = "T2";
        await rig.GetAsync("/t");
        Assert.Equal(2, rig.Backend.Requests);
        await rig.GetAsync("/t");
        Assert.Equal(2, rig.Backend.Requests);
    }

    private sealed class MutableTags : Gateway.Caching.IAdaptationTagSource
    {
        public string Tag { get; set; } = "T1";
        public IReadOnlyDictionary<string, string>? GetCurrentTags(HttpContext context) => new Dictionary<string, string> { ["av"] = Tag };
    }
}

/// <summary>Stands in for the rules stage (order 100): sets cache fields of the request feature.</summary>
internal sealed class SetFeatureStage(Action<Gateway.Proxy.GatewayRequestFeature> set) : Gateway.Proxy.IProxyPipelineStage
{
    public int Order => Gateway.Proxy.ProxyStageOrder.Rules;

    public Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        if (context.Features.Get<Gateway.Proxy.GatewayRequestFeature>() is { } f)
        {
            set(f);
        }
        return next(context);
    }
}
