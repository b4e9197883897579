using System.Diagnostics.Metrics;
using Gateway.Observability;

namespace Gateway.Rules;

/// <summary>Instruments of the rules capability.</summary>
internal static class RulesTelemetry
{
    /// <summary>Times a rule applied, tagged by <c>policy</c> and <c>rule</c> (id).</summary>
    public static readonly Counter<long> Matches = GatewayTelemetry.Meter.CreateCounter<long>("gateway.rules.matches", unit: "{match}", description: "Times a rule applied, by policy and rule id");

    /// <summary>Regex evaluations that hit the match timeout (the rule is then treated as not matching), by rule.</summary>
    public static readonly Counter<long> RegexTimeouts = GatewayTelemetry.Meter.CreateCounter<long>("gateway.rules.regex_timeouts", unit: "{timeout}", description: "Rule regexes that exceeded Gateway:Rules:RegexTimeout");

    /// <summary>Rule-set reloads, tagged <c>result</c> = applied | rejected.</summary>
    public static readonly Counter<long> Reloads = GatewayTelemetry.Meter.CreateCounter<long>("gateway.rules.reloads", unit: "{reload}", description: "Rule-set reloads by result");

    public static void Count(Rule rule)
    {
        rule.Counter.Increment();
        Matches.Add(1, new KeyValuePair<string, object?>("policy", rule.Policy.ToString()), new KeyValuePair<string, object?>("rule", rule.Id));
    }
}

internal static partial class RulesLog
{
    [LoggerMessage(EventId = 1600, Level = LogLevel.Information, Message = "Rules loaded: {Count} rules ({Drop} drop, {NoCache} nocache, {Sort} sort, {Rewrite} rewrite)")]
    public static partial void Loaded(ILogger logger, int count, int drop, int noCache, int sort, int rewrite);

    [LoggerMessage(EventId = 1601, Level = LogLevel.Error, Message = "Rules reload rejected, keeping the previous rule set ({Count} errors): {Errors}")]
    public static partial void ReloadRejected(ILogger logger, int count, string errors);

    [LoggerMessage(EventId = 1602, Level = LogLevel.Warning, Message = "Rule {Policy}:{Rule}: a regex exceeded the match timeout; the rule is treated as not matching for {Url}")]
    public static partial void RegexTimeout(ILogger logger, RulePolicy policy, string rule, string url);

    [LoggerMessage(EventId = 1603, Level = LogLevel.Debug, Message = "Request dropped by rule {Rule}: {Method} {Url} -> {Status} {Kind}")]
    public static partial void Dropped(ILogger logger, string rule, string method, string url, int status, string kind);

    [LoggerMessage(EventId = 1604, Level = LogLevel.Warning, Message = "Sort rule {Rule}: location refused for {Url}: {Reason}")]
    public static partial void LocationRefused(ILogger logger, string rule, string url, string reason);

    [LoggerMessage(EventId = 1605, Level = LogLevel.Debug, Message = "Rewrite rule {Rule}: URL rewrite of {Url} gave '{Result}', which is not an absolute http(s) URL; URL left unchanged")]
    public static partial void BadRewrittenUrl(ILogger logger, string rule, string url, string result);

    [LoggerMessage(EventId = 1606, Level = LogLevel.Debug, Message = "Rewrite rule {Rule}: request body left unchanged: {Reason}")]
    public static partial void RequestBodyLeftAlone(ILogger logger, string rule, string reason);

    [LoggerMessage(EventId = 1607, Level = LogLevel.Information, Message = "Rewrite rule {Rule}: response body of {Url} left unchanged: {Reason}")]
    public static partial void ResponseBodyLeftAlone(ILogger logger, string rule, string url, string reason);

    [LoggerMessage(EventId = 1608, Level = LogLevel.Warning, Message = "Rewrite: a body regex exceeded the match timeout; the rest of the body passes unchanged through that replacement")]
    public static partial void BodyRegexTimeout(ILogger logger);
}
