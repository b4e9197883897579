using Gateway.Configuration;

namespace Gateway.Proxy;

/// <summary><c>Gateway:ForwardProxy</c>: absolute-form requests and CONNECT tunnels on the proxy listener.</summary>
public sealed class ForwardProxyOptions
{
    public const string Section = "Gateway:ForwardProxy";
    internal static readonly string[] DefaultAllowedClients = ["127.0.0.1/8", "::1/128"];
    internal static readonly int[] DefaultConnectPorts = [443];

    /// <summary>Accept absolute-form requests and CONNECT. Off unless configured (the shipped appsettings.json turns it on).</summary>
    public bool Enabled { get; set; }

    /// <summary>CIDR ranges that may use the forward proxy; others get 403. Default loopback only.</summary>
    public string[]? AllowedClients { get; set; }

    /// <summary>Ports CONNECT may reach; others get 403. Default 443.</summary>
    public int[]? ConnectPorts { get; set; }

    /// <summary>How long to wait for an origin (connect, and between reads of the response). Default 100 s.</summary>
    public TimeSpan Timeout { get; set; } = TimeSpan.FromSeconds(100);

    /// <summary>How long to wait for a TCP connection to an origin or CONNECT target. Default 10 s.</summary>
    public TimeSpan ConnectTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How long a CONNECT tunnel may stay idle in both directions before it is closed. Default 5 min.</summary>
    public TimeSpan TunnelIdleTimeout { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Largest CONNECT request head accepted (bytes). Default 8 KiB.</summary>
    public int MaxConnectHeaderBytes { get; set; } = 8 * 1024;
}

/// <summary><c>Gateway</c> top-level settings shared by the proxy paths.</summary>
public sealed class GatewayProxyOptions
{
    /// <summary>The name this gateway adds to <c>Via</c> (<c>1.1 name</c>) and looks for to detect loops. Default: the host name.</summary>
    public string? Name { get; set; }

    internal string EffectiveName => string.IsNullOrWhiteSpace(Name) ? "gateway-" + Environment.MachineName.ToLowerInvariant() : Name!;
}

/// <summary>The validated, compiled form of <see cref="ForwardProxyOptions"/>.</summary>
internal sealed class ForwardProxySettings
{
    public ForwardProxySettings(ForwardProxyOptions options)
    {
        Options = options;
        var ranges = new List<CidrRange>();
        foreach (var c in options.AllowedClients ?? ForwardProxyOptions.DefaultAllowedClients)
        {
            if (CidrRange.TryParse(c, out var r, out _))
            {
                ranges.Add(r);
            }
        }
        AllowedClients = ranges.ToArray();
        ConnectPorts = (options.ConnectPorts ?? ForwardProxyOptions.DefaultConnectPorts).ToHashSet();
    }

    public ForwardProxyOptions Options { get; }
    public CidrRange[] AllowedClients { get; }
    public HashSet<int> ConnectPorts { get; }

    public bool IsAllowed(System.Net.IPAddress? client)
    {
        foreach (var r in AllowedClients)
        {
            if (r.Contains(client))
            {
                return true;
            }
        }
        return false;
    }
}

internal sealed class ForwardProxyConfigValidator : IGatewayConfigValidator
{
    public void Validate(IConfiguration configuration, ICollection<ConfigError> errors)
    {
        var section = configuration.GetSection(ForwardProxyOptions.Section);
        ConfigChecks.Bool(section, "Enabled", errors);
        var clients = section.GetSection("AllowedClients");
        foreach (var child in clients.GetChildren())
        {
            if (!CidrRange.TryParse(child.Value, out _, out var error))
            {
                errors.Add(new ConfigError(child.Path, error!));
            }
        }
        foreach (var child in section.GetSection("ConnectPorts").GetChildren())
        {
            if (!int.TryParse(child.Value, out var port) || port is < 1 or > 65535)
            {
                errors.Add(new ConfigError(child.Path, $"'{child.Value}' is not a TCP port (1-65535)"));
            }
        }
        ConfigChecks.PositiveTimeSpan(section, "Timeout", errors);
        ConfigChecks.PositiveTimeSpan(section, "ConnectTimeout", errors);
        ConfigChecks.PositiveTimeSpan(section, "TunnelIdleTimeout", errors);
        ConfigChecks.PositiveInt(section, "MaxConnectHeaderBytes", errors);
        ConfigChecks.UnknownKeys(section, errors, "Enabled", "AllowedClients", "ConnectPorts", "Timeout", "ConnectTimeout", "TunnelIdleTimeout", "MaxConnectHeaderBytes");
    }
}
