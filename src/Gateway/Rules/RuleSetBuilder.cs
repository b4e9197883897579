using System.Globalization;
using System.Text.RegularExpressions;
using Gateway.Configuration;

namespace Gateway.Rules;

/// <summary>Settings of the rules engine itself (<c>Gateway:Rules:*</c> besides the policies).</summary>
internal sealed record RulesSettings
{
    public static readonly RulesSettings Default = new();

    /// <summary>Match timeout of every rule regex (<c>RegexTimeout</c>, default 100 ms).</summary>
    public TimeSpan RegexTimeout { get; init; } = TimeSpan.FromMilliseconds(100);

    /// <summary>Largest request body a rewrite reads (<c>MaxBodySize</c>, default 1 MiB); bigger ones pass unchanged.</summary>
    public long MaxBodySize { get; init; } = 1 << 20;

    /// <summary>Longest response-body match across chunk boundaries (<c>MaxMatchLength</c>, default 4096 characters).</summary>
    public int MaxMatchLength { get; init; } = 4096;

    /// <summary>Rewritten responses whose origin length is at most this are buffered to send an exact Content-Length
    /// (<c>BufferedRewriteLimit</c>, default 64 KiB); bigger or unknown ones stream chunked.</summary>
    public long BufferedRewriteLimit { get; init; } = 64 << 10;
}

/// <summary>
/// Reads <c>Gateway:Rules</c> into a <see cref="RuleSet"/>, collecting every error (rule id, key, reason) instead of
/// stopping at the first. Unknown keys at any level are errors. One Read… method per section kind, with the key names
/// as constants.
/// </summary>
internal sealed class RuleSetBuilder
{
    public const string SectionName = "Gateway:Rules";

    private static readonly string[] s_settingKeys = ["RegexTimeout", "MaxBodySize", "MaxMatchLength", "BufferedRewriteLimit"];
    private static readonly string[] s_policyKeys = ["Drop", "NoCache", "Sort", "Rewrite"];
    private static readonly string[] s_commonKeys = ["Match", "Order", "Enabled"];
    private static readonly string[] s_matchKeys = ["Scheme", "Host", "Port", "Path", "Url", "Methods", "Headers", "Status", "ContentType"];
    private static readonly string[] s_dropKeys = [.. s_commonKeys, "Status", "Body", "ContentType"];
    private static readonly string[] s_sortKeys = [.. s_commonKeys, "Location", "Archive", "Key"];
    private static readonly string[] s_keyKeys = ["Template", "DropQuery", "SortQuery", "IgnoreQuery"];
    private static readonly string[] s_rewriteKeys = [.. s_commonKeys, "Request", "Response"];
    private static readonly string[] s_requestKeys = ["Url", "Headers", "Body"];
    private static readonly string[] s_responseKeys = ["Headers", "Body"];
    private static readonly string[] s_headerEditKeys = ["Set", "Append", "Remove"];
    private static readonly string[] s_replacementKeys = ["Pattern", "Replacement"];
    private static readonly string[] s_requestForbidden = ["Host", "Content-Length", "Transfer-Encoding", "Connection"];
    private static readonly string[] s_responseForbidden = ["Content-Length", "Transfer-Encoding", "Content-Encoding", "Connection"];

    private readonly List<ConfigError> _errors;
    private readonly Func<RulePolicy, string, RuleCounter> _counters;
    private RulesSettings _settings = RulesSettings.Default;

    private RuleSetBuilder(List<ConfigError> errors, Func<RulePolicy, string, RuleCounter> counters)
    {
        _errors = errors;
        _counters = counters;
    }

    /// <summary>Builds the rule set of <paramref name="configuration"/>; null (and <paramref name="errors"/> filled) when invalid.</summary>
    public static RuleSet? Build(IConfiguration configuration, List<ConfigError> errors, DateTimeOffset now, Func<RulePolicy, string, RuleCounter>? counters = null)
    {
        var before = errors.Count;
        var builder = new RuleSetBuilder(errors, counters ?? ((_, _) => new RuleCounter()));
        var rules = builder.Read(configuration.GetSection(SectionName));
        return errors.Count > before ? null : new RuleSet(rules, builder._settings, now);
    }

