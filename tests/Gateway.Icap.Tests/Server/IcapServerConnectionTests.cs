using System.Text;
using Gateway.Icap.Protocol;
using Gateway.Icap.Server;
using Gateway.Icap.Tests.Protocol;

namespace Gateway.Icap.Tests.Server;

public sealed class IcapServerConnectionTests
{
    [Fact]
    public async Task Options_IsGeneratedFromTheDeclaration()
    {
        await using var server = new PipeServer();
        await server.Client.SendAsync(IcapRequests.Options());
        var r = await server.Client.ReadResponseAsync(IcapMethod.Options);
        Assert.Equal(200, r.Status);
        var h = r.Head.Headers;
        Assert.Equal("REQMOD, RESPMOD", h["Methods"]);
        Assert.Matches("^\"[^\"]+\"$", h["ISTag"]!);
        Assert.Equal("1024", h["Preview"]);
        Assert.Equal("204, 206", h["Allow"]);
        Assert.Equal("*", h["Transfer-Preview"]);
        Assert.Equal("1000", h["Max-Connections"]);
        Assert.Equal("3600", h["Options-TTL"]);
        Assert.NotNull(h["Date"]);
        Assert.NotNull(h["Service"]);
        Assert.StartsWith("Gateway-ICAP", h["Server"]);
        Assert.Equal("null-body=0", r.Head.Encapsulated.ToString());
    }

    [Fact]
    public async Task Options_IsTagChangesWithConfiguration()
    {
        var a = new Gateway.Icap.Services.FilterService(Microsoft.Extensions.Options.Options.Create(new Gateway.Icap.Services.FilterServiceOptions { Keywords = { ["a"] = "x" } }));
        var b = new Gateway.Icap.Services.FilterService(Microsoft.Extensions.Options.Options.Create(new Gateway.Icap.Services.FilterServiceOptions { Keywords = { ["a"] = "x" } }));
        var c = new Gateway.Icap.Services.FilterService(Microsoft.Extensions.Options.Options.Create(new Gateway.Icap.Services.FilterServiceOptions { Keywords = { ["a"] = "y" } }));
        Assert.Equal(a.IsTag, b.IsTag);
        Assert.NotEqual(a.IsTag, c.IsTag);
        Assert.True(a.IsTag.Length <= 34);
    }

    [Theory]
    [MemberData(nameof(IcapMessageTable.ValidNames), MemberType = typeof(IcapMessageTable))]
    public async Task Answers_EveryValidTableMessage_AndKeepsTheConnection(string name)
    {
        var m = IcapMessageTable.GetValid(name);
        await using var server = new PipeServer();
        await server.Client.SendAsync(m.Bytes);
        var r = await server.Client.ReadResponseAsync(m.Method);
        if (r.Status == 100)
        {
            await server.Client.SendAsync("0\r\n\r\n");
            r = await server.Client.ReadResponseAsync(m.Method);
        }
        Assert.Contains(r.Status, new[] { 200, 204 });
        if (r.Status == 200 && m.Method != IcapMethod.Options) Assert.Equal(m.Body, Encoding.Latin1.GetString(r.Body));
        Assert.Null(r.Head.Headers["Connection"]);

        await server.Client.SendAsync(IcapRequests.Options());
        Assert.Equal(200, (await server.Client.ReadResponseAsync(IcapMethod.Options)).Status);
    }

