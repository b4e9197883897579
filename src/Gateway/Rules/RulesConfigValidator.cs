using Gateway.Configuration;

namespace Gateway.Rules;

/// <summary>Start-up validation of <c>Gateway:Rules</c>: every error of every rule, unknown keys included.</summary>
internal sealed class RulesConfigValidator : IGatewayConfigValidator
{
    public void Validate(IConfiguration configuration, ICollection<ConfigError> errors)
    {
        var list = new List<ConfigError>();
        RuleSetBuilder.Build(configuration, list, DateTimeOffset.UtcNow);
        foreach (var error in list)
        {
            errors.Add(error);
        }
    }
}
