namespace Gateway.Configuration;

/// <summary>One configuration error: the configuration key it concerns and why it is wrong.</summary>
public sealed record ConfigError(string Key, string Reason)
{
    public override string ToString() => $"{Key}: {Reason}";
}

/// <summary>Contributes configuration errors at start-up. Every validator runs; all errors are reported at once.</summary>
public interface IGatewayConfigValidator
{
    void Validate(IConfiguration configuration, ICollection<ConfigError> errors);
}

/// <summary>Start-up stopped because the configuration is invalid. The message lists every error.</summary>
public sealed class GatewayConfigurationException : Exception
{
    public GatewayConfigurationException(IReadOnlyList<ConfigError> errors)
        : base(Format(errors))
    {
        Errors = errors;
    }

    public IReadOnlyList<ConfigError> Errors { get; }

    private static string Format(IReadOnlyList<ConfigError> errors)
    {
        var sb = new System.Text.StringBuilder();
        sb.Append("gateway: invalid configuration (").Append(errors.Count).Append(errors.Count == 1 ? " error" : " errors").AppendLine("):");
        foreach (var e in errors)
        {
            sb.Append("  - ").Append(e.Key).Append(": ").AppendLine(e.Reason);
        }
        return sb.ToString().TrimEnd();
    }
}

/// <summary>The top level of the <c>Gateway</c> section: only the capability sections and <c>Name</c> are allowed.</summary>
internal sealed class GatewaySectionValidator : IGatewayConfigValidator
{
    public void Validate(IConfiguration configuration, ICollection<ConfigError> errors)
        => ConfigChecks.UnknownKeys(configuration.GetSection("Gateway"), errors, "Name", "ForwardProxy", "Icap", "Adaptation", "Cache", "Rules");
}
