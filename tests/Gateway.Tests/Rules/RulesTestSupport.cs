using System.Collections.Concurrent;
using Gateway.Proxy;
using Gateway.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;

namespace Gateway.Tests.Rules;

/// <summary>A test-only pipeline stage after the rules (order 250) that records what the rules set on the feature.</summary>
internal sealed class FeatureProbe : IProxyPipelineStage
{
    public sealed record Snapshot(string Url, bool NoCache, string? CacheKey, string? CacheLocation, string? CacheArchive);

    public ConcurrentQueue<Snapshot> Seen { get; } = new();

    public int Order => 250;

    public Task InvokeAsync(HttpContext context, RequestDelegate next)
    {
        var f = context.Features.Get<GatewayRequestFeature>()!;
        Seen.Enqueue(new Snapshot(f.TargetUri.AbsoluteUri, f.NoCache, f.CacheKey, f.CacheLocation, f.CacheArchive));
        return next(context);
    }

    public Snapshot Last => Seen.Last();

    public Action<IServiceCollection> Register => s => s.AddSingleton<IProxyPipelineStage>(this);
}

internal static class RulesConfig
{
    /// <summary>Reverse route to the backend plus the given rule keys (relative to Gateway:Rules).</summary>
    public static Dictionary<string, string?> Reverse(TestBackend backend, params (string Key, string? Value)[] rules)
    {
        var config = new Dictionary<string, string?>
        {
            ["ReverseProxy:Routes:r1:ClusterId"] = "c1",
            ["ReverseProxy:Routes:r1:Match:Path"] = "{**catch-all}",
            ["ReverseProxy:Clusters:c1:Destinations:d1:Address"] = backend.Uri.ToString(),
            ["Gateway:ForwardProxy:Enabled"] = "true",
        };
        foreach (var (key, value) in rules)
        {
            config["Gateway:Rules:" + key] = value;
        }
        return config;
    }
}
