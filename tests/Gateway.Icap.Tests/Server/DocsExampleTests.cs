using Gateway.Icap.Protocol;
using Gateway.Icap.Server;

namespace Gateway.Icap.Tests.Server;

/// <summary>The "writing a service" example of the README's ICAP section, compiled and exercised.</summary>
public sealed class DocsExampleTests
{
    private sealed class NoExeService : IcapService
    {
        public NoExeService() : base("noexe") { }

        public override IcapServiceDeclaration Declaration { get; } = new()
        {
            Methods = [IcapMethod.Respmod],
            Description = "Blocks Windows executables",
            PreviewSize = 16,
            Allow204 = true,
        };

        protected override async ValueTask RespmodAsync(IcapRequestContext ctx, CancellationToken ct)
        {
            var head = await ctx.ReadPreviewAsync(2, ct);
            if (head.Length == 2 && head.Span[0] == (byte)'M' && head.Span[1] == (byte)'Z')
            {
                await ctx.RespondHttpAsync(403, "Forbidden", null, "executables are blocked"u8.ToArray(), ct);
                return;
            }
            if (ctx.CanRespondNoContent)
            {
                await ctx.RespondNoContentAsync(ct);
                return;
            }
            var response = ctx.HttpResponse!.Clone();
            response.Headers.Set("X-Scanned", "noexe");
            await ctx.RespondAsync(response, ctx.Body, ct);
        }
    }

    [Fact]
    public async Task Blocks_MZ_Passes204InPreview_AndStreamsOtherwise()
    {
        await using (var server = new PipeServer(null, new NoExeService()))
        {
            await server.Client.SendAsync(IcapRequests.Respmod("noexe", "MZ\u0090\u0000 binary", preview: 16));
            var r = await server.Client.ReadResponseAsync();
            Assert.Equal(403, r.HttpResponse!.StatusCode);
            Assert.Equal("executables are blocked", r.BodyText);
        }
        await using (var server = new PipeServer(null, new NoExeService()))
        {
            await server.Client.SendAsync(IcapRequests.Respmod("noexe", "plain text that is long", preview: 16));
            Assert.Equal(204, (await server.Client.ReadResponseAsync()).Status);
        }
        await using (var server = new PipeServer(null, new NoExeService()))
        {
            await server.Client.SendAsync(IcapRequests.Respmod("noexe", "plain text, no preview"));
            var r = await server.Client.ReadResponseAsync();
            Assert.Equal(200, r.Status);
            Assert.Equal("noexe", r.HttpResponse!.Headers["X-Scanned"]);
            Assert.Equal("plain text, no preview", r.BodyText);
        }
    }
}