    private List<Rule> Read(IConfigurationSection section)
    {
        ConfigChecks.UnknownKeys(section, _errors, [.. s_settingKeys, .. s_policyKeys]);
        ConfigChecks.PositiveTimeSpan(section, "RegexTimeout", _errors);
        ConfigChecks.Size(section, "MaxBodySize", _errors);
        ConfigChecks.PositiveInt(section, "MaxMatchLength", _errors, max: 1 << 20);
        ConfigChecks.Size(section, "BufferedRewriteLimit", _errors);
        var defaults = RulesSettings.Default;
        _settings = new RulesSettings
        {
            RegexTimeout = TimeSpan.TryParse(section["RegexTimeout"], CultureInfo.InvariantCulture, out var t) && t > TimeSpan.Zero ? t : defaults.RegexTimeout,
            MaxBodySize = ConfigChecks.TryParseSize(section["MaxBodySize"], out var mb) ? mb : defaults.MaxBodySize,
            MaxMatchLength = int.TryParse(section["MaxMatchLength"], CultureInfo.InvariantCulture, out var ml) && ml > 0 && ml <= 1 << 20 ? ml : defaults.MaxMatchLength,
            BufferedRewriteLimit = ConfigChecks.TryParseSize(section["BufferedRewriteLimit"], out var bl) ? bl : defaults.BufferedRewriteLimit,
        };

        var rules = new List<Rule>();
        foreach (var policy in Enum.GetValues<RulePolicy>())
        {
            var policySection = section.GetSection(policy.ToString());
            if (policySection.Value is { Length: > 0 } scalar)
            {
                Error(policySection, $"'{scalar}' is not a dictionary of rules keyed by id");
                continue;
            }
            foreach (var ruleSection in policySection.GetChildren())
            {
                var rule = ReadRule(policy, ruleSection);
                if (rule is not null)
                {
                    rules.Add(rule);
                }
            }
        }
        return rules;
    }

    private Rule? ReadRule(RulePolicy policy, IConfigurationSection section)
    {
        var id = section.Key;
        var start = _errors.Count;
        string[] known = policy switch
        {
            RulePolicy.Drop => s_dropKeys,
            RulePolicy.Sort => s_sortKeys,
            RulePolicy.Rewrite => s_rewriteKeys,
            _ => s_commonKeys,
        };
        if (section.Value is { Length: > 0 } scalar)
        {
            Error(section, $"'{scalar}' is not a rule (an object with Match and the {policy} settings)");
            return null;
        }
        ConfigChecks.UnknownKeys(section, _errors, known);
        ConfigChecks.Bool(section, "Enabled", _errors);
        var order = 0;
        if (section["Order"] is { } orderText && !int.TryParse(orderText, NumberStyles.Integer, CultureInfo.InvariantCulture, out order))
        {
            Error(section.GetSection("Order"), $"'{orderText}' is not an integer");
        }
        var match = ReadMatch(section.GetSection("Match"), allowResponse: policy == RulePolicy.Rewrite, policy);
        if (_errors.Count > start || match is null)
        {
            return null;
        }
        if (section["Enabled"] is { } enabled && !bool.Parse(enabled))
        {
            return null;
        }
        var counter = _counters(policy, id);
        return policy switch
        {
            RulePolicy.Drop => ReadDrop(section, id, order, match, counter),
            RulePolicy.NoCache => new NoCacheRule(id, order, match, counter),
            RulePolicy.Sort => ReadSort(section, id, order, match, counter),
            _ => ReadRewrite(section, id, order, match, counter),
        };
    }

