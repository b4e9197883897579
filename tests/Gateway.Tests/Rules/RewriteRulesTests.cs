using System.IO.Compression;
using System.Net;
using System.Text;
using Gateway.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;

namespace Gateway.Tests.Rules;

public sealed class RewriteRulesTests
{
    [Fact]
    public async Task Rewrite_RequestUrlAndHeaders_ReachTheOrigin()
    {
        await using var backend = await TestBackend.StartAsync(c => c.Response.WriteAsync("path=" + c.Request.Path + c.Request.QueryString));
        var probe = new FeatureProbe();
        await using var gw = await GatewayHost.StartAsync(RulesConfig.Reverse(backend,
            ("Rewrite:v1:Match:Path", "/api/v1/*"),
            ("Rewrite:v1:Request:Url:0:Pattern", "/api/v1/"),
            ("Rewrite:v1:Request:Url:0:Replacement", "/api/v2/"),
            ("Rewrite:v1:Request:Url:1:Pattern", "([?&])debug=1&?"),
            ("Rewrite:v1:Request:Url:1:Replacement", "$1"),
            ("Rewrite:v1:Request:Headers:Set:X-Api-Version", "2"),
            ("Rewrite:v1:Request:Headers:Append:X-Trace", "gateway"),
            ("Rewrite:v1:Request:Headers:Remove:0", "Cookie")), services: probe.Register);
        using var client = gw.CreateClient();
        using var request = new HttpRequestMessage(HttpMethod.Get, "/api/v1/items?debug=1&page=2");
        request.Headers.Add("Cookie", "secret=1");
        request.Headers.Add("X-Trace", "client");
        request.Headers.Add("X-Api-Version", "1");
        using var response = await client.SendAsync(request);
        Assert.Equal("path=/api/v2/items?page=2", await response.Content.ReadAsStringAsync());
        var seen = backend.Last!;
        Assert.Equal("/api/v2/items?page=2", seen.PathAndQuery);
        Assert.Equal("2", seen.Headers["X-Api-Version"]);
        Assert.Equal("client,gateway", seen.Headers["X-Trace"].Replace(", ", ","));
        Assert.False(seen.Headers.ContainsKey("Cookie"));
        Assert.EndsWith("/api/v2/items?page=2", probe.Last.Url); // TargetUri follows the rewrite
    }

    [Fact]
    public async Task Rewrite_RequestUrl_InForwardMode_ChangesTheTarget()
    {
        await using var oldSite = await TestBackend.StartAsync(c => c.Response.WriteAsync("old"));
        await using var newSite = await TestBackend.StartAsync(c => c.Response.WriteAsync("new " + c.Request.Path));
        await using var gw = await GatewayHost.StartAsync(RulesConfig.Reverse(oldSite,
            ("Rewrite:move:Match:Port", oldSite.Port.ToString()),
            ("Rewrite:move:Request:Url:0:Pattern", $"^http://localhost:{oldSite.Port}/legacy/"),
            ("Rewrite:move:Request:Url:0:Replacement", $"http://127.0.0.1:{newSite.Port}/current/")));
        using var client = gw.CreateForwardProxyClient();
        using var response = await client.GetAsync(new Uri($"http://localhost:{oldSite.Port}/legacy/page"));
        Assert.Equal("new /current/page", await response.Content.ReadAsStringAsync());
        Assert.Equal(0, oldSite.Requests);
        Assert.Equal(1, newSite.Requests);
    }

    [Fact]
    public async Task Rewrite_RequestBody_FormAndJson()
    {
        await using var backend = await TestBackend.StartAsync(async c =>
        {
            using var reader = new StreamReader(c.Request.Body);
            var body = await reader.ReadToEndAsync();
            await c.Response.WriteAsync($"{c.Request.ContentLength}|{body}");
        });
        await using var gw = await GatewayHost.StartAsync(RulesConfig.Reverse(backend,
            ("Rewrite:anon:Match:Methods", "POST"),
            ("Rewrite:anon:Request:Body:0:Pattern", "(\"email\":\\s*\")[^\"]*\""),
            ("Rewrite:anon:Request:Body:0:Replacement", "$1redacted\""),
            ("Rewrite:anon:Request:Body:1:Pattern", "(^|&)email=[^&]*"),
            ("Rewrite:anon:Request:Body:1:Replacement", "$1email=redacted")));
        using var client = gw.CreateClient();

        using (var r = await client.PostAsync("/json", new StringContent("{\"name\":\"Zoë\",\"email\": \"zoe@example.com\"}", Encoding.UTF8, "application/json")))
        {
            var text = await r.Content.ReadAsStringAsync();
            var expected = "{\"name\":\"Zoë\",\"email\": \"redacted\"}";
            Assert.Equal($"{Encoding.UTF8.GetByteCount(expected)}|{expected}", text);
        }
        using (var r = await client.PostAsync("/form", new FormUrlEncodedContent([new("name", "zoe"), new("email", "zoe@example.com")])))
        {
            Assert.Equal("23|name=zoe&email=redacted", await r.Content.ReadAsStringAsync());
        }
        // Chunked (no Content-Length) bodies are read within the bound too.
        using (var r = await client.PostAsync("/json", new ChunkedContent("{\"email\":\"a@b\"}", "application/json")))
        {
            Assert.Equal("20|{\"email\":\"redacted\"}", await r.Content.ReadAsStringAsync());
        }
        // Other content types pass unchanged.
        using (var r = await client.PostAsync("/text", new StringContent("email=zoe@example.com", Encoding.UTF8, "text/plain")))
        {
            Assert.Equal("21|email=zoe@example.com", await r.Content.ReadAsStringAsync());
        }
    }

