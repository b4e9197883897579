using System.Net;
using System.Net.Sockets;
using System.Text;
using Gateway.Icap.Protocol;
using Gateway.Icap.Server;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Gateway.Tests.Adaptation;

/// <summary>The gateway's own ICAP server (Gateway.Icap.Server, built-in echo and filter plus test services) on a free loopback port, in this process.</summary>
public sealed class OwnIcapServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private OwnIcapServer(WebApplication app, int port)
    {
        _app = app;
        Port = port;
    }

    public int Port { get; }

    public string Uri(string service) => $"icap://127.0.0.1:{Port}/{service}";

    public static async Task<OwnIcapServer> StartAsync(int port = 0, Dictionary<string, string>? filterKeywords = null, params IcapService[] extra)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.Services.AddIcapServer(o => o.Listen = $"127.0.0.1:{port}");
        builder.Services.Configure<Gateway.Icap.Services.FilterServiceOptions>(o =>
        {
            foreach (var kv in filterKeywords ?? []) o.Keywords[kv.Key] = kv.Value;
        });
        foreach (var s in extra) builder.Services.AddIcapService(s);
        builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, port, lo => lo.UseIcapServer()));
        var app = builder.Build();
        await app.StartAsync();
        var address = app.Services.GetRequiredService<Microsoft.AspNetCore.Hosting.Server.IServer>()
            .Features.Get<Microsoft.AspNetCore.Hosting.Server.Features.IServerAddressesFeature>()!.Addresses.First();
        return new OwnIcapServer(app, new System.Uri(address).Port);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync(new CancellationTokenSource(TimeSpan.FromSeconds(5)).Token);
        await _app.DisposeAsync();
    }
}

/// <summary>REQMOD test service: adds <c>X-Icap-Reqmod: added</c> to the request (200 with the changed head, body streamed back).</summary>
public sealed class AddHeaderService : IcapService
{
    public AddHeaderService() : base("addheader") { }

    public override IcapServiceDeclaration Declaration { get; } = new() { PreviewSize = null, Allow204 = true };

    public override ValueTask HandleAsync(IcapRequestContext context, CancellationToken cancellationToken)
    {
        var head = context.HttpRequest!.Clone();
        head.Headers.Set("X-Icap-Reqmod", "added");
        return context.RespondAsync(head, context.HasBody ? context.Body : null, cancellationToken);
    }
}

/// <summary>REQMOD test service: rewrites the request line (<c>/old/…</c> becomes <c>PUT /new/…</c>) and replaces the body.</summary>
public sealed class RewriteService : IcapService
{
    public RewriteService() : base("rewrite") { }

    public override IcapServiceDeclaration Declaration { get; } = new() { PreviewSize = null };

    public override async ValueTask HandleAsync(IcapRequestContext context, CancellationToken cancellationToken)
    {
        if (context.HasBody) await context.Body.CopyToAsync(Stream.Null, cancellationToken);
        var head = context.HttpRequest!.Clone();
        head.Method = "PUT";
        head.Target = head.Target.Replace("/old/", "/new/", StringComparison.Ordinal);
        var body = Encoding.UTF8.GetBytes("rewritten body");
        head.Headers.Set("Content-Length", body.Length.ToString(System.Globalization.CultureInfo.InvariantCulture));
        await context.RespondAsync(head, new MemoryStream(body), cancellationToken);
    }
}

/// <summary>RESPMOD test service: replaces the body with its upper-case form plus a suffix (a different length), keeping the old Content-Length header (a lie the gateway must fix).</summary>
public sealed class UpperCaseService : IcapService
{
    public const string Suffix = "\n-- adapted --\n";

    public UpperCaseService() : base("upper") { }

    public override IcapServiceDeclaration Declaration { get; } = new() { PreviewSize = null };

    public override async ValueTask HandleAsync(IcapRequestContext context, CancellationToken cancellationToken)
    {
        using var ms = new MemoryStream();
        if (context.HasBody) await context.Body.CopyToAsync(ms, cancellationToken);
        var text = Encoding.UTF8.GetString(ms.ToArray()).ToUpperInvariant() + Suffix;
        var head = context.HttpResponse!.Clone();
        head.Headers.Set("X-Icap-Respmod", "upper");
        await context.RespondAsync(head, new MemoryStream(Encoding.UTF8.GetBytes(text)), cancellationToken);
    }
}

/// <summary>
/// A scripted misbehaving ICAP peer on a raw socket: answers OPTIONS properly (so the client gets that far) and then,
/// for REQMOD/RESPMOD, sends garbage, or never answers, as told.
/// </summary>
public sealed class FakeIcapServer : IAsyncDisposable
{
    public enum Mode { Garbage, Silent, Close, NoContent, EarlyBlock, CloseSecond }

    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _stop = new();
    private readonly List<TcpClient> _clients = [];
    private readonly Task _accept;
    private int _transactions;