    private RuleMatch? ReadMatch(IConfigurationSection section, bool allowResponse, RulePolicy policy)
    {
        if (!section.Exists())
        {
            Error(section, "a rule needs a Match with at least one of: " + string.Join(", ", s_matchKeys) + " (use Path \"*\" to match everything)");
            return null;
        }
        if (section.Value is not null)
        {
            Error(section, "Match must be an object (e.g. { \"Host\": \"*.example\" })");
            return null;
        }
        ConfigChecks.UnknownKeys(section, _errors, s_matchKeys);
        var start = _errors.Count;

        string? scheme = null;
        if (section["Scheme"] is { } s)
        {
            if (s.Equals("http", StringComparison.OrdinalIgnoreCase) || s.Equals("https", StringComparison.OrdinalIgnoreCase))
            {
                scheme = s.ToLowerInvariant();
            }
            else
            {
                Error(section.GetSection("Scheme"), $"'{s}' is not http or https");
            }
        }
        Glob? host = null;
        if (section["Host"] is { } h)
        {
            if (Glob.CheckHost(h) is { } why) Error(section.GetSection("Host"), why);
            else host = Glob.Host(h);
        }
        int? port = null;
        if (section["Port"] is { } p)
        {
            if (int.TryParse(p, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) && n is > 0 and <= 65535) port = n;
            else Error(section.GetSection("Port"), $"'{p}' is not a port (1-65535)");
        }
        Glob? path = null;
        if (section["Path"] is { } pa)
        {
            if (Glob.CheckPath(pa) is { } why) Error(section.GetSection("Path"), why);
            else path = Glob.PathGlob(pa);
        }
        var url = section["Url"] is not null ? CompileRegex(section.GetSection("Url"), RegexOptions.None) : null;
        string[]? methods = null;
        var methodsSection = section.GetSection("Methods");
        if (methodsSection.Exists())
        {
            methods = ReadList(methodsSection);
            foreach (var m in methods)
            {
                if (!IsToken(m)) Error(methodsSection, $"'{m}' is not an HTTP method");
            }
            methods = methods.Select(m => m.ToUpperInvariant()).ToArray();
        }
        List<(string, Regex)>? headers = null;
        var headersSection = section.GetSection("Headers");
        if (headersSection.Exists())
        {
            headers = [];
            foreach (var header in headersSection.GetChildren())
            {
                if (!IsToken(header.Key)) Error(header, $"'{header.Key}' is not a header name");
                if (header.Value is null) { Error(header, "must be a regex the header's value is matched against"); continue; }
                if (CompileRegex(header, RegexOptions.None) is { } rx) headers.Add((header.Key, rx));
            }
        }
        StatusRange[]? status = null;
        var statusSection = section.GetSection("Status");
        if (statusSection.Exists())
        {
            var list = new List<StatusRange>();
            foreach (var item in ReadList(statusSection))
            {
                if (StatusRange.TryParse(item, out var range)) list.Add(range);
                else Error(statusSection, $"'{item}' is not a status, class or range (200, 2xx, 500-504)");
            }
            status = list.ToArray();
        }
        Glob[]? contentTypes = null;
        var contentTypeSection = section.GetSection("ContentType");
        if (contentTypeSection.Exists())
        {
            var list = new List<Glob>();
            foreach (var item in ReadList(contentTypeSection))
            {
                if (Glob.CheckMediaType(item) is { } why) Error(contentTypeSection, why);
                else list.Add(Glob.MediaType(item));
            }
            contentTypes = list.ToArray();
        }
        if (!allowResponse && (statusSection.Exists() || contentTypeSection.Exists()))
        {
            Error(statusSection.Exists() ? statusSection : contentTypeSection,
                $"Status and ContentType describe the response: only Rewrite rules can use them ({policy} is decided before the request is sent)");
        }
        if (_errors.Count > start)
        {
            return null;
        }
        return new RuleMatch
        {
            Scheme = scheme,
            Host = host,
            Port = port,
            Path = path,
            Url = url,
            Methods = methods,
            Headers = headers?.ToArray(),
            Status = status,
            ContentTypes = contentTypes,
        };
    }

    private DropRule? ReadDrop(IConfigurationSection section, string id, int order, RuleMatch match, RuleCounter counter)
    {
        int? status = null;
        if (section["Status"] is { } s)
        {
            if (int.TryParse(s, NumberStyles.Integer, CultureInfo.InvariantCulture, out var n) && n is >= 200 and <= 599) status = n;
            else Error(section.GetSection("Status"), $"'{s}' is not a final HTTP status (200-599)");
        }
        var contentType = section["ContentType"];
        if (contentType is not null && !System.Net.Http.Headers.MediaTypeHeaderValue.TryParse(contentType, out _))
        {
            Error(section.GetSection("ContentType"), $"'{contentType}' is not a media type");
        }
        if (contentType is not null && section["Body"] is null)
        {
            Error(section.GetSection("ContentType"), "ContentType needs a Body");
        }
        if (status is 204 or 304 && !string.IsNullOrEmpty(section["Body"]))
        {
            Error(section.GetSection("Body"), $"a {status} response has no body");
        }
        return new DropRule(id, order, match, counter) { Status = status, Body = section["Body"], ContentType = contentType };
    }