    [Theory]
    [MemberData(nameof(IcapMessageTable.InvalidNames), MemberType = typeof(IcapMessageTable))]
    public async Task Rejects_EveryInvalidTableMessage_WithItsStatus_AndCloses(string name)
    {
        var m = IcapMessageTable.GetInvalid(name);
        await using var server = new PipeServer();
        // "sink" reads the whole body before answering, so body framing errors are seen before any reply.
        await server.Client.SendAsync(Encoding.Latin1.GetBytes(m.Raw.Replace("/echo ", "/sink ")));
        var r = await server.Client.ReadResponseAsync(null);
        Assert.Equal(m.Status, r.Status);
        Assert.Equal("close", r.Head.Headers["Connection"]);
        Assert.True(await server.Client.IsClosedAsync());
        await server.Run.WaitAsync(TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task Respmod_WithAllow204_Answers204()
    {
        await using var server = new PipeServer();
        await server.Client.SendAsync(IcapRequests.Respmod("echo", "hello world", "Allow: 204\r\n"));
        var r = await server.Client.ReadResponseAsync();
        Assert.Equal(204, r.Status);
        Assert.Equal("null-body=0", r.Head.Encapsulated.ToString());
        Assert.NotNull(r.Head.IsTag);
        // the body was drained: the connection is usable
        await server.Client.SendAsync(IcapRequests.Options());
        Assert.Equal(200, (await server.Client.ReadResponseAsync(IcapMethod.Options)).Status);
    }

    [Fact]
    public async Task Respmod_WithoutAllow204_EchoesHeadAndBody()
    {
        await using var server = new PipeServer();
        var body = string.Concat(Enumerable.Repeat("0123456789", 10_000));
        await server.Client.SendAsync(IcapRequests.Respmod("echo", body));
        var r = await server.Client.ReadResponseAsync();
        Assert.Equal(200, r.Status);
        Assert.Equal(200, r.HttpResponse!.StatusCode);
        Assert.Equal("text/plain", r.HttpResponse.Headers["Content-Type"]);
        Assert.Equal(body, r.BodyText);
    }

    [Fact]
    public async Task Preview_ReadingPastIt_Sends100Continue_ThenEchoesAll()
    {
        await using var server = new PipeServer();
        var body = "hello, preview world";
        await server.Client.SendAsync(IcapRequests.Respmod("echo", body, preview: 5));
        var c = await server.Client.ReadResponseAsync();
        Assert.Equal(100, c.Status);
        await server.Client.SendAsync(IcapRequests.Rest(body, 5));
        var r = await server.Client.ReadResponseAsync();
        Assert.Equal(200, r.Status);
        Assert.Equal(body, r.BodyText);
    }

    [Fact]
    public async Task Preview_WithIeof_IsAnsweredWithout100Continue()
    {
        await using var server = new PipeServer();
        await server.Client.SendAsync(IcapRequests.Respmod("echo", "tiny", preview: 1024));
        var r = await server.Client.ReadResponseAsync();
        Assert.Equal(200, r.Status);
        Assert.Equal("tiny", r.BodyText);
    }

    [Fact]
    public async Task Preview_204InsidePreview_DoesNotWaitForTheRest()
    {
        await using var server = new PipeServer();
        // filter: no keyword in the preview, no Allow: 204 -> 204 is still legal inside the preview
        await server.Client.SendAsync(IcapRequests.Respmod("filter", "harmless text that goes on", preview: 8));
        var r = await server.Client.ReadResponseAsync();
        Assert.Equal(204, r.Status);
        await server.Client.SendAsync(IcapRequests.Options("filter"));
        Assert.Equal(200, (await server.Client.ReadResponseAsync(IcapMethod.Options)).Status);
    }

    [Fact]
    public async Task Echo_Prefer206_AnswersUseOriginalBody()
    {
        await using var server = new PipeServer();
        var body = "abcdefghijklmnopqrstuvwxyz";
        await server.Client.SendAsync(IcapRequests.Respmod("echo?prefer=206", body, "Allow: 204, 206\r\n", preview: 10));
        var r = await server.Client.ReadResponseAsync();
        Assert.Equal(206, r.Status);
        Assert.Equal("abcdefghij", r.BodyText);
        Assert.Equal(10, r.UseOriginalBody);
        Assert.Equal(200, r.HttpResponse!.StatusCode);
    }

    [Fact]
    public async Task Filter_BlocksKeywordInUrl_WithA403Page()
    {
        await using var server = new PipeServer();
        await server.Client.SendAsync(IcapRequests.Reqmod("filter", "http://casino.example/play"));
        var r = await server.Client.ReadResponseAsync(IcapMethod.Reqmod);
        Assert.Equal(200, r.Status);
        Assert.Equal("casino", r.Head.Headers["X-Blocked-Keyword"]);
        Assert.Equal(403, r.HttpResponse!.StatusCode);
        Assert.Null(r.HttpRequest);
        Assert.Contains("Access blocked", r.BodyText);
        Assert.Equal(r.Body.Length.ToString(), r.HttpResponse.Headers["Content-Length"]);
    }

    [Fact]
    public async Task Filter_BlocksKeywordInRequestBody_AndPassesOthers()
    {
        await using var server = new PipeServer();
        await server.Client.SendAsync(IcapRequests.Reqmod("filter", "/post", "q=online+CASINO+bonus", method: "POST"));
        var blocked = await server.Client.ReadResponseAsync(IcapMethod.Reqmod);
        Assert.Equal(403, blocked.HttpResponse!.StatusCode);

        await server.Client.SendAsync(IcapRequests.Reqmod("filter", "/post", "q=weather", method: "POST"));
        var passed = await server.Client.ReadResponseAsync(IcapMethod.Reqmod);
        Assert.Equal(200, passed.Status);
        Assert.Equal("POST", passed.HttpRequest!.Method);
        Assert.Equal("q=weather", passed.BodyText);
    }

    [Fact]
    public async Task Reqmod_Echo_ReturnsTheRequest()
    {
        await using var server = new PipeServer();
        await server.Client.SendAsync(IcapRequests.Reqmod("echo", "/a?b=c", "payload", method: "PUT"));
        var r = await server.Client.ReadResponseAsync(IcapMethod.Reqmod);
        Assert.Equal(200, r.Status);
        Assert.Equal("PUT /a?b=c HTTP/1.1", $"{r.HttpRequest!.Method} {r.HttpRequest.Target} {r.HttpRequest.Version}");
        Assert.Equal("payload", r.BodyText);
        Assert.StartsWith("req-hdr=0, req-body=", r.Head.Encapsulated.ToString());
    }

    [Fact]
    public async Task UnknownService_Is404_AfterReadingTheBody_ThenCloses()
    {
        await using var server = new PipeServer();
        await server.Client.SendAsync(IcapRequests.Respmod("nope", "some body"));
        var r = await server.Client.ReadResponseAsync();
        Assert.Equal(404, r.Status);
        Assert.Equal("close", r.Head.Headers["Connection"]);
        Assert.True(await server.Client.IsClosedAsync());
    }

    [Fact]
    public async Task UnknownService_WithPreview_Is404_Without100Continue()
    {
        await using var server = new PipeServer();
        await server.Client.SendAsync(IcapRequests.Respmod("nope", "a longer body than the preview", preview: 4));
        var r = await server.Client.ReadResponseAsync();
        Assert.Equal(404, r.Status);
    }

    [Fact]
    public async Task MethodNotOffered_Is405()
    {
        await using (var first = new PipeServer())
        {
            await first.Client.SendAsync(IcapRequests.Reqmod("respmod-only", "/x", "body"));
            Assert.Equal(405, (await first.Client.ReadResponseAsync(IcapMethod.Reqmod)).Status);
        }
        await using var server = new PipeServer();
        await server.Client.SendAsync(IcapRequests.Options("respmod-only"));
        var o = await server.Client.ReadResponseAsync(IcapMethod.Options);
        Assert.Equal("RESPMOD", o.Head.Headers["Methods"]);
        Assert.Null(o.Head.Headers["Allow"]);
        Assert.Null(o.Head.Headers["Preview"]);
    }

    [Fact]
    public async Task ServiceThatThrows_Gets500_AndClose()
    {
        await using var server = new PipeServer();
        await server.Client.SendAsync(IcapRequests.Respmod("throws", "x"));
        var r = await server.Client.ReadResponseAsync();
        Assert.Equal(500, r.Status);
        Assert.Equal("close", r.Head.Headers["Connection"]);
    }

    [Fact]
    public async Task ServiceThatDoesNotAnswer_Gets500()
    {
        await using var server = new PipeServer();
        await server.Client.SendAsync(IcapRequests.Respmod("silent", "x"));
        var r = await server.Client.ReadResponseAsync();
        Assert.Equal(500, r.Status);
        Assert.Equal("close", r.Head.Headers["Connection"]);
    }

    [Fact]
    public async Task PipelinedRequests_AreAnsweredInOrder()
    {
        await using var server = new PipeServer();
        await server.Client.SendAsync(IcapRequests.Respmod("echo", "one") + IcapRequests.Respmod("echo", "two", "Allow: 204\r\n") + IcapRequests.Options());
        Assert.Equal("one", (await server.Client.ReadResponseAsync()).BodyText);
        Assert.Equal(204, (await server.Client.ReadResponseAsync()).Status);
        Assert.Equal(200, (await server.Client.ReadResponseAsync(IcapMethod.Options)).Status);
    }

    [Fact]
    public async Task ConnectionClosedMidChunk_EndsTheConnection_WithoutCrash()
    {
        await using var server = new PipeServer();
        var raw = IcapRequests.Respmod("sink", "0123456789");
        await server.Client.SendAsync(raw[..(raw.IndexOf("0123", StringComparison.Ordinal) + 4)]);
        await server.Client.CompleteSendingAsync();
        await server.Run.WaitAsync(TimeSpan.FromSeconds(5));
        var r = await server.Client.ReadResponseAsync();
        Assert.Equal(400, r.Status);
    }

    [Fact]
    public async Task ConnectionClosedBetweenRequests_EndsQuietly()
    {
        await using var server = new PipeServer();
        await server.Client.SendAsync(IcapRequests.Options());
        Assert.Equal(200, (await server.Client.ReadResponseAsync(IcapMethod.Options)).Status);
        await server.Client.CompleteSendingAsync();
        await server.Run.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.True(await server.Client.IsClosedAsync());
    }

    [Fact]
    public async Task IncompleteHead_TimesOutWith408()
    {
        await using var server = new PipeServer(new IcapServerOptions { RequestHeadersTimeout = TimeSpan.FromMilliseconds(300) });
        await server.Client.SendAsync("RESPMOD icap://127.0.0.1/echo ICAP/1.0\r\nHost: x\r\n");
        var r = await server.Client.ReadResponseAsync(null, TimeSpan.FromSeconds(5));
        Assert.Equal(408, r.Status);
        Assert.Equal("close", r.Head.Headers["Connection"]);
    }

    [Fact]
    public async Task IdleConnection_IsClosedAfterIdleTimeout_WithoutAnswer()
    {
        await using var server = new PipeServer(new IcapServerOptions { IdleTimeout = TimeSpan.FromMilliseconds(300) });
        await server.Client.SendAsync(IcapRequests.Options());
        Assert.Equal(200, (await server.Client.ReadResponseAsync(IcapMethod.Options)).Status);
        await server.Run.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.True(await server.Client.IsClosedAsync());
    }

    [Fact]
    public async Task CloseRequested_WhileIdle_EndsTheConnection()
    {
        await using var server = new PipeServer();
        await server.Client.SendAsync(IcapRequests.Options());
        Assert.Equal(200, (await server.Client.ReadResponseAsync(IcapMethod.Options)).Status);
        server.RequestClose();
        await server.Run.WaitAsync(TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task CloseRequested_DuringARequest_LetsItFinish()
    {
        var slow = new SlowService();
        await using var server = new PipeServer(null, slow);
        await server.Client.SendAsync(IcapRequests.Respmod("slow", "x"));
        await slow.Started.Task.WaitAsync(TimeSpan.FromSeconds(5));
        server.RequestClose();
        slow.Release.SetResult();
        var r = await server.Client.ReadResponseAsync();
        Assert.Equal(200, r.Status);
        Assert.Equal("slow done", r.BodyText);
        Assert.Equal("close", r.Head.Headers["Connection"]);
        await server.Run.WaitAsync(TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task Trailers_AreVisibleToTheService()
    {
        IcapHeaders? seen = null;
        var probe = new DelegateService("probe", async (ctx, ct) =>
        {
            await ctx.Body.CopyToAsync(Stream.Null, ct);
            seen = ctx.Trailers;
            await ctx.RespondNoContentAsync(ct);
        });
        await using var server = new PipeServer(null, probe);
        var raw = IcapMessageTable.GetValid("respmod-trailers").Raw.Replace("/echo ", "/probe ");
        await server.Client.SendAsync(raw);
        Assert.Equal(204, (await server.Client.ReadResponseAsync()).Status);
        Assert.Equal("clean", seen!["X-Scan"]);
    }

    private sealed class DelegateService(string name, Func<IcapRequestContext, CancellationToken, Task> handler) : IcapService(name)
    {
        public override async ValueTask HandleAsync(IcapRequestContext context, CancellationToken cancellationToken) => await handler(context, cancellationToken);
    }
}
