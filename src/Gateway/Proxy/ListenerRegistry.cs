using System.Net;
using Microsoft.AspNetCore.Connections;
using Microsoft.AspNetCore.Connections.Features;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.AspNetCore.Server.Kestrel.Core;

namespace Gateway.Proxy;

/// <summary>Lets a capability add its own Kestrel listener (e.g. the ICAP server).</summary>
public interface IListenerContributor
{
    void Configure(KestrelServerOptions kestrel, ListenerRegistry registry);
}

/// <summary>
/// Knows the gateway's listeners by name, tags their connections so the HTTP pipeline can tell them apart,
/// and reports the addresses they are bound to (port 0 resolved) once the server has started.
/// </summary>
public sealed class ListenerRegistry
{
    public const string Proxy = "Proxy";
    public const string Admin = "Admin";
    public const string Icap = "Icap";
    private const string ItemKey = "gateway.listener";

    private readonly Dictionary<string, ListenOptions> _listeners = new(StringComparer.OrdinalIgnoreCase);
    private readonly IServiceProvider _services;

    public ListenerRegistry(IServiceProvider services) => _services = services;

    internal void ConfigureProxy(ListenOptions options)
    {
        Add(Proxy, options);
        var tunnel = _services.GetRequiredService<ConnectTunnelMiddleware>();
        options.Use(next => context => tunnel.OnConnectionAsync(context, next));
    }

    internal void ConfigureAdmin(ListenOptions options) => Add(Admin, options);

    /// <summary>Registers a listener under a name and tags its connections with it.</summary>
    public void Add(string name, ListenOptions options)
    {
        lock (_listeners)
        {
            _listeners[name] = options;
        }
        options.Use(next => context =>
        {
            context.Items[ItemKey] = name;
            return next(context);
        });
    }

    /// <summary>The bound endpoint of a listener (real port after binding), or null if it has none.</summary>
    public EndPoint? GetEndPoint(string name)
    {
        lock (_listeners)
        {
            return _listeners.TryGetValue(name, out var o) ? o.EndPoint : null;
        }
    }

    public IReadOnlyDictionary<string, EndPoint> EndPoints
    {
        get
        {
            lock (_listeners)
            {
                return _listeners.ToDictionary(kv => kv.Key, kv => kv.Value.EndPoint, StringComparer.OrdinalIgnoreCase);
            }
        }
    }

    public static string? ListenerOf(HttpContext context)
        => context.Features.Get<IConnectionItemsFeature>()?.Items.TryGetValue(ItemKey, out var v) == true ? v as string : null;

    public static string? ListenerOf(ConnectionContext context)
        => context.Items.TryGetValue(ItemKey, out var v) ? v as string : null;

    internal static bool IsAdmin(HttpContext context) => string.Equals(ListenerOf(context), Admin, StringComparison.Ordinal);
}
