using System.Text.Json;
using Gateway.Proxy;

namespace Gateway.Admin;

/// <summary>A handler on the admin listener for a path prefix (e.g. <c>/cache</c>, <c>/rules</c>).</summary>
public interface IAdminHandler
{
    /// <summary>Path prefix this handler owns, starting with '/'.</summary>
    string Prefix { get; }

    Task HandleAsync(HttpContext context);
}

/// <summary>A readiness check reported by <c>/readyz</c>; <c>null</c> means ready, otherwise the reason it is not.</summary>
public interface IReadinessCheck
{
    string Name { get; }

    ValueTask<string?> CheckAsync(CancellationToken cancellationToken);
}

/// <summary>
/// The admin listener: <c>/healthz</c> (alive), <c>/readyz</c> (listeners bound and every readiness check passing),
/// and the handlers other capabilities register. Never proxied.
/// </summary>
internal static class AdminDispatcher
{
    private static readonly JsonSerializerOptions s_json = new() { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase };

    public static async Task HandleAsync(HttpContext context)
    {
        var path = context.Request.Path.Value ?? "/";
        if (path == "/healthz")
        {
            context.Response.ContentType = "text/plain";
            await context.Response.WriteAsync("ok\n");
            return;
        }
        if (path == "/readyz")
        {
            await ReadyAsync(context);
            return;
        }
        foreach (var handler in context.RequestServices.GetServices<IAdminHandler>())
        {
            if (path.Equals(handler.Prefix, StringComparison.OrdinalIgnoreCase)
                || path.StartsWith(handler.Prefix + "/", StringComparison.OrdinalIgnoreCase))
            {
                await handler.HandleAsync(context);
                return;
            }
        }
        context.Response.StatusCode = StatusCodes.Status404NotFound;
        context.Response.ContentType = "text/plain";
        await context.Response.WriteAsync("404 Not Found: no admin endpoint at " + path + "\n");
    }

    private static async Task ReadyAsync(HttpContext context)
    {
        var services = context.RequestServices;
        var lifetime = services.GetRequiredService<IHostApplicationLifetime>();
        var registry = services.GetRequiredService<ListenerRegistry>();
        var failures = new Dictionary<string, string>();
        if (!lifetime.ApplicationStarted.IsCancellationRequested)
        {
            failures["listeners"] = "not started";
        }
        if (lifetime.ApplicationStopping.IsCancellationRequested)
        {
            failures["lifetime"] = "stopping";
        }
        foreach (var check in services.GetServices<IReadinessCheck>())
        {
            try
            {
                var reason = await check.CheckAsync(context.RequestAborted);
                if (reason is not null)
                {
                    failures[check.Name] = reason;
                }
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                failures[check.Name] = ex.Message;
            }
        }
        var body = new
        {
            status = failures.Count == 0 ? "ready" : "not ready",
            listeners = registry.EndPoints.ToDictionary(kv => kv.Key, kv => kv.Value.ToString()),
            failures,
        };
        context.Response.StatusCode = failures.Count == 0 ? StatusCodes.Status200OK : StatusCodes.Status503ServiceUnavailable;
        context.Response.ContentType = "application/json";
        await context.Response.WriteAsync(JsonSerializer.Serialize(body, s_json));
    }

    /// <summary>Writes a JSON answer with the admin listener's formatting.</summary>
    public static Task WriteJsonAsync<T>(HttpContext context, T value, int status = StatusCodes.Status200OK)
    {
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        return context.Response.WriteAsync(JsonSerializer.Serialize(value, s_json));
    }
}

internal static class AdminServiceCollectionExtensions
{
    public static IServiceCollection AddGatewayAdmin(this IServiceCollection services) => services;
}
