using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using Gateway.Interop.Tests.Peers;

namespace Gateway.Interop.Tests.Icap;

/// <summary>Squid as an ICAP client of our server, in front of a local Kestrel origin; one squid for the class.</summary>
public sealed class SquidInteropTests : IClassFixture<SquidInteropTests.Environment>
{
    private readonly Environment _env;

    public SquidInteropTests(Environment env) => _env = env;

    public sealed class Environment : IAsyncLifetime
    {
        public IcapServerHost Icap { get; } = new();

        public OriginServer Origin { get; } = new();

        public SquidPeer? Squid { get; private set; }

        public HttpClient Client { get; private set; } = null!;

        public async Task InitializeAsync()
        {
            PeerProcess.Require("squid", "squid");
            await Icap.InitializeAsync();
            await Origin.InitializeAsync();
            var icap = $"icap://127.0.0.1:{Icap.Port}";
            // Requests whose URL holds the keyword go to the filter service; everything else to echo.
            Squid = await SquidPeer.StartAsync($"""
                acl to_filter url_regex -i {IcapServerHost.BlockedKeyword}
                icap_service svc_filter reqmod_precache {icap}/filter bypass=off
                icap_service svc_req reqmod_precache {icap}/echo bypass=off
                icap_service svc_resp respmod_precache {icap}/echo bypass=off
                adaptation_access svc_filter allow to_filter
                adaptation_access svc_filter deny all
                adaptation_access svc_req deny to_filter
                adaptation_access svc_req allow all
                adaptation_access svc_resp allow all
                """);
            Client = new HttpClient(new SocketsHttpHandler
            {
                Proxy = new WebProxy($"http://127.0.0.1:{Squid.Port}"),
                UseProxy = true,
                AutomaticDecompression = DecompressionMethods.None,
            })
            { Timeout = TimeSpan.FromSeconds(60) };
        }

        public async Task DisposeAsync()
        {
            Client?.Dispose();
            if (Squid is not null) await Squid.DisposeAsync();
            await Origin.DisposeAsync();
            await Icap.DisposeAsync();
        }
    }

    public static TheoryData<int> Sizes() => new() { 0, 3000, 200 * 1024, 5 * 1024 * 1024 };

    [Theory]
    [MemberData(nameof(Sizes))]
    public async Task Get_ThroughReqmodAndRespmodEcho_IsByteIdentical(int size)
    {
        using var response = await _env.Client.GetAsync($"http://127.0.0.1:{_env.Origin.Port}/bytes/{size}");
        var body = await response.Content.ReadAsByteArrayAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{response.StatusCode}\n{_env.Squid!.CacheLog}");
        Assert.True(OriginServer.Bytes(size).AsSpan().SequenceEqual(body), $"GET {size}: body differs ({body.Length} bytes)");
        AssertIcapUsed(size, "REQMOD", "RESPMOD");
    }

    [Theory]
    [MemberData(nameof(Sizes))]
    public async Task Post_ThroughReqmodAndRespmodEcho_IsByteIdentical(int size)
    {
        var payload = OriginServer.Bytes(size + 1)[..size];
        using var content = new ByteArrayContent(payload);
        content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
        HttpResponseMessage response;
        try
        {
            response = await _env.Client.PostAsync($"http://127.0.0.1:{_env.Origin.Port}/echo?size={size.ToString(CultureInfo.InvariantCulture)}", content);
        }
        catch (HttpRequestException ex)
        {
            throw new Xunit.Sdk.XunitException($"POST {size} through squid failed: {ex.Message}\n--- squid cache.log ---\n{_env.Squid!.CacheLog}\n--- icap.log ---\n{_env.Squid.IcapLog}");
        }
        using var _ = response;
        var body = await response.Content.ReadAsByteArrayAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{response.StatusCode}\n{_env.Squid!.CacheLog}");
        Assert.True(payload.AsSpan().SequenceEqual(body), $"POST {size}: body differs ({body.Length} bytes)");
    }

    [Fact]
    public async Task BlockedRequest_GetsTheFilterBlockPage()
    {
        using var response = await _env.Client.GetAsync($"http://127.0.0.1:{_env.Origin.Port}/{IcapServerHost.BlockedKeyword}/page");
        var body = await response.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Contains("Access blocked", body);
        Assert.DoesNotContain("origin reached", body);
        Assert.Contains("/filter", _env.Squid!.IcapLog);
    }

    private void AssertIcapUsed(int size, params string[] methods)
    {
        var log = _env.Squid!.IcapLog;
        foreach (var m in methods) Assert.True(log.Contains(m + " icap://", StringComparison.Ordinal), $"no {m} in icap.log for {size}:\n{log}");
    }
}
