using System.Collections.Concurrent;
using System.Text;
using Gateway.Configuration;
using Microsoft.Extensions.Primitives;

namespace Gateway.Rules;

/// <summary>
/// Holds the current <see cref="RuleSet"/> and rebuilds it when the configuration reloads (appsettings.json edited
/// while running). A rebuild that fails validation logs every error and keeps the last good set; a good one is
/// swapped in whole. Per-rule counters are kept by policy and id across generations.
/// </summary>
internal sealed class RuleStore : IDisposable
{
    private readonly IConfiguration _configuration;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly ConcurrentDictionary<(RulePolicy, string), RuleCounter> _counters = new();
    private readonly IDisposable _reload;
    private readonly Lock _reloadLock = new();
    private RuleSet _current;
    private string _fingerprint;

    public RuleStore(IConfiguration configuration, ILogger<RuleStore> logger, TimeProvider time)
    {
        _configuration = configuration;
        _logger = logger;
        _time = time;
        _fingerprint = Fingerprint();
        var errors = new List<ConfigError>();
        // Start-up validation (RulesConfigValidator) has already refused an invalid configuration.
        _current = RuleSetBuilder.Build(configuration, errors, time.GetUtcNow(), Counter) ?? RuleSet.Empty;
        if (!ReferenceEquals(_current, RuleSet.Empty))
        {
            _current.Tag = RulesIcapService.TagOf(_fingerprint);
        }
        LastErrors = errors;
        LogLoaded(_current);
        _reload = ChangeToken.OnChange(configuration.GetReloadToken, SafeReload);
    }

    /// <summary>The rule set in force (an immutable snapshot).</summary>
    public RuleSet Current => Volatile.Read(ref _current);

    /// <summary>Errors of the last rejected reload (empty when the last load succeeded).</summary>
    public IReadOnlyList<ConfigError> LastErrors { get; private set; }

    public DateTimeOffset? LastRejectedAt { get; private set; }

    /// <summary>
    /// For the CONNECT tunnel (an opaque byte stream the rules cannot see into): the Drop rule that matches
    /// <c>CONNECT host:port</c>, evaluated as the URL <c>https://host:port/</c> with method CONNECT, or null. A match is
    /// counted. Seam for the tunnel code (not wired by the rules capability itself).
    /// </summary>
    public DropRule? MatchConnect(string host, int port)
    {
        if (!Uri.TryCreate($"https://{host}:{port}/", UriKind.Absolute, out var url))
        {
            return null;
        }
        var drop = Current.Evaluate(new RequestFacts("CONNECT", url, new HeaderDictionary()))?.Drop;
        if (drop is not null)
        {
            RulesTelemetry.Count(drop);
        }
        return drop;
    }

    private RuleCounter Counter(RulePolicy policy, string id) => _counters.GetOrAdd((policy, id), _ => new RuleCounter());

    private void SafeReload()
    {
        try
        {
            Reload();
        }
        catch (Exception ex)
        {
            // Never let a reload take the process down: keep the last good set.
            RulesLog.ReloadRejected(_logger, 1, ex.Message);
        }
    }

    /// <summary>Rebuilds from the current configuration; returns the errors (empty when applied).</summary>
    public IReadOnlyList<ConfigError> Reload()
    {
        lock (_reloadLock)
        {
            var fingerprint = Fingerprint();
            if (fingerprint == _fingerprint)
            {
                return LastErrors;
            }
            _fingerprint = fingerprint;
            var errors = new List<ConfigError>();
            var set = RuleSetBuilder.Build(_configuration, errors, _time.GetUtcNow(), Counter);
            if (set is null)
            {
                LastErrors = errors;
                LastRejectedAt = _time.GetUtcNow();
                RulesTelemetry.Reloads.Add(1, new KeyValuePair<string, object?>("result", "rejected"));
                RulesLog.ReloadRejected(_logger, errors.Count, string.Join("; ", errors));
                return errors;
            }
            LastErrors = [];
            set.Tag = RulesIcapService.TagOf(fingerprint);
            Volatile.Write(ref _current, set);
            RulesTelemetry.Reloads.Add(1, new KeyValuePair<string, object?>("result", "applied"));
            LogLoaded(set);
            return [];
        }
    }

    private void LogLoaded(RuleSet set)
    {
        var rules = set.Rules;
        RulesLog.Loaded(_logger, rules.Count,
            rules.Count(r => r.Policy == RulePolicy.Drop), rules.Count(r => r.Policy == RulePolicy.NoCache),
            rules.Count(r => r.Policy == RulePolicy.Sort), rules.Count(r => r.Policy == RulePolicy.Rewrite));
    }

    private string Fingerprint()
    {
        var sb = new StringBuilder();
        foreach (var (key, value) in _configuration.GetSection(RuleSetBuilder.SectionName).AsEnumerable().OrderBy(kv => kv.Key, StringComparer.Ordinal))
        {
            sb.Append(key).Append('=').Append(value).Append('\n');
        }
        return sb.ToString();
    }

    public void Dispose() => _reload.Dispose();
}
