// Usage: dotnet run -c Release --project tests/bench/adaptation/ClientBench [icap://127.0.0.1:1344/echo] [seconds=4]
// Without a URI the gateway's own ICAP server (built-in echo) is started in this process on a free loopback port.
using System.Diagnostics;
using System.Net;
using Gateway.Icap.Client;
using Gateway.Icap.Protocol;
using Gateway.Icap.Server;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

var target = args.Length > 0 ? args[0] : null;
var seconds = args.Length > 1 ? double.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture) : 4;
WebApplication? app = null;
if (target is null)
{
    var builder = WebApplication.CreateSlimBuilder();
    builder.Logging.ClearProviders();
    builder.Services.AddIcapServer(o => o.Listen = "127.0.0.1:0");
    builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, 0, lo => lo.UseIcapServer()));
    app = builder.Build();
    await app.StartAsync();
    var port = new Uri(app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.First()).Port;
    target = $"icap://127.0.0.1:{port}/echo";
}

await using var client = new IcapClient("bench", new IcapClientOptions { Uri = new Uri(target) });
var payload = new byte[1024];
Random.Shared.NextBytes(payload);

async Task OneAsync()
{
    await using var result = await client.SendRespmodAsync(
        new HttpRequestHead("GET", "http://origin.test/1k.bin", "HTTP/1.1", new IcapHeaders { { "Host", "origin.test" } }),
        new HttpResponseHead("HTTP/1.1", 200, "OK", new IcapHeaders { { "Content-Length", "1024" } }),
        new MemoryStream(payload), payload.Length);
    if (result.Body is not null) await result.Body.CopyToAsync(Stream.Null);
}

for (var i = 0; i < 2000; i++) await OneAsync(); // warm-up
foreach (var concurrency in new[] { 1, 16 })
{
    var sw = Stopwatch.StartNew();
    var count = 0;
    await Task.WhenAll(Enumerable.Range(0, concurrency).Select(async _ =>
    {
        while (sw.Elapsed.TotalSeconds < seconds)
        {
            await OneAsync();
            Interlocked.Increment(ref count);
        }
    }));
    Console.WriteLine($"{target} concurrency {concurrency}: {count / sw.Elapsed.TotalSeconds:F0} transactions/s");
}
if (app is not null) await app.StopAsync();
