using Gateway.Configuration;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Rules;

/// <summary>Every kind of configuration error, reported all at once with rule id and key.</summary>
public sealed class RulesValidationTests
{
    /// <summary>(configuration below Gateway:Rules as "Key=Value" items separated by '¦', key the error names, text in the reason)</summary>
    public static readonly TheoryData<string, string, string> Cases = new()
    {
        { "Block:x:Match:Host=a.example", "Gateway:Rules:Block", "unknown key" },
        { "Drop:a:Match:Path=/x¦Drop:a:Colour=red", "Gateway:Rules:Drop:a:Colour", "unknown key" },
        { "Drop:a2:Match:Domain=x", "Gateway:Rules:Drop:a2:Match:Domain", "unknown key" },
        { "NoCache:b:Order=1", "Gateway:Rules:NoCache:b:Match", "needs a Match" },
        { "NoCache:c:Match:Url=(unclosed", "Gateway:Rules:NoCache:c:Match:Url", "not a valid regex" },
        { "Drop:d:Match:Host=bad host/", "Gateway:Rules:Drop:d:Match:Host", "not a host glob" },
        { "Drop:e:Match:Path=no-slash/*", "Gateway:Rules:Drop:e:Match:Path", "must start with '/'" },
        { "Drop:f:Match:Port=70000", "Gateway:Rules:Drop:f:Match:Port", "not a port" },
        { "Drop:g:Match:Scheme=ftp", "Gateway:Rules:Drop:g:Match:Scheme", "not http or https" },
        { "Drop:h:Match:Methods=GE T", "Gateway:Rules:Drop:h:Match:Methods", "not an HTTP method" },
        { "Drop:i:Match:Headers:User-Agent=[", "Gateway:Rules:Drop:i:Match:Headers:User-Agent", "not a valid regex" },
        { "Drop:j:Match:Status=200", "Gateway:Rules:Drop:j:Match:Status", "only Rewrite rules" },
        { "Rewrite:k:Match:Status=2xy¦Rewrite:k:Response:Headers:Set:X-A=1", "Gateway:Rules:Rewrite:k:Match:Status", "not a status" },
        { "Rewrite:l:Match:ContentType=html¦Rewrite:l:Response:Headers:Set:X-A=1", "Gateway:Rules:Rewrite:l:Match:ContentType", "not a media type glob" },
        { "Drop:m:Match:Path=/x¦Drop:m:Status=99", "Gateway:Rules:Drop:m:Status", "not a final HTTP status" },
        { "Sort:n:Match:Path=/x¦Sort:n:Location=../outside", "Gateway:Rules:Sort:n:Location", "escapes the cache directory" },
        { "Sort:n2:Match:Url=v=(.*)¦Sort:n2:Location=a/$1/../../..", "Gateway:Rules:Sort:n2:Location", "escapes the cache directory" },
        { "Sort:o:Match:Path=/x¦Sort:o:Location=/etc/passwd", "Gateway:Rules:Sort:o:Location", "is absolute" },
        { "Sort:p:Match:Path=/x¦Sort:p:Location=videos/$1", "Gateway:Rules:Sort:p:Location", "no Match:Url regex" },
        { "Sort:p2:Match:Url=v=(.*)¦Sort:p2:Location=videos/$2", "Gateway:Rules:Sort:p2:Location", "does not have" },
        { "Sort:q:Match:Path=/x¦Sort:q:Archive='fixed'", "Gateway:Rules:Sort:q:Archive", "no date field" },
        { "Sort:r:Match:Path=/x", "Gateway:Rules:Sort:r", "needs Location, Archive or Key" },
        { "Sort:z:Match:Path=/x¦Sort:z:Key:Shuffle=true", "Gateway:Rules:Sort:z:Key:Shuffle", "unknown key" },
        { "Rewrite:s:Match:Path=/x", "Gateway:Rules:Rewrite:s", "needs Request or Response" },
        { "Rewrite:t:Match:Path=/x¦Rewrite:t:Response:Body:0:Pattern=x*", "Gateway:Rules:Rewrite:t:Response:Body:0:Pattern", "matches the empty string" },
        { "Rewrite:u:Match:Path=/x¦Rewrite:u:Request:Headers:Set:Content-Length=5", "Gateway:Rules:Rewrite:u:Request:Headers:Set:Content-Length", "managed by the gateway" },
        { "Rewrite:v:Match:Path=/x¦Rewrite:v:Response:Body:0:Replacement=y", "Gateway:Rules:Rewrite:v:Response:Body:0:Pattern", "is required" },
        { "Rewrite:w:Match:Path=/x¦Rewrite:w:Response:Body:0:Pattern=(a)b¦Rewrite:w:Response:Body:0:Replacement=$2", "Gateway:Rules:Rewrite:w:Response:Body:0:Replacement", "does not have" },
        { "Rewrite:aa:Match:Path=/x¦Rewrite:aa:Request:Headers:Set:X-Evil=a\r\nb", "Gateway:Rules:Rewrite:aa:Request:Headers:Set:X-Evil", "CR, LF" },
        { "Rewrite:ab:Match:Status=200¦Rewrite:ab:Request:Url:0:Pattern=x", "Gateway:Rules:Rewrite:ab:Request", "only have a Response part" },
        { "Rewrite:ad:Match:Path=/x¦Rewrite:ad:Response:Headers:Colour=red", "Gateway:Rules:Rewrite:ad:Response:Headers:Colour", "unknown key" },
        { "RegexTimeout=-00:00:01", "Gateway:Rules:RegexTimeout", "not a positive duration" },
        { "MaxMatchLength=0", "Gateway:Rules:MaxMatchLength", "not a positive integer" },
        { "MaxBodySize=lots", "Gateway:Rules:MaxBodySize", "not a size" },
        { "Drop:x:Match:Path=/x¦Drop:x:Enabled=maybe", "Gateway:Rules:Drop:x:Enabled", "not true or false" },
        { "Drop:y:Match:Path=/x¦Drop:y:Order=first", "Gateway:Rules:Drop:y:Order", "not an integer" },
        { "Drop:ac=everything", "Gateway:Rules:Drop:ac", "is not a rule" },
    };

