using System.Text;
using Gateway.Icap.Client;
using Gateway.Icap.Protocol;

namespace Gateway.Tests.Adaptation;

/// <summary>The ICAP client on its own, against the gateway's own ICAP server in this process.</summary>
public sealed class IcapClientTests
{
    private static HttpRequestHead Request(string target = "http://origin.test/a.txt", string method = "POST")
        => new(method, target, "HTTP/1.1", new IcapHeaders { { "Host", "origin.test" }, { "Content-Length", "11" } });

    [Fact]
    public async Task Reqmod_Modified_HeadAndBodyStreamBack()
    {
        await using var icap = await OwnIcapServer.StartAsync(extra: new AddHeaderService());
        await using var client = new IcapClient("add", new IcapClientOptions { Uri = new Uri(icap.Uri("addheader")) });

        await using var result = await client.SendAsync(new IcapAdaptationRequest
        {
            Method = IcapMethod.Reqmod,
            HttpRequest = Request(),
            Body = new MemoryStream(Encoding.ASCII.GetBytes("posted body")),
            BodyLength = 11,
        }, CancellationToken.None);

        Assert.Equal(IcapResultKind.Modified, result.Kind);
        Assert.Equal("added", result.HttpRequest!.Headers["X-Icap-Reqmod"]);
        using var reader = new StreamReader(result.Body!);
        Assert.Equal("posted body", await reader.ReadToEndAsync());
        Assert.NotNull(client.IsTag);
    }

    [Theory]
    [InlineData("echo", 204)]
    [InlineData("echo?prefer=200", 200)]
    [InlineData("echo?prefer=206", 206)]
    public async Task Respmod_Echo_AllAnswers_GiveTheOriginalBody(string service, int expectedStatus)
    {
        await using var icap = await OwnIcapServer.StartAsync();
        await using var client = new IcapClient("echo", new IcapClientOptions { Uri = new Uri(icap.Uri(service)) });
        var payload = new byte[5000];
        Random.Shared.NextBytes(payload);

        for (var i = 0; i < 3; i++) // the connection is reused
        {
            await using var result = await client.SendAsync(new IcapAdaptationRequest
            {
                Method = IcapMethod.Respmod,
                HttpRequest = Request(method: "GET"),
                HttpResponse = new HttpResponseHead("HTTP/1.1", 200, "OK", new IcapHeaders { { "Content-Length", "5000" } }),
                Body = new MemoryStream(payload),
                BodyLength = payload.Length,
            }, CancellationToken.None);
            Assert.Equal(expectedStatus, result.StatusCode);
            using var ms = new MemoryStream();
            await result.Body!.CopyToAsync(ms);
            Assert.Equal(payload, ms.ToArray());
        }
        Assert.Equal(1, client.OpenConnections);
    }

    [Theory]
    [InlineData("", IcapTransferMode.Preview)]
    [InlineData("exe", IcapTransferMode.Complete)]
    [InlineData("jpg", IcapTransferMode.Ignore)]
    [InlineData("html", IcapTransferMode.Preview)]
    public void TransferMode_ByExtension(string extension, IcapTransferMode expected)
    {
        Assert.Equal(expected, Options("Transfer-Preview: *\r\nTransfer-Ignore: jpg, gif\r\nTransfer-Complete: exe\r\n").GetTransferMode(extension));
    }

    [Theory]
    [InlineData("http://h/a/b.TXT?x=1", "txt")]
    [InlineData("/a/b", "")]
    [InlineData("http://h/a.b/c", "")]
    [InlineData("/file.tar.gz", "gz")]
    public void Extension_FromTarget(string target, string expected) => Assert.Equal(expected, IcapClient.GetExtension(target));

    [Fact]
    public void OptionsTtl_DefaultsTo60s()
    {
        Assert.Equal(TimeSpan.FromSeconds(60), Options("").Ttl);
        Assert.Equal(TimeSpan.FromSeconds(300), Options("Options-TTL: 300\r\n").Ttl);
        Assert.Equal(5, Options("Max-Connections: 5\r\n").MaxConnections);
    }

    private static IcapServiceOptions Options(string headers)
    {
        var bytes = Encoding.ASCII.GetBytes("ICAP/1.0 200 OK\r\nMethods: RESPMOD\r\nISTag: \"x\"\r\n" + headers + "Encapsulated: null-body=0\r\n\r\n");
        var reader = new System.Buffers.SequenceReader<byte>(new System.Buffers.ReadOnlySequence<byte>(bytes));
        Assert.True(IcapParser.TryParseResponseHead(ref reader, IcapParserLimits.Default, IcapMethod.Options, out var head));
        return IcapServiceOptions.FromResponse(head!, DateTimeOffset.UnixEpoch);
    }
}