    private SortRule? ReadSort(IConfigurationSection section, string id, int order, RuleMatch match, RuleCounter counter)
    {
        var start = _errors.Count;
        var location = section["Location"];
        if (location is not null)
        {
            var literal = Regex.Replace(location, @"\$(\d+|\{[^}]*\}|\$)", m => m.Value == "$$" ? "$" : "x");
            if (SortPlacement.CheckLocation(literal) is { } why)
            {
                Error(section.GetSection("Location"), why);
            }
            CheckSubstitutions(section.GetSection("Location"), location, match.Url, "Match:Url");
        }
        var archive = section["Archive"];
        if (archive is not null)
        {
            CheckArchive(section.GetSection("Archive"), archive);
        }
        CacheKeyOptions? key = null;
        var keySection = section.GetSection("Key");
        if (keySection.Exists())
        {
            ConfigChecks.UnknownKeys(keySection, _errors, s_keyKeys);
            ConfigChecks.Bool(keySection, "SortQuery", _errors);
            ConfigChecks.Bool(keySection, "IgnoreQuery", _errors);
            var template = keySection["Template"];
            if (template is not null)
            {
                if (template.Length == 0) Error(keySection.GetSection("Template"), "is empty");
                CheckSubstitutions(keySection.GetSection("Template"), template, match.Url, "Match:Url");
            }
            var drop = keySection.GetSection("DropQuery").Exists() ? ReadList(keySection.GetSection("DropQuery")) : [];
            key = new CacheKeyOptions
            {
                Template = template,
                DropQuery = drop.Select(Glob.MediaType).ToArray(), // case-insensitive glob on names
                SortQuery = bool.TryParse(keySection["SortQuery"], out var sq) && sq,
                IgnoreQuery = bool.TryParse(keySection["IgnoreQuery"], out var iq) && iq,
            };
        }
        if (location is null && archive is null && key is null)
        {
            Error(section, "a Sort rule needs Location, Archive or Key");
        }
        return _errors.Count > start ? null : new SortRule(id, order, match, counter) { Location = location, Archive = archive, Key = key };
    }

    private void CheckArchive(IConfigurationSection section, string format)
    {
        string a, b;
        try
        {
            a = new DateTime(2001, 2, 3, 4, 5, 6, DateTimeKind.Utc).ToString(format, CultureInfo.InvariantCulture);
            b = new DateTime(2012, 11, 24, 17, 48, 59, DateTimeKind.Utc).ToString(format, CultureInfo.InvariantCulture);
        }
        catch (FormatException)
        {
            Error(section, $"'{format}' is not a date format (e.g. yyyy/MM/dd, yyyy-MM, yyyy/'week'-ww is not supported)");
            return;
        }
        if (a == b)
        {
            Error(section, $"'{format}' contains no date field (use e.g. yyyy/MM/dd)");
        }
        else if (SortPlacement.CheckLocation(a) is { } why)
        {
            Error(section, $"'{format}' does not give a safe relative path: {why}");
        }
    }

    private RewriteRule? ReadRewrite(IConfigurationSection section, string id, int order, RuleMatch match, RuleCounter counter)
    {
        var start = _errors.Count;
        Replacement[] requestUrl = [], requestBody = [], responseBody = [];
        HeaderEdits? requestHeaders = null, responseHeaders = null;
        var request = section.GetSection("Request");
        if (request.Exists())
        {
            ConfigChecks.UnknownKeys(request, _errors, s_requestKeys);
            requestUrl = ReadReplacements(request.GetSection("Url"), allowEmptyMatch: false);
            requestHeaders = ReadHeaderEdits(request.GetSection("Headers"), s_requestForbidden);
            requestBody = ReadReplacements(request.GetSection("Body"), allowEmptyMatch: false);
            if (match.HasResponseConditions)
            {
                Error(request, "this rule's Match uses Status or ContentType, which are known only in the response phase: it can only have a Response part");
            }
        }
        var response = section.GetSection("Response");
        if (response.Exists())
        {
            ConfigChecks.UnknownKeys(response, _errors, s_responseKeys);
            responseHeaders = ReadHeaderEdits(response.GetSection("Headers"), s_responseForbidden);
            responseBody = ReadReplacements(response.GetSection("Body"), allowEmptyMatch: false);
        }
        if (!request.Exists() && !response.Exists())
        {
            Error(section, "a Rewrite rule needs Request or Response (or both)");
        }
        if (_errors.Count > start)
        {
            return null;
        }
        return new RewriteRule(id, order, match, counter)
        {
            RequestUrl = requestUrl,
            RequestHeaders = requestHeaders,
            RequestBody = requestBody,
            ResponseHeaders = responseHeaders,
            ResponseBody = responseBody,
        };
    }

    private Replacement[] ReadReplacements(IConfigurationSection section, bool allowEmptyMatch)
    {
        if (!section.Exists())
        {
            return [];
        }
        if (section.Value is not null)
        {
            Error(section, "must be a list of { \"Pattern\": regex, \"Replacement\": text }");
            return [];
        }
        var list = new List<Replacement>();
        foreach (var item in section.GetChildren())
        {
            ConfigChecks.UnknownKeys(item, _errors, s_replacementKeys);
            var patternSection = item.GetSection("Pattern");
            if (patternSection.Value is null)
            {
                Error(patternSection, "is required (a regex)");
                continue;
            }
            var regex = CompileRegex(patternSection, RegexOptions.None);
            if (regex is null)
            {
                continue;
            }
            if (!allowEmptyMatch && regex.IsMatch(string.Empty))
            {
                Error(patternSection, $"'{patternSection.Value}' matches the empty string: it would insert the replacement everywhere");
                continue;
            }
            var text = item["Replacement"] ?? string.Empty;
            CheckSubstitutions(item.GetSection("Replacement"), text, regex, "Pattern");
            list.Add(new Replacement(regex, text));
        }
        return list.ToArray();
    }

