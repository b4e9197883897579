using System.Diagnostics;
using System.IO.Compression;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using Gateway.Proxy;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Rules;

/// <summary>The built-in ICAP service <c>rules</c> on the gateway's ICAP server, driven by c-icap-client.</summary>
public sealed class RulesIcapServiceTests : IAsyncLifetime
{
    private const string Rules = """
        {
          "Drop": { "ads": { "Match": { "Host": "*.ads.example" } } },
          "Rewrite": {
            "json": { "Match": { "Host": "api.example", "Methods": "POST" },
                      "Request": { "Body": [ { "Pattern": "\"password\":\"[^\"]*\"", "Replacement": "\"password\":\"***\"" } ] } },
            "req": { "Match": { "Host": "www.example" },
                     "Request": { "Url": [ { "Pattern": "/old/", "Replacement": "/new/" } ],
                                  "Headers": { "Set": { "X-Rewritten": "1" }, "Remove": [ "Cookie" ] } } },
            "body": { "Match": { "Host": "www.example", "ContentType": "text/*" },
                      "Response": { "Body": [ { "Pattern": "world", "Replacement": "gateway" } ],
                                    "Headers": { "Set": { "X-Filtered": "1" } } } }
          }
        }
        """;

    private string _root = null!;
    private GatewayHost _gw = null!;

    public async Task InitializeAsync()
    {
        _root = Directory.CreateTempSubdirectory("gw-rules-icap-").FullName;
        await WriteSettingsAsync(Rules);
        _gw = await GatewayHost.StartAsync(new Dictionary<string, string?>(), contentRoot: _root);
    }

    public async Task DisposeAsync()
    {
        await _gw.DisposeAsync();
        Directory.Delete(_root, recursive: true);
    }

    private Task WriteSettingsAsync(string rules)
    {
        var temp = Path.Combine(_root, "appsettings.json.tmp");
        File.WriteAllText(temp, "{ \"Gateway\": { \"Rules\": " + rules + " } }");
        File.Move(temp, Path.Combine(_root, "appsettings.json"), overwrite: true);
        return Task.CompletedTask;
    }

    private int IcapPort => _gw.EndPoint(ListenerRegistry.Icap)!.Port;

