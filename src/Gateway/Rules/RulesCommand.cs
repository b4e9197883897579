using System.Text.Json;
using Gateway.Configuration;

namespace Gateway.Rules;

/// <summary>
/// <c>gateway rules …</c>, offline (no running gateway needed), on the configuration the gateway would read
/// (<c>appsettings.json</c> of the current directory and environment variables, or <c>--config FILE</c>):
/// <list type="bullet">
/// <item><c>gateway rules check [--config FILE]</c>: validates <c>Gateway:Rules</c>; exit 0 when valid, 1 with every
/// error listed (rule id, key, reason) — for CI before deploying a configuration change.</item>
/// <item><c>gateway rules list [--config FILE]</c>: the compiled rule set as JSON (as <c>GET /rules</c>).</item>
/// <item><c>gateway rules explain URL [--method M] [--header "Name: value"]… [--config FILE]</c>: which rules match that
/// request and what each would do, as JSON (as <c>GET /rules/explain</c>).</item>
/// </list>
/// </summary>
internal static class RulesCommand
{
    private const string Usage = "usage: gateway rules check|list [--config FILE]\n       gateway rules explain URL [--method M] [--header \"Name: value\"]... [--config FILE]";
    private static readonly JsonSerializerOptions s_json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

    public static Task<int> RunAsync(string[] args) => Task.FromResult(Run(args, Console.Out, Console.Error));

    internal static int Run(string[] args, TextWriter stdout, TextWriter stderr)
    {
        if (args.Length < 2)
        {
            stderr.WriteLine(Usage);
            return 2;
        }
        var verb = args[1].ToLowerInvariant();
        string? configFile = null;
        string? url = null;
        var method = "GET";
        var headers = new HeaderDictionary();
        for (var i = 2; i < args.Length; i++)
        {
            switch (args[i])
            {
                case "--config" when i + 1 < args.Length:
                    configFile = args[++i];
                    break;
                case "--method" when i + 1 < args.Length:
                    method = args[++i].ToUpperInvariant();
                    break;
                case "--header" when i + 1 < args.Length:
                    var header = args[++i];
                    var colon = header.IndexOf(':');
                    if (colon <= 0)
                    {
                        stderr.WriteLine($"gateway rules: header '{header}' is not 'Name: value'");
                        return 2;
                    }
                    headers.Append(header[..colon].Trim(), header[(colon + 1)..].Trim());
                    break;
                default:
                    if (verb == "explain" && url is null && !args[i].StartsWith("--", StringComparison.Ordinal))
                    {
                        url = args[i];
                        break;
                    }
                    stderr.WriteLine($"gateway rules: unexpected argument '{args[i]}'\n{Usage}");
                    return 2;
            }
        }
        if (configFile is not null && !File.Exists(configFile))
        {
            stderr.WriteLine($"gateway rules: {configFile}: no such file");
            return 2;
        }
        IConfiguration configuration;
        try
        {
            configuration = new ConfigurationBuilder()
                .AddJsonFile(Path.GetFullPath(configFile ?? Path.Combine(Directory.GetCurrentDirectory(), "appsettings.json")), optional: configFile is null)
                .AddEnvironmentVariables()
                .Build();
        }
        catch (Exception ex) when (ex is FormatException or InvalidDataException or IOException)
        {
            stderr.WriteLine($"gateway rules: cannot read the configuration: {ex.Message}");
            return 1;
        }
        var errors = new List<ConfigError>();
        var set = RuleSetBuilder.Build(configuration, errors, DateTimeOffset.UtcNow);
        if (set is null)
        {
            stderr.WriteLine($"gateway rules: invalid rules ({errors.Count} {(errors.Count == 1 ? "error" : "errors")}):");
            foreach (var e in errors)
            {
                stderr.WriteLine($"  - {e.Key}: {e.Reason}");
            }
            return 1;
        }
        switch (verb)
        {
            case "check":
                var rules = set.Rules;
                stdout.WriteLine($"ok: {rules.Count} rules ({rules.Count(r => r.Policy == RulePolicy.Drop)} drop, {rules.Count(r => r.Policy == RulePolicy.NoCache)} nocache, "
                    + $"{rules.Count(r => r.Policy == RulePolicy.Sort)} sort, {rules.Count(r => r.Policy == RulePolicy.Rewrite)} rewrite)");
                return 0;
            case "list":
                stdout.WriteLine(JsonSerializer.Serialize(RulesAdminHandler.SummaryOf(set, null), s_json));
                return 0;
            case "explain":
                if (url is null || !Uri.TryCreate(url, UriKind.Absolute, out var uri) || (uri.Scheme != Uri.UriSchemeHttp && uri.Scheme != Uri.UriSchemeHttps))
                {
                    stderr.WriteLine($"gateway rules explain: '{url}' is not an absolute http:// or https:// URL");
                    return 2;
                }
                stdout.WriteLine(JsonSerializer.Serialize(RulesAdminHandler.ExplainResult(set, uri, method, headers), s_json));
                return 0;
            default:
                stderr.WriteLine(Usage);
                return 2;
        }
    }
}
