using System.Text;
using Gateway.Icap.Server;
using Gateway.Tests.Infrastructure;
using Gateway.Tests.Proxy;
using Microsoft.AspNetCore.Http;

namespace Gateway.Tests.Adaptation;

/// <summary>The cache stores what RESPMOD produced and records the adapting service's ISTag: a changed ISTag makes the entry unusable.</summary>
public sealed class AdaptationCacheTests
{
    [Fact]
    public async Task CachedAdaptedResponse_IsHit_UntilTheServiceIsTagChanges()
    {
        var service = new TaggedUpperService();
        await using var icap = await OwnIcapServer.StartAsync(extra: service);
        await using var backend = await TestBackend.StartAsync(async ctx =>
        {
            ctx.Response.ContentType = "text/plain";
            ctx.Response.Headers.CacheControl = "max-age=3600";
            await ctx.Response.WriteAsync("origin body");
        });
        var config = ReverseProxyTests.RouteTo(backend.Uri);
        config["Gateway:Icap:Services:upper:Uri"] = icap.Uri("tagged");
        config["Gateway:Adaptation:Respmod:0"] = "upper";
        await using var gw = await GatewayHost.StartAsync(config);
        using var client = gw.CreateClient();

        Assert.Equal("ORIGIN BODY", await client.GetStringAsync("/doc"));
        using (var hit = await client.GetAsync("/doc"))
        {
            Assert.Equal("ORIGIN BODY", await hit.Content.ReadAsStringAsync());
            Assert.Contains("hit", string.Join(",", hit.Headers.GetValues("Cache-Status")));
        }
        Assert.Equal(1, backend.Requests);

        service.Tag = "\"v2\"";
        // The OPTIONS TTL is 1 s: once it expires the gateway re-fetches OPTIONS, sees the new ISTag and stops serving the old entry.
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (backend.Requests == 1 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(250);
            Assert.Equal("ORIGIN BODY", await client.GetStringAsync("/doc"));
        }
        Assert.Equal(2, backend.Requests);
    }

    private sealed class TaggedUpperService : IcapService
    {
        public TaggedUpperService() : base("tagged") { }

        public volatile string Tag = "\"v1\"";

        public override string IsTag => Tag;

        public override IcapServiceDeclaration Declaration { get; } = new() { Methods = [Gateway.Icap.Protocol.IcapMethod.Respmod], PreviewSize = null, OptionsTtl = TimeSpan.FromSeconds(1) };

        protected override async ValueTask RespmodAsync(IcapRequestContext context, CancellationToken cancellationToken)
        {
            using var ms = new MemoryStream();
            await context.Body.CopyToAsync(ms, cancellationToken);
            var upper = Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(ms.ToArray()).ToUpperInvariant());
            var head = context.HttpResponse!.Clone();
            head.Headers.Remove("Content-Length");
            await context.RespondAsync(head, new MemoryStream(upper), cancellationToken);
        }
    }
}