    [Fact]
    public async Task Rewrite_RequestBodyAboveMaxBodySize_PassesUnchanged()
    {
        await using var backend = await TestBackend.StartAsync(async c =>
        {
            using var reader = new StreamReader(c.Request.Body);
            var body = await reader.ReadToEndAsync();
            await c.Response.WriteAsync(body.Length + "|" + body.Contains("secret"));
        });
        await using var gw = await GatewayHost.StartAsync(RulesConfig.Reverse(backend,
            ("MaxBodySize", "1KB"),
            ("Rewrite:r:Match:Path", "*"),
            ("Rewrite:r:Request:Body:0:Pattern", "secret"),
            ("Rewrite:r:Request:Body:0:Replacement", "xxxxxx")));
        using var client = gw.CreateClient();
        var big = "{\"a\":\"secret" + new string('x', 5000) + "\"}";
        using (var r = await client.PostAsync("/", new StringContent(big, Encoding.UTF8, "application/json")))
        {
            Assert.Equal($"{big.Length}|True", await r.Content.ReadAsStringAsync());
        }
        using (var r = await client.PostAsync("/", new ChunkedContent(big, "application/json")))
        {
            Assert.Equal($"{big.Length}|True", await r.Content.ReadAsStringAsync());
        }
        using (var r = await client.PostAsync("/", new StringContent("{\"a\":\"secret\"}", Encoding.UTF8, "application/json")))
        {
            Assert.Equal("14|False", await r.Content.ReadAsStringAsync());
        }
    }

    private const string Page = "<html><head><script>track()</script><title>T</title></head><body>Hello <b>world</b><script src=\"x.js\"></script></body></html>";
    private const string Filtered = "<html><head><title>T</title></head><body>Hello <b>gateway</b></body></html>";

    private static (string Key, string? Value)[] NoScripts(params (string, string?)[] extra) =>
    [
        ("Rewrite:no-scripts:Match:Path", "/page*"),
        ("Rewrite:no-scripts:Match:ContentType", "text/html"),
        ("Rewrite:no-scripts:Response:Body:0:Pattern", "(?s)<script.*?</script>"),
        ("Rewrite:no-scripts:Response:Body:0:Replacement", ""),
        ("Rewrite:no-scripts:Response:Body:1:Pattern", "world"),
        ("Rewrite:no-scripts:Response:Body:1:Replacement", "gateway"),
        ("Rewrite:no-scripts:Response:Headers:Set:X-Filtered", "1"),
        ("Rewrite:no-scripts:Response:Headers:Remove:0", "X-Powered-By"),
        .. extra,
    ];

    [Fact]
    public async Task Rewrite_ResponseBodyAndHeaders_WithExactContentLength()
    {
        await using var backend = await TestBackend.StartAsync(c =>
        {
            c.Response.ContentType = "text/html; charset=utf-8";
            c.Response.Headers["X-Powered-By"] = "php";
            c.Response.Headers.ETag = "\"v1\"";
            c.Response.ContentLength = Encoding.UTF8.GetByteCount(Page);
            return c.Response.WriteAsync(Page);
        });
        await using var gw = await GatewayHost.StartAsync(RulesConfig.Reverse(backend, NoScripts()));
        using var client = gw.CreateClient();
        using var response = await client.GetAsync("/page.html");
        var body = await response.Content.ReadAsStringAsync();
        Assert.Equal(Filtered, body);
        Assert.Equal(Encoding.UTF8.GetByteCount(Filtered), response.Content.Headers.ContentLength);
        Assert.Equal("1", response.Headers.GetValues("X-Filtered").Single());
        Assert.False(response.Headers.Contains("X-Powered-By"));
        Assert.True(response.Headers.ETag!.IsWeak);

        // Another path: untouched.
        using var other = await client.GetAsync("/other.html");
        Assert.Equal(Page, await other.Content.ReadAsStringAsync());
        Assert.False(other.Headers.Contains("X-Filtered"));
    }

