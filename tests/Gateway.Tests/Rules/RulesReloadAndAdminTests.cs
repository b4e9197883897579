using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Gateway.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;

namespace Gateway.Tests.Rules;

public sealed class RulesReloadAndAdminTests
{
    private static string Settings(string rules) => $$"""
        {
          "Gateway": { "Rules": {{rules}} }
        }
        """;

    private static async Task WriteAsync(string path, string text)
    {
        // Write then rename, as an editor or a ConfigMap update does, so the watcher never sees half a file.
        var temp = path + ".tmp";
        await File.WriteAllTextAsync(temp, text);
        File.Move(temp, path, overwrite: true);
    }

    private static async Task<T> PollAsync<T>(Func<Task<T>> probe, Func<T, bool> done, string what)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            var value = await probe();
            if (done(value))
            {
                return value;
            }
            if (DateTime.UtcNow > deadline)
            {
                throw new Xunit.Sdk.XunitException("gave up waiting for " + what + "; last value: " + value);
            }
            await Task.Delay(100);
        }
    }

    [Fact]
    public async Task HotReload_AppliesEditedRules_AndKeepsTheLastGoodSetOnABadEdit()
    {
        await using var backend = await TestBackend.StartAsync(c => c.Response.WriteAsync("origin"));
        var root = Directory.CreateTempSubdirectory("gw-rules-reload-").FullName;
        try
        {
            var file = Path.Combine(root, "appsettings.json");
            await WriteAsync(file, Settings("""{ "Drop": { "a": { "Match": { "Path": "/a/*" }, "Status": 410 } } }"""));
            await using var gw = await GatewayHost.StartAsync(RulesConfig.Reverse(backend), contentRoot: root);
            using var client = gw.CreateClient();
            using var admin = gw.CreateAdminClient();

            Assert.Equal(HttpStatusCode.Gone, (await client.GetAsync("/a/1")).StatusCode);
            Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/b/1")).StatusCode);

            // Edit: drop /b instead of /a.
            await WriteAsync(file, Settings("""{ "Drop": { "b": { "Match": { "Path": "/b/*" }, "Status": 410 } } }"""));
            await PollAsync(async () => (await client.GetAsync("/b/1")).StatusCode, s => s == HttpStatusCode.Gone, "the edited rule");
            Assert.Equal(HttpStatusCode.OK, (await client.GetAsync("/a/1")).StatusCode);

            // A file that is not even JSON (an editor saving half-way) changes nothing…
            await File.WriteAllTextAsync(file, """{ "Gateway": { "Rules": { "Drop": { "x": """);
            await Task.Delay(1000); // pacing only: let the watcher see this state before the next one
            Assert.Equal(HttpStatusCode.Gone, (await client.GetAsync("/b/1")).StatusCode);

            // …and a bad edit (broken regex, unknown key) is rejected: the previous set stays, /rules says why.
            await WriteAsync(file, Settings("""{ "Drop": { "c": { "Match": { "Url": "(" }, "Colour": "red" } } }"""));
            var summary = await PollAsync(() => admin.GetFromJsonAsync<JsonElement>("/rules"),
                j => j.GetProperty("lastReload").GetProperty("status").GetString() == "rejected", "the rejected reload");
            var errors = summary.GetProperty("lastReload").GetProperty("errors").EnumerateArray().Select(e => e.GetProperty("key").GetString()).ToArray();
            Assert.Contains("Gateway:Rules:Drop:c:Match:Url", errors);
            Assert.Contains("Gateway:Rules:Drop:c:Colour", errors);
            Assert.Equal(HttpStatusCode.Gone, (await client.GetAsync("/b/1")).StatusCode);
            Assert.Equal("b", summary.GetProperty("rules")[0].GetProperty("id").GetString());

            // Fixed again: applied.
            await WriteAsync(file, Settings("""{ "NoCache": { "all": { "Match": { "Path": "*" } } } }"""));
            await PollAsync(async () => (await client.GetAsync("/b/1")).StatusCode, s => s == HttpStatusCode.OK, "the fixed rules");
            summary = await admin.GetFromJsonAsync<JsonElement>("/rules");
            Assert.Equal("applied", summary.GetProperty("lastReload").GetProperty("status").GetString());
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public async Task OneRule_CanBeOverriddenByAHigherConfigurationSource_LikeAnEnvironmentVariable()
    {
        await using var backend = await TestBackend.StartAsync(c => c.Response.WriteAsync("origin"));
        var root = Directory.CreateTempSubdirectory("gw-rules-override-").FullName;
        try
        {
            await WriteAsync(Path.Combine(root, "appsettings.json"), Settings("""
                { "Drop": { "ads": { "Match": { "Path": "/ads/*" } }, "trk": { "Match": { "Path": "/trk/*" }, "Status": 403 } } }
                """));
            // The in-memory layer is above appsettings.json, as Gateway__Rules__Drop__ads__Enabled=false would be.
            var config = RulesConfig.Reverse(backend, ("Drop:ads:Enabled", "false"), ("Drop:trk:Status", "451"));
            await using var gw = await GatewayHost.StartAsync(config, contentRoot: root);
            using var client = gw.CreateClient();
            Assert.Equal("origin", await (await client.GetAsync("/ads/1")).Content.ReadAsStringAsync());
            Assert.Equal((HttpStatusCode)451, (await client.GetAsync("/trk/1")).StatusCode);
        }
        finally
        {
            Directory.Delete(root, recursive: true);
        }
    }

    [Fact]
    public async Task Explain_ListsMatchingRulesAndWhatEachWouldDo_AndRulesCountsMatches()
    {
        await using var backend = await TestBackend.StartAsync(c => c.Response.WriteAsync("origin"));
        await using var gw = await GatewayHost.StartAsync(RulesConfig.Reverse(backend,
            ("NoCache:mail:Match:Host", "mail.example"),
            ("Sort:mail-archive:Match:Url", "^http://mail\\.example/msg/(\\d+)"),
            ("Sort:mail-archive:Location", "mail/$1.eml"),
            ("Sort:mail-archive:Archive", "yyyy-MM"),
            ("Sort:later:Order", "5"),
            ("Sort:later:Match:Host", "*.example"),
            ("Sort:later:Location", "other"),
            ("Rewrite:ua:Match:Headers:User-Agent", "curl"),
            ("Rewrite:ua:Request:Headers:Set:X-Client", "cli"),
            ("Drop:never:Match:Host", "ads.example")));
        using var admin = gw.CreateAdminClient();

        var explain = await admin.GetFromJsonAsync<JsonElement>("/rules/explain?url=" + Uri.EscapeDataString("http://mail.example/msg/42") + "&method=GET&header=User-Agent:%20curl/8");
        var outcome = explain.GetProperty("outcome");
        Assert.True(outcome.GetProperty("noCache").GetBoolean());
        Assert.Equal("mail/42.eml", outcome.GetProperty("cacheLocation").GetString());
        Assert.Equal("yyyy-MM", outcome.GetProperty("cacheArchive").GetString());
        Assert.Equal(JsonValueKind.Null, outcome.GetProperty("drop").ValueKind);
        var matches = explain.GetProperty("matches").EnumerateArray().ToDictionary(m => m.GetProperty("id").GetString()!, m => m);
        Assert.Equal(["mail", "mail-archive", "later", "ua"], matches.Keys.ToArray());
        Assert.True(matches["mail-archive"].GetProperty("applies").GetBoolean());
        Assert.False(matches["later"].GetProperty("applies").GetBoolean()); // a higher sort rule wins
        Assert.Contains("shadowed", matches["later"].GetProperty("action").GetString());
        Assert.Contains("X-Client", matches["ua"].GetProperty("action").GetString());

        var dropped = await admin.GetFromJsonAsync<JsonElement>("/rules/explain?url=" + Uri.EscapeDataString("http://ads.example/x.png"));
        Assert.Equal("never", dropped.GetProperty("outcome").GetProperty("drop").GetString());
        Assert.Equal("image", dropped.GetProperty("outcome").GetProperty("placeholder").GetString());

        var bad = await admin.GetAsync("/rules/explain?url=not-a-url");
        Assert.Equal(HttpStatusCode.BadRequest, bad.StatusCode);

        // Counters: two proxied requests that match "mail", none explained counts.
        using var client = gw.CreateClient();
        for (var i = 0; i < 2; i++)
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, "/msg/7") { Headers = { Host = "mail.example" } };
            using var r = await client.SendAsync(request);
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        }
        var summary = await admin.GetFromJsonAsync<JsonElement>("/rules");
        var rules = summary.GetProperty("rules").EnumerateArray().ToDictionary(r => r.GetProperty("id").GetString()!, r => r);
        Assert.Equal(2, rules["mail"].GetProperty("matches").GetInt64());
        Assert.Equal(2, rules["mail-archive"].GetProperty("matches").GetInt64());
        Assert.Equal(0, rules["later"].GetProperty("matches").GetInt64());
        Assert.Equal(0, rules["never"].GetProperty("matches").GetInt64());
        Assert.Equal("host mail.example", rules["mail"].GetProperty("index").GetString());
        Assert.Equal("domain example", rules["later"].GetProperty("index").GetString());
        Assert.Equal("host mail.example (from Url)", rules["mail-archive"].GetProperty("index").GetString());
    }
}
