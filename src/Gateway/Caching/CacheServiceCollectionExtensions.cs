using Gateway.Admin;
using Gateway.Configuration;
using Gateway.Proxy;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Options;

namespace Gateway.Caching;

internal static class CacheServiceCollectionExtensions
{
    /// <summary>Registers the caching capability (pipeline stages, admin handlers, readiness checks, validators).</summary>
    public static IServiceCollection AddGatewayCache(this IServiceCollection services, IConfiguration configuration)
    {
        services.AddOptions<CacheOptions>().BindConfiguration(CacheOptions.Section);
        services.AddSingleton<IGatewayConfigValidator, CacheConfigValidator>();
        services.AddSingleton(sp => new CacheSettings(sp.GetRequiredService<IOptions<CacheOptions>>().Value, sp.GetRequiredService<IHostEnvironment>().ContentRootPath));
        services.AddSingleton(sp => new CacheStore(sp.GetRequiredService<CacheSettings>(), sp.GetRequiredService<ILoggerFactory>().CreateLogger("Gateway.Cache"), sp.GetRequiredService<TimeProvider>()));
        // Default seam: "don't check ISTags". AddGatewayAdaptation runs before this, so its registration wins.
        services.TryAddSingleton<IAdaptationTagSource, NoAdaptationTags>();
        services.AddSingleton<IProxyPipelineStage, CacheStage>();
        services.AddSingleton<IAdminHandler, CacheAdminHandler>();
        services.AddSingleton<IReadinessCheck, CacheReadinessCheck>();
        services.AddHostedService<CacheLoader>();
        return services;
    }
}

/// <summary>Rebuilds the index from the files at start-up (the cache stage also waits for it).</summary>
internal sealed class CacheLoader(CacheStore store, CacheSettings settings) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken) => settings.Enabled ? store.EnsureLoadedAsync() : Task.CompletedTask;

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}

/// <summary><c>/readyz</c>: the cache directory is writable (when the cache is enabled).</summary>
internal sealed class CacheReadinessCheck(CacheStore store, CacheSettings settings) : IReadinessCheck
{
    public string Name => "cache";

    public ValueTask<string?> CheckAsync(CancellationToken cancellationToken)
    {
        if (!settings.Enabled)
        {
            return ValueTask.FromResult<string?>(null);
        }
        if (!store.IsLoaded)
        {
            return ValueTask.FromResult<string?>("loading the index");
        }
        if (store.Unusable is { } reason)
        {
            return ValueTask.FromResult<string?>($"cache directory {settings.Directory} is not usable: {reason}");
        }
        var probe = Path.Combine(settings.Directory, CacheStore.TempDirName, "probe-" + Guid.NewGuid().ToString("N"));
        try
        {
            File.WriteAllBytes(probe, [1]);
            File.Delete(probe);
            return ValueTask.FromResult<string?>(null);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return ValueTask.FromResult<string?>($"cache directory {settings.Directory} is not writable: {ex.Message}");
        }
    }
}