    private HeaderEdits? ReadHeaderEdits(IConfigurationSection section, string[] forbidden)
    {
        if (!section.Exists())
        {
            return null;
        }
        ConfigChecks.UnknownKeys(section, _errors, s_headerEditKeys);
        KeyValuePair<string, string>[] ReadMap(string key)
        {
            var map = section.GetSection(key);
            var result = new List<KeyValuePair<string, string>>();
            foreach (var header in map.GetChildren())
            {
                CheckHeaderName(header, header.Key, forbidden);
                if (header.Value is null)
                {
                    Error(header, "must be a header value (a string)");
                    continue;
                }
                if (header.Value.AsSpan().IndexOfAny('\r', '\n', '\0') >= 0)
                {
                    Error(header, "a header value cannot contain CR, LF or NUL");
                    continue;
                }
                result.Add(new(header.Key, header.Value));
            }
            return result.ToArray();
        }
        var set = ReadMap("Set");
        var append = ReadMap("Append");
        var remove = section.GetSection("Remove").Exists() ? ReadList(section.GetSection("Remove")) : [];
        foreach (var name in remove)
        {
            CheckHeaderName(section.GetSection("Remove"), name, forbidden);
        }
        return new HeaderEdits { Set = set, Append = append, Remove = remove };
    }

    private void CheckHeaderName(IConfigurationSection section, string name, string[] forbidden)
    {
        if (!IsToken(name))
        {
            Error(section, $"'{name}' is not a header name");
        }
        else if (forbidden.Contains(name, StringComparer.OrdinalIgnoreCase))
        {
            Error(section, $"'{name}' is managed by the gateway and cannot be edited by a rule");
        }
    }

    /// <summary>Checks that <c>$n</c> / <c>${name}</c> in a replacement refer to groups of <paramref name="regex"/>.</summary>
    private void CheckSubstitutions(IConfigurationSection section, string text, Regex? regex, string regexKey)
    {
        foreach (Match m in Regex.Matches(text, @"\$(\$|\d+|\{([^}]*)\})"))
        {
            if (m.Value == "$$" || m.Value == "$0")
            {
                if (m.Value == "$0" && regex is null) Error(section, $"'{text}' uses $0 but the rule has no {regexKey} regex");
                continue;
            }
            if (regex is null)
            {
                Error(section, $"'{text}' uses {m.Value} but the rule has no {regexKey} regex to capture it");
                return;
            }
            var name = m.Groups[2].Success ? m.Groups[2].Value : m.Groups[1].Value;
            var exists = int.TryParse(name, NumberStyles.None, CultureInfo.InvariantCulture, out var number)
                ? regex.GetGroupNumbers().Contains(number)
                : regex.GetGroupNames().Contains(name);
            if (!exists)
            {
                Error(section, $"'{text}' refers to group {m.Value}, which {regexKey} '{regex}' does not have");
            }
        }
    }

    private Regex? CompileRegex(IConfigurationSection section, RegexOptions options)
    {
        var pattern = section.Value ?? string.Empty;
        if (pattern.Length == 0)
        {
            Error(section, "is empty (a regex)");
            return null;
        }
        try
        {
            return new Regex(pattern, options | RegexOptions.Compiled | RegexOptions.CultureInvariant, _settings.RegexTimeout);
        }
        catch (ArgumentException ex)
        {
            Error(section, $"'{pattern}' is not a valid regex: {ex.Message}");
            return null;
        }
    }

    /// <summary>A list given as a JSON array (children 0, 1, …) or a comma-separated string.</summary>
    private static string[] ReadList(IConfigurationSection section)
    {
        if (section.Value is { } single)
        {
            return single.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        }
        return section.GetChildren().Select(c => c.Value?.Trim()).Where(v => !string.IsNullOrEmpty(v)).Select(v => v!).ToArray();
    }

    private static bool IsToken(string s)
    {
        if (s.Length == 0)
        {
            return false;
        }
        foreach (var c in s)
        {
            if (!(char.IsAsciiLetterOrDigit(c) || "!#$%&'*+-.^_`|~".Contains(c)))
            {
                return false;
            }
        }
        return true;
    }

    private void Error(IConfigurationSection section, string reason) => _errors.Add(new ConfigError(section.Path, reason));
}
