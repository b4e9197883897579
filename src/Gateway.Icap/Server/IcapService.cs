using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using Gateway.Icap.Protocol;

namespace Gateway.Icap.Server;

/// <summary>What a service declares; the OPTIONS response is generated from it.</summary>
public sealed record IcapServiceDeclaration
{
    /// <summary><c>Methods</c>: REQMOD and/or RESPMOD (OPTIONS is implied).</summary>
    public IReadOnlyList<IcapMethod> Methods { get; init; } = [IcapMethod.Reqmod, IcapMethod.Respmod];

    /// <summary><c>Service</c>: a human-readable description.</summary>
    public string? Description { get; init; }

    /// <summary><c>Preview</c>: bytes of body the client should send first, or null for no preview.</summary>
    public int? PreviewSize { get; init; } = 1024;

    /// <summary><c>Transfer-Preview</c>: file extensions to preview (<c>*</c> for all).</summary>
    public IReadOnlyList<string> TransferPreview { get; init; } = ["*"];

    /// <summary><c>Transfer-Ignore</c>: file extensions not to send.</summary>
    public IReadOnlyList<string> TransferIgnore { get; init; } = [];

    /// <summary><c>Transfer-Complete</c>: file extensions to send whole, without preview.</summary>
    public IReadOnlyList<string> TransferComplete { get; init; } = [];

    /// <summary><c>Options-TTL</c>; null for the server default.</summary>
    public TimeSpan? OptionsTtl { get; init; }

    /// <summary>Advertise <c>Allow: 204</c>.</summary>
    public bool Allow204 { get; init; } = true;

    /// <summary>Advertise <c>Allow: 206</c>.</summary>
    public bool Allow206 { get; init; }

    /// <summary><c>Max-Connections</c>; null for the server's limit.</summary>
    public int? MaxConnections { get; init; }

    internal string Fingerprint() => string.Join('|',
        string.Join(',', Methods), Description, PreviewSize?.ToString(CultureInfo.InvariantCulture), string.Join(',', TransferPreview),
        string.Join(',', TransferIgnore), string.Join(',', TransferComplete), OptionsTtl?.Ticks.ToString(CultureInfo.InvariantCulture),
        Allow204, Allow206, MaxConnections?.ToString(CultureInfo.InvariantCulture));
}

/// <summary>
/// An ICAP service, addressed by <see cref="Name"/> (the URI path: <c>icap://host:1344/{Name}</c>). Register it with
/// <c>services.AddIcapService&lt;T&gt;()</c>. One instance serves all requests concurrently.
/// </summary>
public abstract class IcapService
{
    private string? _isTag;

    protected IcapService(string name)
    {
        if (string.IsNullOrWhiteSpace(name) || name.Contains('/')) throw new ArgumentException("A service name is one path segment.", nameof(name));
        Name = name;
    }

    public string Name { get; }

    public virtual IcapServiceDeclaration Declaration { get; } = new();

    /// <summary>
    /// <c>ISTag</c>: a quoted string that changes when the service's behaviour does. The default hashes the declaration,
    /// the type and <see cref="ConfigurationFingerprint"/>.
    /// </summary>
    public virtual string IsTag => _isTag ??= ComputeIsTag();

    /// <summary>Everything in the service's configuration that changes its answers (e.g. a keyword list).</summary>
    protected virtual string ConfigurationFingerprint => string.Empty;

    /// <summary>Handles one REQMOD or RESPMOD request; must answer through one of the context's <c>Respond…</c> methods.</summary>
    public virtual ValueTask HandleAsync(IcapRequestContext context, CancellationToken cancellationToken) => context.Method switch
    {
        IcapMethod.Reqmod => ReqmodAsync(context, cancellationToken),
        IcapMethod.Respmod => RespmodAsync(context, cancellationToken),
        _ => context.RespondErrorAsync(405, cancellationToken: cancellationToken),
    };

    protected virtual ValueTask ReqmodAsync(IcapRequestContext context, CancellationToken cancellationToken)
        => context.RespondErrorAsync(405, cancellationToken: cancellationToken);

    protected virtual ValueTask RespmodAsync(IcapRequestContext context, CancellationToken cancellationToken)
        => context.RespondErrorAsync(405, cancellationToken: cancellationToken);

    private string ComputeIsTag()
    {
        var source = $"{GetType().FullName}|{Name}|{Declaration.Fingerprint()}|{ConfigurationFingerprint}";
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(source));
        return $"\"GW-{Convert.ToHexString(hash, 0, 10)}\"";
    }
}