    [Fact]
    public async Task Rewrite_Response_InForwardMode_AndHeadKeepsNoBody()
    {
        await using var backend = await TestBackend.StartAsync(c =>
        {
            c.Response.ContentType = "text/html";
            c.Response.ContentLength = Encoding.UTF8.GetByteCount(Page);
            return HttpMethods.IsHead(c.Request.Method) ? Task.CompletedTask : c.Response.WriteAsync(Page);
        });
        await using var gw = await GatewayHost.StartAsync(RulesConfig.Reverse(backend, NoScripts()));
        using var client = gw.CreateForwardProxyClient();
        using (var response = await client.GetAsync(new Uri($"http://localhost:{backend.Port}/page")))
        {
            Assert.Equal(Filtered, await response.Content.ReadAsStringAsync());
            Assert.Equal("1", response.Headers.GetValues("X-Filtered").Single());
        }
        using (var head = await client.SendAsync(new HttpRequestMessage(HttpMethod.Head, new Uri($"http://localhost:{backend.Port}/page"))))
        {
            Assert.Equal(HttpStatusCode.OK, head.StatusCode);
            Assert.Equal("1", head.Headers.GetValues("X-Filtered").Single());
            Assert.Empty(await head.Content.ReadAsByteArrayAsync());
        }
    }

    [Fact]
    public async Task Rewrite_ResponseConditions_StatusAndContentType()
    {
        await using var backend = await TestBackend.StartAsync(c =>
        {
            c.Response.StatusCode = c.Request.Path == "/missing" ? 404 : 200;
            c.Response.ContentType = c.Request.Path == "/data" ? "application/octet-stream" : "text/plain";
            return c.Response.WriteAsync("world");
        });
        await using var gw = await GatewayHost.StartAsync(RulesConfig.Reverse(backend,
            ("Rewrite:ok-text:Match:Path", "*"),
            ("Rewrite:ok-text:Match:Status", "2xx"),
            ("Rewrite:ok-text:Match:ContentType", "text/*"),
            ("Rewrite:ok-text:Response:Body:0:Pattern", "world"),
            ("Rewrite:ok-text:Response:Body:0:Replacement", "WORLD")));
        using var client = gw.CreateClient();
        Assert.Equal("WORLD", await (await client.GetAsync("/text")).Content.ReadAsStringAsync());
        Assert.Equal("world", await (await client.GetAsync("/missing")).Content.ReadAsStringAsync());
        Assert.Equal("world", await (await client.GetAsync("/data")).Content.ReadAsStringAsync());
    }

    [Theory]
    [InlineData("gzip")]
    [InlineData("deflate")]
    [InlineData("br")]
    public async Task Rewrite_CompressedResponseBody_IsDecodedRewrittenAndReencoded(string coding)
    {
        var compressed = Compress(coding, Encoding.UTF8.GetBytes(Page));
        await using var backend = await TestBackend.StartAsync(c =>
        {
            c.Response.ContentType = "text/html";
            c.Response.Headers.ContentEncoding = coding;
            c.Response.Headers.Vary = "Accept-Encoding";
            c.Response.ContentLength = compressed.Length;
            return c.Response.Body.WriteAsync(compressed).AsTask();
        });
        await using var gw = await GatewayHost.StartAsync(RulesConfig.Reverse(backend, NoScripts()));
        using var client = gw.CreateClient();
        using var response = await client.GetAsync("/page");
        Assert.Equal(coding, response.Content.Headers.ContentEncoding.Single());
        var raw = await response.Content.ReadAsByteArrayAsync();
        Assert.Equal(raw.Length, response.Content.Headers.ContentLength);
        Assert.Equal(Filtered, Encoding.UTF8.GetString(Decompress(coding, raw)));
    }

