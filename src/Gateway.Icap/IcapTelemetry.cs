using System.Diagnostics;
using System.Diagnostics.Metrics;

namespace Gateway.Icap;

/// <summary>The <c>Gateway.Icap</c> ActivitySource and Meter (ICAP client and server).</summary>
public static class IcapTelemetry
{
    public const string Name = "Gateway.Icap";

    public static ActivitySource ActivitySource { get; } = new(Name);

    public static Meter Meter { get; } = new(Name);
}
