using Gateway.Interop.Tests.Peers;

namespace Gateway.Interop.Tests.Icap;

/// <summary>c-icap-client (Debian <c>c-icap</c>) against our ICAP server.</summary>
public sealed class CIcapClientInteropTests : IClassFixture<IcapServerHost>, IDisposable
{
    private readonly IcapServerHost _server;
    private readonly string _dir;
    private readonly string _client;

    public CIcapClientInteropTests(IcapServerHost server)
    {
        _server = server;
        _client = PeerProcess.Require("c-icap-client", "c-icap");
        _dir = Path.Combine(Path.GetTempPath(), "gw-cicap-" + Guid.NewGuid().ToString("N")[..8]);
        Directory.CreateDirectory(_dir);
    }

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private Task<PeerProcess.Result> RunAsync(string service, params string[] args)
        => PeerProcess.RunAsync(_client, new[] { "-i", "127.0.0.1", "-p", _server.Port.ToString(), "-s", service }.Concat(args));

    private async Task<(byte[] Input, string OutPath, PeerProcess.Result Result)> ModifyAsync(int size, string service, params string[] args)
    {
        var input = Path.Combine(_dir, $"in-{size}-{Guid.NewGuid():N}.bin");
        var output = Path.Combine(_dir, $"out-{Guid.NewGuid():N}.bin");
        var data = new byte[size];
        new Random(size + 7).NextBytes(data);
        await File.WriteAllBytesAsync(input, data);
        var result = await RunAsync(service, new[] { "-f", input, "-o", output, "-v" }.Concat(args).ToArray());
        return (data, output, result);
    }

    [Fact]
    public async Task Options_ReportsTheDeclaredCapabilities()
    {
        var r = await RunAsync("echo", "-v");
        Assert.Contains("ICAP/1.0 200 OK", r.Output);
        Assert.Contains("Methods: REQMOD, RESPMOD", r.Output);
        Assert.Contains("Allow 204: Yes", r.Output);
        Assert.Contains("Preview: 1024", r.Output);
        Assert.Contains("Keep alive: Yes", r.Output);
        Assert.Matches("ISTag: \"GW-[0-9A-F]+\"", r.Output);
        Assert.Contains("Encapsulated: null-body=0", r.Output);
    }

    public static TheoryData<int, string> Modes()
    {
        var data = new TheoryData<int, string>();
        foreach (var size in new[] { 0, 1024, 1024 * 1024 })
        {
            foreach (var mode in new[] { "respmod-preview", "respmod-nopreview", "reqmod-preview", "reqmod-nopreview", "respmod-206" })
            {
                data.Add(size, mode);
            }
        }
        return data;
    }

    /// <summary>-no204: the echo must come back as a 200 with the body byte-identical.</summary>
    [Theory]
    [MemberData(nameof(Modes))]
    public async Task No204_EchoesTheBodyByteIdentical(int size, string mode)
    {
        var args = new List<string> { "-no204" };
        if (mode.EndsWith("nopreview", StringComparison.Ordinal)) args.Add("-nopreview");
        if (mode.StartsWith("reqmod", StringComparison.Ordinal)) args.AddRange(["-req", "http://origin.example/upload"]);
        if (mode.EndsWith("206", StringComparison.Ordinal)) args.Add("-206");
        var (input, output, result) = await ModifyAsync(size, "echo", args.ToArray());
        Assert.Contains("ICAP/1.0 200 OK", result.Output);
        Assert.True(File.Exists(output), result.Output);
        var echoed = await File.ReadAllBytesAsync(output);
        Assert.True(input.AsSpan().SequenceEqual(echoed), $"{mode} {size}: body differs\n{result.Output}");
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1024)]
    [InlineData(1024 * 1024)]
    public async Task Allow204_IsAnswered204(int size)
    {
        var (_, output, result) = await ModifyAsync(size, "echo");
        Assert.Contains("ICAP/1.0 204 No Content", result.Output);
        Assert.Contains("No modification needed", result.Output);
        Assert.False(File.Exists(output));
    }

    /// <summary>
    /// echo?prefer=206 answers 206 with the preview bytes and use-original-body. c-icap-client 0.5.10 receives the 206
    /// (it reports "Partial modification"), though its own use-original-body bookkeeping is unreliable, so only the
    /// exchange is checked here; the 206 framing itself is checked by the server tests.
    /// </summary>
    [Theory]
    [InlineData(1024)]
    [InlineData(1024 * 1024)]
    public async Task Allow206_IsAnswered206(int size)
    {
        var (_, _, result) = await ModifyAsync(size, "echo?prefer=206", "-206");
        Assert.Contains("ICAP/1.0 206 Partial Content", result.Output);
        Assert.Contains("Partial modification (Allow 206 response)", result.Output);
    }

    [Fact]
    public async Task Filter_BlocksAKeyword_WithA403Page()
    {
        var (_, output, result) = await ModifyAsync(10, "filter", "-req", $"http://example.com/{IcapServerHost.BlockedKeyword}/page", "-no204");
        Assert.Contains("ICAP/1.0 200 OK", result.Output);
        Assert.Contains("HTTP/1.1 403 Forbidden", result.Output);
        Assert.Contains("X-Blocked-Keyword: " + IcapServerHost.BlockedKeyword, result.Output);
        Assert.Contains("Access blocked", await File.ReadAllTextAsync(output));
    }

    /// <summary>Our 404 (with Connection: close) ends c-icap-client's exchange at once instead of leaving it waiting.</summary>
    [Fact]
    public async Task UnknownService_EndsTheExchange_WithNoOutput()
    {
        var (_, output, result) = await ModifyAsync(10, "no-such-service", "-no204");
        Assert.DoesNotContain("ICAP/1.0 200", result.Output);
        Assert.True(!File.Exists(output) || new FileInfo(output).Length == 0, result.Output);
    }
}
