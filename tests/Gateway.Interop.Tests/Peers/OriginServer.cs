using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Gateway.Interop.Tests.Peers;

/// <summary>
/// A real Kestrel origin: <c>GET /bytes/{n}</c> answers n deterministic bytes; <c>POST /echo</c> answers the request body;
/// anything else 200 "origin reached".
/// </summary>
public sealed class OriginServer : IAsyncLifetime
{
    private WebApplication? _app;

    public int Port { get; private set; }

    public static byte[] Bytes(int n)
    {
        var data = new byte[n];
        new Random(n).NextBytes(data);
        return data;
    }

    public async Task InitializeAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = null;
            k.Listen(IPAddress.Loopback, 0);
        });
        _app = builder.Build();
        _app.MapGet("/bytes/{n:int}", (int n) => Results.Bytes(Bytes(n), "application/octet-stream"));
        _app.MapPost("/echo", async (HttpContext ctx) =>
        {
            ctx.Response.ContentType = "application/octet-stream";
            if (ctx.Request.ContentLength is { } len) ctx.Response.ContentLength = len;
            await ctx.Request.Body.CopyToAsync(ctx.Response.Body);
        });
        _app.MapFallback(() => Results.Text("origin reached"));
        await _app.StartAsync();
        Port = new Uri(_app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First()).Port;
    }

    public async Task DisposeAsync()
    {
        if (_app is not null) await _app.DisposeAsync();
    }
}
