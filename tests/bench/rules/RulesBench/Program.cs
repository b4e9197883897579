using System.Diagnostics;
using Gateway.Configuration;
using Gateway.Rules;

// Cost of evaluating the request phase of the rules for one request: 0 rules, 1,000 host and path rules none of
// which matches, and the same with one matching. Prints nanoseconds per evaluation and bytes allocated per evaluation.
var scenarios = new[] { ("none", 0, false), ("miss", 1000, false), ("hit", 1000, true) };
var headers = new HeaderDictionary { ["User-Agent"] = "bench/1.0", ["Accept"] = "*/*" };
var url = new Uri("http://www.example.com/bench/item?id=42");
const int iterations = 2_000_000;
foreach (var (name, count, hit) in scenarios)
{
    var set = Build(count, hit);
    var facts = new RequestFacts("GET", url, headers);
    for (var i = 0; i < 200_000; i++) set.Evaluate(facts); // warm up / tier up
    var best = double.MaxValue;
    long allocated = 0;
    var matched = false;
    for (var round = 0; round < 5; round++)
    {
        var before = GC.GetAllocatedBytesForCurrentThread();
        var sw = Stopwatch.StartNew();
        for (var i = 0; i < iterations; i++)
        {
            matched = set.Evaluate(facts) is { AnyApplied: true };
        }
        sw.Stop();
        allocated = (GC.GetAllocatedBytesForCurrentThread() - before) / iterations;
        best = Math.Min(best, sw.Elapsed.TotalNanoseconds / iterations);
    }
    Console.WriteLine($"{name,-5} rules={set.Rules.Count,-5} matched={matched,-5} ns/evaluation={best,8:F1} bytes/evaluation={allocated}");
}

static RuleSet Build(int count, bool hit)
{
    var items = new Dictionary<string, string?>();
    for (var i = 0; i < count / 2; i++)
    {
        items[$"Gateway:Rules:Drop:host{i}:Match:Host"] = i % 2 == 1 ? $"h{i}.example" : $"*.d{i}.example";
        items[$"Gateway:Rules:Drop:path{i}:Match:Path"] = $"/p{i}/*";
    }
    if (hit)
    {
        items.Remove($"Gateway:Rules:Drop:path{count / 2 - 1}:Match:Path");
        items["Gateway:Rules:Rewrite:bench:Match:Path"] = "/bench/*";
        items["Gateway:Rules:Rewrite:bench:Request:Headers:Set:X-Bench"] = "1";
    }
    var configuration = new ConfigurationBuilder().AddInMemoryCollection(items).Build();
    var errors = new List<ConfigError>();
    return RuleSetBuilder.Build(configuration, errors, DateTimeOffset.UtcNow) ?? throw new InvalidOperationException(string.Join("; ", errors));
}