    private static Dictionary<string, string?> Parse(string items)
    {
        var config = new Dictionary<string, string?>();
        foreach (var item in items.Split('¦'))
        {
            var eq = item.IndexOf('=');
            config["Gateway:Rules:" + item[..eq]] = item[(eq + 1)..].Replace("\\r", "\r").Replace("\\n", "\n");
        }
        return config;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Rejects_EachErrorKind_NamingRuleAndKey(string items, string errorKey, string reason)
    {
        var ex = Assert.Throws<GatewayConfigurationException>(() => GatewayHost.Build(Parse(items)));
        var error = Assert.Single(ex.Errors);
        Assert.Equal(errorKey, error.Key);
        Assert.Contains(reason, error.Reason);
    }

    [Fact]
    public void Rejects_AllErrorsAtOnce()
    {
        var config = new Dictionary<string, string?>();
        foreach (var row in Cases)
        {
            foreach (var kv in Parse((string)row[0]))
            {
                config[kv.Key] = kv.Value;
            }
        }
        var ex = Assert.Throws<GatewayConfigurationException>(() => GatewayHost.Build(config));
        Assert.Equal(Cases.Count(), ex.Errors.Count);
        foreach (var row in Cases)
        {
            Assert.Contains(ex.Errors, e => e.Key == (string)row[1] && e.Reason.Contains((string)row[2]));
        }
    }

    [Fact]
    public void Accepts_TheDocumentedExample()
    {
        var config = new Dictionary<string, string?>
        {
            ["Gateway:Rules:RegexTimeout"] = "00:00:00.250",
            ["Gateway:Rules:Drop:ads:Match:Host"] = "*.ads.example",
            ["Gateway:Rules:NoCache:mail:Match:Url"] = "^https?://mail\\.example/",
            ["Gateway:Rules:Sort:videos:Match:Url"] = "^https?://video\\.example/watch\\?v=([^&]+)",
            ["Gateway:Rules:Sort:videos:Location"] = "videos/$1.mp4",
            ["Gateway:Rules:Sort:videos:Archive"] = "yyyy/MM/dd",
            ["Gateway:Rules:Rewrite:no-scripts:Match:Host"] = "www.example",
            ["Gateway:Rules:Rewrite:no-scripts:Match:ContentType"] = "text/html",
            ["Gateway:Rules:Rewrite:no-scripts:Response:Body:0:Pattern"] = "<script.*?</script>",
            ["Gateway:Rules:Rewrite:no-scripts:Response:Body:0:Replacement"] = "",
            ["Gateway:Rules:Rewrite:no-scripts:Response:Headers:Set:X-Filtered"] = "1",
        };
        using var app = GatewayHost.Build(config);
        var store = (Gateway.Rules.RuleStore)app.Services.GetService(typeof(Gateway.Rules.RuleStore))!;
        Assert.Equal(4, store.Current.Rules.Count);
    }
}
