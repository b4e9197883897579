using System.Text;
using System.Text.RegularExpressions;
using Gateway.Configuration;
using Gateway.Rules;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Configuration;

namespace Gateway.Tests.Rules;

/// <summary>Unit tests of the engine: globs, the index, placement safety, placeholders and the streaming replacer.</summary>
public sealed class RuleEngineTests
{
    private static RuleSet Build(params (string Key, string Value)[] items)
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(items.Select(i => new KeyValuePair<string, string?>("Gateway:Rules:" + i.Key, i.Value))).Build();
        var errors = new List<ConfigError>();
        var set = RuleSetBuilder.Build(config, errors, DateTimeOffset.UtcNow);
        Assert.True(set is not null, string.Join("; ", errors));
        return set!;
    }

    private static RuleDecision? Evaluate(RuleSet set, string url, string method = "GET", params (string, string)[] headers)
    {
        var dictionary = new HeaderDictionary();
        foreach (var (name, value) in headers)
        {
            dictionary.Append(name, value);
        }
        return set.Evaluate(new RequestFacts(method, new Uri(url), dictionary));
    }

    [Theory]
    [InlineData("*.ads.example", "x.ads.example", true)]
    [InlineData("*.ads.example", "a.b.ads.example", true)]
    [InlineData("*.ads.example", "ads.example", false)]
    [InlineData("*.ads.example", "badads.example", false)]
    [InlineData("WWW.Example", "www.example", true)]
    [InlineData("ad?.example", "ad1.example", true)]
    [InlineData("ad*.example", "ad.tracker.example", true)]
    [InlineData("ad*.example", "bad.example", false)]
    public void HostGlob(string pattern, string host, bool expected) => Assert.Equal(expected, Glob.Host(pattern).IsMatch(host));

    [Theory]
    [InlineData("/videos/*", "/videos/a/b.mp4", true)]
    [InlineData("/videos/*", "/Videos/a", false)]
    [InlineData("*.js", "/a/b/c.js", true)]
    [InlineData("/a/*/c", "/a/x/y/c", true)]
    [InlineData("/exact", "/exact", true)]
    [InlineData("/exact", "/exact/", false)]
    public void PathGlob(string pattern, string path, bool expected) => Assert.Equal(expected, Glob.PathGlob(pattern).IsMatch(path));

    [Fact]
    public void Index_FindsTheOneMatchingRuleAmongAThousand_AndScansOnlyUnindexedRules()
    {
        var items = new List<(string, string)>();
        for (var i = 0; i < 500; i++)
        {
            items.Add(($"Drop:host{i}:Match:Host", $"h{i}.example"));
            items.Add(($"Drop:path{i}:Match:Path", $"/p{i}/*"));
        }
        items.Add(("NoCache:domain:Match:Host", "*.cdn.example"));
        items.Add(("NoCache:glob:Match:Host", "img*.example"));
        var set = Build([.. items]);
        Assert.Equal(1002, set.Rules.Count);
        Assert.Equal("scan", set.Rules.Single(r => r.Id == "glob").Index);
        Assert.Equal("domain cdn.example", set.Rules.Single(r => r.Id == "domain").Index);
        Assert.Equal("path /p7", set.Rules.Single(r => r.Id == "path7").Index);

        Assert.Null(Evaluate(set, "http://nothing.example/nothing"));
        Assert.Equal("host321", Evaluate(set, "http://h321.example/x")!.Drop!.Id);
        Assert.Equal("path42", Evaluate(set, "http://any.example/p42/file")!.Drop!.Id);
        Assert.Null(Evaluate(set, "http://any.example/p42"));  // "/p42/*" needs the slash
        Assert.Equal("domain", Evaluate(set, "http://a.b.cdn.example/")!.NoCache!.Id);
        Assert.Equal("glob", Evaluate(set, "http://img7.example/")!.NoCache!.Id);
    }

    [Theory]
    [InlineData("^https?://mail\\.example/", "mail.example")]
    [InlineData("^http://Video\\.Example:8080/watch", "video.example")]
    [InlineData("^https://a-b\\.example$", "a-b.example")]
    [InlineData("^https?://mail\\.example", null)]          // prefix of mail.example.evil
    [InlineData("^https?://mail\\.example/?", null)]
    [InlineData("^https?://mai.\\.example/", null)]
    [InlineData("^https?://(www\\.)?example/", null)]
    [InlineData("^https?://a\\.example/|^https?://b\\.example/", null)]
    [InlineData("(?i)^https?://a\\.example/", null)]
    [InlineData("mail\\.example/", null)]
    [InlineData("^https?://[a-z]+\\.example/", null)]
    [InlineData("^https?://ab*\\.example/", null)]
    public void UrlRegex_IsIndexedByHost_OnlyWhenItsHostIsLiteral(string pattern, string? host)
        => Assert.Equal(host, RuleSet.UrlHostHint(pattern));

    [Fact]
    public void UrlRules_IndexedByHost_StillMatchExactlyAsTheRegexSays()
    {
        var set = Build(
            ("NoCache:mail:Match:Url", "^https?://mail\\.example/"),
            ("NoCache:loose:Match:Url", "^https?://mail\\.example"));
        Assert.Equal("host mail.example (from Url)", set.Rules.Single(r => r.Id == "mail").Index);
        Assert.Equal("scan", set.Rules.Single(r => r.Id == "loose").Index);
        Assert.Equal("loose", Evaluate(set, "http://mail.example/inbox")!.NoCache!.Id);
        var evil = Evaluate(set, "http://mail.example.evil/inbox");
        Assert.Equal("loose", evil!.NoCache!.Id);
        var set2 = Build(("NoCache:mail:Match:Url", "^https?://mail\\.example/"));
        Assert.Null(Evaluate(set2, "http://mail.example.evil/inbox"));
        Assert.Null(Evaluate(set2, "http://www.example/inbox"));
        Assert.Equal("mail", Evaluate(set2, "https://MAIL.example/x")!.NoCache!.Id);
    }

    [Fact]
    public void MatchConnect_FindsHostDropRules_ForTheTunnel()
    {
        var config = new ConfigurationBuilder().AddInMemoryCollection(new Dictionary<string, string?>
        {
            ["Gateway:Rules:Drop:ads:Match:Host"] = "*.ads.example",
            ["Gateway:Rules:Drop:page:Match:Host"] = "www.example",
            ["Gateway:Rules:Drop:page:Match:Path"] = "/ads/*",
        }).Build();
        using var store = new RuleStore(config, Microsoft.Extensions.Logging.Abstractions.NullLogger<RuleStore>.Instance, TimeProvider.System);
        Assert.Equal("ads", store.MatchConnect("x.ads.example", 443)!.Id);
        Assert.Null(store.MatchConnect("www.example", 443)); // a path condition cannot hold for a tunnel
        Assert.Null(store.MatchConnect("safe.example", 443));
        Assert.Equal(1, store.Current.Rules.Single(r => r.Id == "ads").Counter.Matches);
    }

    [Fact]
    public void Evaluate_AppliesAllConditions_AndTheFirstRuleByOrderWins()
    {
        var set = Build(
            ("Drop:b:Match:Host", "x.example"),
            ("Drop:b:Match:Methods", "POST"),
            ("Drop:a:Match:Host", "x.example"),
            ("Drop:a:Match:Headers:User-Agent", "(?i)bot"),
            ("Drop:a:Order", "-1"),
            ("Drop:c:Match:Host", "x.example"),
            ("Drop:c:Match:Port", "8080"),
            ("Drop:c:Match:Scheme", "https"));
        Assert.Null(Evaluate(set, "http://x.example/"));
        Assert.Equal("b", Evaluate(set, "http://x.example/", "POST")!.Drop!.Id);
        Assert.Equal("a", Evaluate(set, "http://x.example/", "POST", ("User-Agent", "SomeBot/1"))!.Drop!.Id);
        Assert.Null(Evaluate(set, "http://x.example:8080/"));
        Assert.Equal("c", Evaluate(set, "https://x.example:8080/")!.Drop!.Id);
    }

    [Fact]
    public void RegexTimeout_TreatsTheRuleAsNotMatching()
    {
        var set = Build(
            ("RegexTimeout", "00:00:00.001"),
            ("Drop:slow:Match:Url", "(x+x+)+y"));
        var decision = Evaluate(set, "http://h/" + new string('x', 60));
        Assert.NotNull(decision);
        Assert.Null(decision!.Drop);
        Assert.Equal("slow", Assert.Single(decision.TimedOut!).Id);
    }

    [Theory]
    [InlineData("videos/abc.mp4", true)]
    [InlineData("a/b/c", true)]
    [InlineData("..", false)]
    [InlineData("a/../b", false)]
    [InlineData("a/%2e%2e/b", false)]
    [InlineData("a/%2E%2e", false)]
    [InlineData("a%2f..", false)]
    [InlineData("/abs", false)]
    [InlineData("\\\\server\\share", false)]
    [InlineData("c:/windows", false)]
    [InlineData("a//b", false)]
    [InlineData("a/", false)]
    [InlineData("./a", false)]
    [InlineData("a\0b", false)]
    public void SortLocation_Safety(string location, bool safe) => Assert.Equal(safe, SortPlacement.CheckLocation(location) is null);

    [Theory]
    [InlineData("/x", "image", null, "Image")]
    [InlineData("/x", "script", null, "Script")]
    [InlineData("/x", "style", null, "Style")]
    [InlineData("/x", "document", null, "Document")]
    [InlineData("/x", "font", null, "Empty")]
    [InlineData("/x.gif", null, null, "Image")]
    [InlineData("/x.mjs", null, null, "Script")]
    [InlineData("/x.css", null, null, "Style")]
    [InlineData("/x", null, "image/avif,image/webp,*/*", "Image")]
    [InlineData("/x", null, "text/html,*/*", "Document")]
    [InlineData("/x", null, "application/json", "Empty")]
    [InlineData("/x", null, null, "Empty")]
    public void Placeholder_FitsWhatTheClientAskedFor(string path, string? dest, string? accept, string expected)
    {
        var headers = new HeaderDictionary();
        if (dest is not null) headers["Sec-Fetch-Dest"] = dest;
        if (accept is not null) headers["Accept"] = accept;
        Assert.Equal(expected, DropPlaceholder.Classify("GET", new Uri("http://h" + path), headers).ToString());
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    [InlineData(64)]
    [InlineData(5000)]
    public void StreamingReplacer_FindsMatchesAcrossEveryChunkBoundary(int chunk)
    {
        var input = string.Concat(Enumerable.Range(0, 300).Select(i => $"<a>{i}<script>x{i}</script>")) + "tail";
        var expected = Regex.Replace(input, "<script>.*?</script>", "-");
        var replacer = new StreamingReplacer(new Replacement(new Regex("<script>.*?</script>"), "-"), window: 32);
        var output = new StringBuilder();
        for (var i = 0; i < input.Length; i += chunk)
        {
            replacer.Process(new StringBuilder(input.Substring(i, Math.Min(chunk, input.Length - i))), final: false, output);
        }
        replacer.Process(new StringBuilder(), final: true, output);
        Assert.Equal(expected, output.ToString());
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(100000)]
    public async Task TextRewriteStream_DecodesMultiByteCharactersSplitAcrossReads(int readSize)
    {
        var text = string.Concat(Enumerable.Repeat("naïve café ☕ 𝄞 — ", 2000));
        var bytes = Encoding.UTF8.GetBytes(text);
        var source = new TrickleStream(bytes, readSize);
        var stream = new TextRewriteStream(source, new UTF8Encoding(false), "", [new Replacement(new Regex("café"), "thé")], 16);
        var result = new MemoryStream();
        await stream.CopyToAsync(result);
        Assert.Equal(text.Replace("café", "thé"), Encoding.UTF8.GetString(result.ToArray()));
    }

    [Theory]
    [InlineData("text/html", 65001)]
    [InlineData("text/html; charset=ISO-8859-1", 28591)]
    [InlineData("text/html; charset=\"windows-1252\"", 1252)]
    [InlineData("text/plain; charset=shift_jis", 932)]
    public void Charset_FromContentType(string contentType, int codePage)
    {
        System.Text.Encoding.RegisterProvider(System.Text.CodePagesEncodingProvider.Instance);
        Assert.Equal(codePage, TextCodec.EncodingOf(contentType)!.CodePage);
    }

    [Fact]
    public void Charset_Unknown_IsNull() => Assert.Null(TextCodec.EncodingOf("text/html; charset=x-klingon"));

    private sealed class TrickleStream(byte[] data, int max) : MemoryStream(data)
    {
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
            => base.ReadAsync(buffer[..Math.Min(max, buffer.Length)], cancellationToken);
    }
}