    /// <summary>Runs c-icap-client against the rules service; returns stdout (with -v: the ICAP and HTTP heads).</summary>
    private async Task<string> IcapClientAsync(params string[] args)
    {
        var psi = new ProcessStartInfo("c-icap-client")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in (string[])["-i", "127.0.0.1", "-p", IcapPort.ToString(), "-s", "rules", "-v", .. args])
        {
            psi.ArgumentList.Add(a);
        }
        Process process;
        try
        {
            process = Process.Start(psi)!;
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new Xunit.Sdk.XunitException("c-icap-client is not installed (Debian package: c-icap): " + ex.Message);
        }
        using (process)
        {
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
            try
            {
                await process.WaitForExitAsync(timeout.Token);
            }
            catch (OperationCanceledException)
            {
                process.Kill();
                throw new Xunit.Sdk.XunitException("c-icap-client did not finish: " + await stdout);
            }
            return await stdout + await stderr;
        }
    }

    [Fact]
    public async Task Reqmod_Drop_AnswersWithTheEncapsulatedPlaceholder()
    {
        var output = Path.Combine(_root, "out.gif");
        var text = await IcapClientAsync("-req", "http://x.ads.example/pixel.gif", "-o", output);
        Assert.Contains("ICAP/1.0 200", text);
        Assert.Contains("X-Gateway-Rule: drop/ads", text);
        Assert.Contains("HTTP/1.1 200", text);
        Assert.Contains("Content-Type: image/gif", text);
        var gif = await File.ReadAllBytesAsync(output);
        Assert.Equal(43, gif.Length);
        Assert.Equal("GIF89a", Encoding.ASCII.GetString(gif, 0, 6));

        var page = await IcapClientAsync("-req", "http://x.ads.example/index.html");
        Assert.Contains("Content-Type: text/html", page);
        Assert.Contains("Blocked", page);
    }

    [Fact]
    public async Task Respmod_Drop_ReplacesTheResponseWithThePlaceholder()
    {
        var input = Path.Combine(_root, "page.html");
        await File.WriteAllTextAsync(input, "<html>ad content</html>");
        // -nopreview: c-icap-client does not print a final answer given during the preview (legal ICAP, Squid takes it).
        var text = await IcapClientAsync("-resp", "http://x.ads.example/page.html", "-f", input, "-rhx", "Content-Type: text/html", "-nopreview");
        Assert.Contains("ICAP/1.0 200", text);
        Assert.Contains("X-Gateway-Rule: drop/ads", text);
        Assert.Contains("was blocked by the gateway", text);
        Assert.DoesNotContain("ad content", text);
    }

    [Fact]
    public async Task Reqmod_Rewrite_ReturnsTheModifiedRequest()
    {
        var text = await IcapClientAsync("-req", "http://www.example/old/page?x=1", "-hx", "Cookie: secret=1", "-hx", "Accept: text/html");
        Assert.Contains("ICAP/1.0 200", text);
        Assert.Contains("GET http://www.example/new/page?x=1 HTTP/", text);
        Assert.Contains("X-Rewritten: 1", text);
        Assert.Contains("Accept: text/html", text);
        Assert.DoesNotContain("Cookie", text);
    }

    [Fact]
    public async Task Reqmod_Rewrite_RequestBody()
    {
        var input = Path.Combine(_root, "login.json");
        var output = Path.Combine(_root, "login.out");
        await File.WriteAllTextAsync(input, "{\"user\":\"zoe\",\"password\":\"hunter2\"}");
        var text = await IcapClientAsync("-req", "http://api.example/login", "-method", "POST", "-f", input, "-o", output, "-hx", "Content-Type: application/json");
        Assert.Contains("ICAP/1.0 200", text);
        Assert.Contains("POST http://api.example/login", text);
        Assert.Equal("{\"user\":\"zoe\",\"password\":\"***\"}", await File.ReadAllTextAsync(output));
    }

    [Fact]
    public async Task Reqmod_NoMatchingRule_Is204()
    {
        var text = await IcapClientAsync("-req", "http://other.example/");
        Assert.Contains("ICAP/1.0 204", text);
    }

    [Fact]
    public async Task Respmod_Rewrite_ModifiesHeadersAndBody_PlainAndGzip()
    {
        var input = Path.Combine(_root, "body.txt");
        var output = Path.Combine(_root, "out.txt");
        await File.WriteAllTextAsync(input, "hello world, wide world\n");
        var text = await IcapClientAsync("-resp", "http://www.example/page", "-f", input, "-o", output, "-rhx", "Content-Type: text/plain; charset=utf-8");
        Assert.Contains("ICAP/1.0 200", text);
        Assert.Contains("X-Filtered: 1", text);
        Assert.Equal("hello gateway, wide gateway\n", await File.ReadAllTextAsync(output));

        var gz = Path.Combine(_root, "body.gz");
        await using (var file = File.Create(gz))
        await using (var gzip = new GZipStream(file, CompressionLevel.Optimal))
        {
            await gzip.WriteAsync(Encoding.UTF8.GetBytes(string.Concat(Enumerable.Repeat("hello world\n", 5000))));
        }
        var outputGz = Path.Combine(_root, "out.gz"); // c-icap-client does not overwrite an existing output file
        text = await IcapClientAsync("-resp", "http://www.example/big", "-f", gz, "-o", outputGz, "-rhx", "Content-Type: text/plain", "-rhx", "Content-Encoding: gzip");
        Assert.True(text.Contains("Content-Encoding: gzip"), text);
        await using var result = new GZipStream(File.OpenRead(outputGz), CompressionMode.Decompress);
        using var reader = new StreamReader(result);
        Assert.Equal(string.Concat(Enumerable.Repeat("hello gateway\n", 5000)), await reader.ReadToEndAsync());

        // Another host: nothing to do.
        text = await IcapClientAsync("-resp", "http://other.example/page", "-f", input, "-rhx", "Content-Type: text/plain");
        Assert.Contains("ICAP/1.0 204", text);
    }

    [Fact]
    public async Task IsTag_ChangesWhenTheRulesAreReloaded_AndMatchesAreCounted()
    {
        var before = IsTag(await IcapClientAsync());
        Assert.StartsWith("\"GW-RULES-", before);
        await IcapClientAsync("-req", "http://x.ads.example/a.js");
        using var admin = _gw.CreateAdminClient();
        var summary = await admin.GetFromJsonAsync<JsonElement>("/rules");
        var ads = summary.GetProperty("rules").EnumerateArray().Single(r => r.GetProperty("id").GetString() == "ads");
        Assert.Equal(1, ads.GetProperty("matches").GetInt64());

        await WriteSettingsAsync("""{ "Drop": { "other": { "Match": { "Host": "other.example" } } } }""");
        var deadline = DateTime.UtcNow.AddSeconds(30);
        string after;
        do
        {
            await Task.Delay(100);
            after = IsTag(await IcapClientAsync());
        }
        while (after == before && DateTime.UtcNow < deadline);
        Assert.NotEqual(before, after);
        Assert.Contains("X-Gateway-Rule: drop/other", await IcapClientAsync("-req", "http://other.example/"));
    }

    private static string IsTag(string options)
    {
        var line = options.Split('\n').Select(l => l.Trim()).First(l => l.StartsWith("ISTag:", StringComparison.Ordinal));
        return line["ISTag:".Length..].Trim();
    }
}