    public FakeIcapServer(Mode mode)
    {
        CurrentMode = mode;
        _listener = new TcpListener(IPAddress.Loopback, 0);
        _listener.Start();
        _accept = AcceptAsync();
    }

    public Mode CurrentMode { get; set; }

    public int Port => ((IPEndPoint)_listener.LocalEndpoint).Port;

    public int Transactions => Volatile.Read(ref _transactions);

    /// <summary>Status line of the OPTIONS answer.</summary>
    public string OptionsStatus { get; set; } = "200 OK";

    /// <summary>Extra OPTIONS header lines (each ending in CRLF), e.g. <c>Transfer-Ignore: jpg\r\n</c>.</summary>
    public string OptionsExtra { get; set; } = string.Empty;

    /// <summary>The ICAP head (and whatever followed in the same reads) of the last REQMOD/RESPMOD.</summary>
    public string? LastRequest { get; private set; }

    public string Uri => $"icap://127.0.0.1:{Port}/fake";

    private async Task AcceptAsync()
    {
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                var client = await _listener.AcceptTcpClientAsync(_stop.Token);
                lock (_clients) _clients.Add(client);
                _ = ServeAsync(client);
            }
        }
        catch (Exception) when (_stop.IsCancellationRequested)
        {
        }
        catch (SocketException)
        {
        }
    }

    private async Task ServeAsync(TcpClient client)
    {
        try
        {
            var stream = client.GetStream();
            var buffer = new byte[64 * 1024];
            var pending = new StringBuilder();
            var onThisConnection = 0;
            while (!_stop.IsCancellationRequested)
            {
                var n = await stream.ReadAsync(buffer, _stop.Token);
                if (n == 0) return;
                pending.Append(Encoding.Latin1.GetString(buffer, 0, n));
                var text = pending.ToString();
                if (!text.Contains("\r\n\r\n")) continue;
                if (text.StartsWith("OPTIONS", StringComparison.Ordinal))
                {
                    pending.Clear();
                    await stream.WriteAsync(Encoding.ASCII.GetBytes("ICAP/1.0 " + OptionsStatus + "\r\nMethods: REQMOD, RESPMOD\r\nISTag: \"FAKE-1\"\r\nAllow: 204\r\n" + OptionsExtra + "Encapsulated: null-body=0\r\n\r\n"), _stop.Token);
                    continue;
                }
                Interlocked.Increment(ref _transactions);
                LastRequest = text;
                if (CurrentMode == Mode.CloseSecond && ++onThisConnection == 2)
                {
                    // A keep-alive connection the server drops just as the client reuses it: no answer at all.
                    client.Close();
                    return;
                }
                switch (CurrentMode)
                {
                    case Mode.Garbage:
                        await stream.WriteAsync(Encoding.ASCII.GetBytes("HTTP/1.1 200 OK\r\nthis is not ICAP at all\r\n\r\n"), _stop.Token);
                        client.Close();
                        return;
                    case Mode.Close:
                        client.Close();
                        return;
                    case Mode.NoContent:
                    case Mode.CloseSecond:
                        // Answer 204 once the message is complete (null-body, or the last chunk seen).
                        while (!(text.Contains("null-body") || text.EndsWith("0\r\n\r\n", StringComparison.Ordinal) || text.EndsWith("0; ieof\r\n\r\n", StringComparison.Ordinal)))
                        {
                            n = await stream.ReadAsync(buffer, _stop.Token);
                            if (n == 0) return;
                            pending.Append(Encoding.Latin1.GetString(buffer, 0, n));
                            text = pending.ToString();
                        }
                        pending.Clear();
                        await stream.WriteAsync(Encoding.ASCII.GetBytes("ICAP/1.0 204 No Content\r\nISTag: \"FAKE-1\"\r\n\r\n"), _stop.Token);
                        continue;
                    case Mode.EarlyBlock:
                        {
                            // Answer at once, without reading the body, then drain whatever the client still sends.
                            var http = "HTTP/1.1 403 Forbidden\r\nContent-Type: text/plain\r\n\r\n";
                            var answer = $"ICAP/1.0 200 OK\r\nISTag: \"FAKE-1\"\r\nEncapsulated: res-hdr=0, res-body={http.Length}\r\n\r\n{http}d\r\nblocked early\r\n0\r\n\r\n";
                            await stream.WriteAsync(Encoding.ASCII.GetBytes(answer), _stop.Token);
                            pending.Clear();
                            while (await stream.ReadAsync(buffer, _stop.Token) > 0) { }
                            return;
                        }
                    case Mode.Silent:
                        // read everything, answer nothing
                        pending.Clear();
                        while (await stream.ReadAsync(buffer, _stop.Token) > 0) { }
                        return;
                }
            }
        }
        catch (Exception)
        {
        }
        finally
        {
            client.Dispose();
        }
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener.Stop();
        lock (_clients) foreach (var c in _clients) c.Dispose();
        try { await _accept; } catch (Exception) { }
    }
}

public static class PortHelper
{
    /// <summary>A loopback port nothing listens on right now.</summary>
    public static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        var port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }
}