    [Fact]
    public async Task Rewrite_CorruptGzipFromTheOrigin_IsABadGateway_NotACrash()
    {
        var garbage = Encoding.ASCII.GetBytes("this is not gzip at all, world");
        await using var backend = await TestBackend.StartAsync(c =>
        {
            c.Response.ContentType = "text/html";
            c.Response.Headers.ContentEncoding = "gzip";
            c.Response.ContentLength = garbage.Length;
            return c.Response.Body.WriteAsync(garbage).AsTask();
        });
        await using var gw = await GatewayHost.StartAsync(RulesConfig.Reverse(backend, NoScripts()));
        using var client = gw.CreateClient();
        using var response = await client.GetAsync("/page");
        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        // The gateway keeps serving; a path no rule rewrites passes the bytes through untouched.
        using var again = await client.GetAsync("/other");
        Assert.Equal(HttpStatusCode.OK, again.StatusCode);
        Assert.Equal(garbage, await again.Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task Rewrite_UnknownContentCoding_LeavesTheBodyAlone()
    {
        var bytes = Encoding.UTF8.GetBytes("not really zstd: world");
        await using var backend = await TestBackend.StartAsync(c =>
        {
            c.Response.ContentType = "text/html";
            c.Response.Headers.ContentEncoding = "zstd";
            return c.Response.Body.WriteAsync(bytes).AsTask();
        });
        await using var gw = await GatewayHost.StartAsync(RulesConfig.Reverse(backend, NoScripts()));
        using var client = gw.CreateClient();
        using var response = await client.GetAsync("/page");
        Assert.Equal(bytes, await response.Content.ReadAsByteArrayAsync());
        Assert.Equal("1", response.Headers.GetValues("X-Filtered").Single()); // headers still apply
    }

    [Fact]
    public async Task Rewrite_LargeStreamedBody_MatchesAcrossChunkBoundaries()
    {
        // 2 MB of text written in odd-sized flushes; every "<script>…</script>" straddles some chunk boundary somewhere.
        const int units = 20000;
        const string unit = "<p>keep</p><script>drop()</script>"; // 34 chars
        await using var backend = await TestBackend.StartAsync(async c =>
        {
            c.Response.ContentType = "text/html; charset=utf-8";
            var all = Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat(unit, units)));
            var offset = 0;
            var size = 1;
            while (offset < all.Length)
            {
                var n = Math.Min(size, all.Length - offset);
                await c.Response.Body.WriteAsync(all.AsMemory(offset, n));
                await c.Response.Body.FlushAsync();
                offset += n;
                size = size * 7 % 4093 + 1;
            }
        });
        await using var gw = await GatewayHost.StartAsync(RulesConfig.Reverse(backend, NoScripts()));
        using var client = gw.CreateClient();
        using var response = await client.GetAsync("/page", HttpCompletionOption.ResponseHeadersRead);
        Assert.Null(response.Content.Headers.ContentLength); // streamed, chunked
        var body = await response.Content.ReadAsStringAsync();
        Assert.Equal(string.Concat(Enumerable.Repeat("<p>keep</p>", units)), body);
    }

    [Fact]
    public async Task Rewrite_RespectsTheCharset()
    {
        var latin1 = Encoding.Latin1;
        await using var backend = await TestBackend.StartAsync(c =>
        {
            c.Response.ContentType = "text/plain; charset=iso-8859-1";
            return c.Response.Body.WriteAsync(latin1.GetBytes("Café crème, s'il vous plaît")).AsTask();
        });
        await using var gw = await GatewayHost.StartAsync(RulesConfig.Reverse(backend,
            ("Rewrite:fr:Match:Path", "*"),
            ("Rewrite:fr:Response:Body:0:Pattern", "crème"),
            ("Rewrite:fr:Response:Body:0:Replacement", "brûlée")));
        using var client = gw.CreateClient();
        using var response = await client.GetAsync("/");
        var bytes = await response.Content.ReadAsByteArrayAsync();
        Assert.Equal(latin1.GetBytes("Café brûlée, s'il vous plaît"), bytes);
    }

    private static byte[] Compress(string coding, byte[] data)
    {
        var ms = new MemoryStream();
        using (Stream s = coding switch
        {
            "gzip" => new GZipStream(ms, CompressionLevel.Optimal, true),
            "deflate" => new ZLibStream(ms, CompressionLevel.Optimal, true),
            _ => new BrotliStream(ms, CompressionLevel.Optimal, true),
        })
        {
            s.Write(data);
        }
        return ms.ToArray();
    }

    private static byte[] Decompress(string coding, byte[] data)
    {
        using Stream s = coding switch
        {
            "gzip" => new GZipStream(new MemoryStream(data), CompressionMode.Decompress),
            "deflate" => new ZLibStream(new MemoryStream(data), CompressionMode.Decompress),
            _ => new BrotliStream(new MemoryStream(data), CompressionMode.Decompress),
        };
        var ms = new MemoryStream();
        s.CopyTo(ms);
        return ms.ToArray();
    }
}

/// <summary>Request content sent chunked (no Content-Length).</summary>
internal sealed class ChunkedContent : HttpContent
{
    private readonly byte[] _bytes;

    public ChunkedContent(string text, string mediaType)
    {
        _bytes = Encoding.UTF8.GetBytes(text);
        Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue(mediaType);
    }

    protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
    {
        for (var i = 0; i < _bytes.Length; i += 100)
        {
            await stream.WriteAsync(_bytes.AsMemory(i, Math.Min(100, _bytes.Length - i)));
            await stream.FlushAsync();
        }
    }

    protected override bool TryComputeLength(out long length)
    {
        length = 0;
        return false;
    }
}
