using System.Text.Json;
using Gateway.Rules;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Rules;

/// <summary><c>gateway rules check|list|explain</c>, offline on a configuration file.</summary>
public sealed class RulesCommandTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("gw-rules-cmd-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    private string Write(string rules)
    {
        var file = Path.Combine(_root, "appsettings.json");
        File.WriteAllText(file, "{ \"Gateway\": { \"Rules\": " + rules + " } }");
        return file;
    }

    private static (int Code, string Out, string Err) Run(params string[] args)
    {
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        var code = RulesCommand.Run(["rules", .. args], stdout, stderr);
        return (code, stdout.ToString(), stderr.ToString());
    }

    [Fact]
    public void Check_ValidRules_Exits0()
    {
        var file = Write("""{ "Drop": { "ads": { "Match": { "Host": "*.ads.example" } } }, "NoCache": { "m": { "Match": { "Path": "/m/*" } } } }""");
        var (code, stdout, _) = Run("check", "--config", file);
        Assert.Equal(0, code);
        Assert.Contains("ok: 2 rules (1 drop, 1 nocache, 0 sort, 0 rewrite)", stdout);
    }

    [Fact]
    public void Check_InvalidRules_Exits1_ListingEveryError()
    {
        var file = Write("""{ "Drop": { "a": { "Match": { "Url": "(" } }, "b": { "Colour": "red", "Match": { "Path": "/b" } } } }""");
        var (code, _, stderr) = Run("check", "--config", file);
        Assert.Equal(1, code);
        Assert.Contains("2 errors", stderr);
        Assert.Contains("Gateway:Rules:Drop:a:Match:Url", stderr);
        Assert.Contains("Gateway:Rules:Drop:b:Colour", stderr);
    }

    [Fact]
    public void Explain_PrintsWhatTheRulesWouldDo()
    {
        var file = Write("""{ "Sort": { "v": { "Match": { "Url": "^https?://video\\.example/watch\\?v=([^&]+)" }, "Location": "videos/$1" } } }""");
        var (code, stdout, stderr) = Run("explain", "http://video.example/watch?v=xyz", "--method", "get", "--config", file);
        Assert.True(code == 0, stderr);
        var json = JsonDocument.Parse(stdout).RootElement;
        Assert.Equal("GET", json.GetProperty("method").GetString());
        Assert.Equal("videos/xyz", json.GetProperty("outcome").GetProperty("cacheLocation").GetString());
        Assert.Equal(2, Run("explain", "not-a-url", "--config", file).Code);
    }

    [Fact]
    public async Task TheGatewayBinary_RunsTheRulesCommand()
    {
        Write("""{ "Drop": { "a": { "Match": { "Port": "99999" } } } }""");
        await using var process = GatewayProcess.Start(_root, new Dictionary<string, string?>(), "rules", "check");
        Assert.Equal(1, await process.WaitForExitAsync(TimeSpan.FromSeconds(60)));
        Assert.Contains("Gateway:Rules:Drop:a:Match:Port", process.Stderr);
    }
}
