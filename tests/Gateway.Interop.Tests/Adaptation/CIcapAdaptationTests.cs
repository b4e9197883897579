using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Net;
using System.Security.Cryptography;
using System.Text;
using Gateway.Interop.Tests.Peers;
using Gateway.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;

namespace Gateway.Interop.Tests.Adaptation;

/// <summary>RESPMOD/REQMOD through a real c-icap: echo (alternating 200/204), ex206, and virus_scan with ClamAV.</summary>
public sealed class CIcapAdaptationTests
{
    private static Dictionary<string, string?> Config(Uri backend, params (string, string?)[] extra)
    {
        var config = new Dictionary<string, string?>
        {
            ["ReverseProxy:Routes:all:ClusterId"] = "backend",
            ["ReverseProxy:Routes:all:Match:Path"] = "{**catch-all}",
            ["ReverseProxy:Clusters:backend:Destinations:d1:Address"] = backend.ToString(),
        };
        foreach (var (k, v) in extra) config[k] = v;
        return config;
    }

    private static Task<TestBackend> Backend(Func<string, byte[]> content, string contentType = "application/octet-stream")
        => TestBackend.StartAsync(async ctx =>
        {
            var bytes = content(ctx.Request.Path.Value ?? "/");
            ctx.Response.ContentType = contentType;
            ctx.Response.ContentLength = bytes.Length;
            await ctx.Response.Body.WriteAsync(bytes);
        });

    /// <summary>Collects gateway.icap.client.outcomes by outcome tag.</summary>
    private sealed class OutcomeRecorder : IDisposable
    {
        private readonly MeterListener _listener = new();

        public OutcomeRecorder()
        {
            _listener.InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == "Gateway" && instrument.Name == "gateway.icap.client.outcomes") l.EnableMeasurementEvents(instrument);
            };
            _listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
            {
                foreach (var tag in tags)
                {
                    if (tag.Key == "outcome") Counts.AddOrUpdate((string)tag.Value!, value, (_, n) => n + value);
                }
            });
            _listener.Start();
        }

        public ConcurrentDictionary<string, long> Counts { get; } = new();

        public void Dispose() => _listener.Dispose();
    }

    [Fact]
    public async Task Echo_Alternating200And204_BothPassBodiesUnchanged()
    {
        await using var cicap = await CIcapServer.StartAsync();
        var payloads = new ConcurrentDictionary<string, byte[]>();
        await using var backend = await Backend(path => payloads.GetOrAdd(path, _ => RandomNumberGenerator.GetBytes(3000 + path.Length)));
        await using var gw = await GatewayHost.StartAsync(Config(backend.Uri,
            ("Gateway:Icap:Services:echo:Uri", cicap.Uri("echo")),
            ("Gateway:Adaptation:Respmod:0", "echo")));
        using var client = gw.CreateClient();
        using var outcomes = new OutcomeRecorder();

        for (var i = 0; i < 6; i++)
        {
            using var response = await client.GetAsync($"/file{i}");
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal(payloads[$"/file{i}"], await response.Content.ReadAsByteArrayAsync());
        }
        Assert.True(outcomes.Counts.GetValueOrDefault("200") > 0, "c-icap echo answered 200 at least once");
        Assert.True(outcomes.Counts.GetValueOrDefault("204") > 0, "c-icap echo answered 204 at least once");
        Assert.Equal(0, outcomes.Counts.GetValueOrDefault("error"));
    }

    [Fact]
    public async Task Echo_LargeBody_StreamsByteIdentical()
    {
        await using var cicap = await CIcapServer.StartAsync();
        var payload = RandomNumberGenerator.GetBytes(5 * 1024 * 1024);
        await using var backend = await Backend(_ => payload);
        await using var gw = await GatewayHost.StartAsync(Config(backend.Uri,
            ("Gateway:Icap:Services:echo:Uri", cicap.Uri("echo")),
            ("Gateway:Adaptation:Respmod:0", "echo")));
        using var client = gw.CreateClient();

        using var response = await client.GetAsync("/big");
        Assert.Equal(payload, await response.Content.ReadAsByteArrayAsync());
    }

    [Fact]
    public async Task Reqmod_Echo_RequestReachesBackendUnchanged()
    {
        await using var cicap = await CIcapServer.StartAsync();
        await using var backend = await TestBackend.StartAsync(async ctx =>
        {
            using var reader = new StreamReader(ctx.Request.Body);
            await ctx.Response.WriteAsync("got:" + await reader.ReadToEndAsync());
        });
        await using var gw = await GatewayHost.StartAsync(Config(backend.Uri,
            ("Gateway:Icap:Services:echo:Uri", cicap.Uri("echo")),
            ("Gateway:Adaptation:Reqmod:0", "echo")));
        using var client = gw.CreateClient();

        for (var i = 0; i < 4; i++)
        {
            using var response = await client.PostAsync("/post?i=" + i, new StringContent("payload " + i));
            Assert.Equal("got:payload " + i, await response.Content.ReadAsStringAsync());
        }
    }

    [Fact]
    public async Task Ex206_UseOriginalBody_GivesTheOriginal()
    {
        await using var cicap = await CIcapServer.StartAsync();
        var payload = Encoding.ASCII.GetBytes(string.Concat(Enumerable.Range(0, 400).Select(i => $"line {i:D4} of the original body\n")));
        await using var backend = await Backend(_ => payload, "text/plain");
        await using var gw = await GatewayHost.StartAsync(Config(backend.Uri,
            ("Gateway:Icap:Services:ex206:Uri", cicap.Uri("ex206")),
            ("Gateway:Adaptation:Respmod:0", "ex206")));
        using var client = gw.CreateClient();
        using var outcomes = new OutcomeRecorder();

        using var response = await client.GetAsync("/doc.txt");
        var body = await response.Content.ReadAsByteArrayAsync();

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.True(outcomes.Counts.GetValueOrDefault("206") > 0, $"expected a 206, got {string.Join(",", outcomes.Counts)}");
        Assert.Equal(body.Length, response.Content.Headers.ContentLength);
        // ex206 sends its own bytes and then use-original-body=N: the tail of the answer is the original from N on.
        var text = Encoding.ASCII.GetString(body);
        Assert.EndsWith("line 0399 of the original body\n", text);
        Assert.Contains("line 0200 of the original body\n", text);
    }

    [Fact]
    public async Task VirusScan_InfectedDownloadIsBlocked_CleanOnePassesByteIdentical()
    {
        await using var cicap = await CIcapServer.StartAsync(antivirus: true);
        var clean = Encoding.ASCII.GetBytes("just a harmless text file\n" + new string('x', 20000));
        var infected = Encoding.ASCII.GetBytes("prefix bytes ICAPPEERTESTMARKER suffix bytes\n");
        await using var backend = await Backend(path => path.Contains("infected") ? infected : clean, "text/plain");
        await using var gw = await GatewayHost.StartAsync(Config(backend.Uri,
            ("Gateway:Icap:Services:av:Uri", cicap.Uri("avscan")),
            ("Gateway:Adaptation:Respmod:0", "av")));
        using var client = gw.CreateClient();

        using var ok = await client.GetAsync("/clean.txt");
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        Assert.Equal(clean, await ok.Content.ReadAsByteArrayAsync());

        using var blocked = await client.GetAsync("/infected.txt");
        var page = await blocked.Content.ReadAsStringAsync();
        Assert.NotEqual(Encoding.ASCII.GetString(infected), page);
        Assert.Contains("IcapPeerTest.Marker", page);
        Assert.Equal(Encoding.UTF8.GetByteCount(page), blocked.Content.Headers.ContentLength);
    }
}
