using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Gateway.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;

namespace Gateway.Tests.Proxy;

public sealed class ForwardProxyTests
{
    internal static Dictionary<string, string?> ForwardConfig(Dictionary<string, string?>? extra = null)
    {
        var config = new Dictionary<string, string?> { ["Gateway:ForwardProxy:Enabled"] = "true" };
        foreach (var kv in extra ?? [])
        {
            config[kv.Key] = kv.Value;
        }
        return config;
    }

    [Fact]
    public async Task AbsoluteFormRequest_IsForwarded_ToItsOwnAuthority()
    {
        await using var backend = await TestBackend.StartAsync(async ctx =>
        {
            ctx.Response.Headers["X-Host-Seen"] = ctx.Request.Host.Value;
            await ctx.Response.WriteAsync("hello " + ctx.Request.Path + ctx.Request.QueryString);
        });
        await using var gw = await GatewayHost.StartAsync(ForwardConfig());
        using var client = gw.CreateForwardProxyClient();

        using var response = await client.GetAsync(new Uri(backend.Uri, "/a/b?c=d"));

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("hello /a/b?c=d", await response.Content.ReadAsStringAsync());
        Assert.Equal($"127.0.0.1:{backend.Port}", response.Headers.GetValues("X-Host-Seen").Single());
        Assert.Contains(response.Headers.Via, v => v.ReceivedBy.StartsWith("gateway", StringComparison.Ordinal));
        Assert.False(backend.Last!.Headers.ContainsKey("Proxy-Connection"));
    }

    [Fact]
    public async Task Curl_WithProxyOption_Works()
    {
        var payload = RandomNumberGenerator.GetBytes(256 * 1024);
        await using var backend = await TestBackend.StartAsync(ctx => ctx.Response.Body.WriteAsync(payload).AsTask());
        await using var gw = await GatewayHost.StartAsync(ForwardConfig());
        var output = Path.Combine(gw.ContentRoot, "curl.out");

        var (exit, _, stderr) = await Run("curl", $"-sS -f -x {gw.ProxyUri.ToString().TrimEnd('/')} -H \"Proxy-Authorization: Basic eDp5\" -o {output} {backend.Uri}file.bin");

        Assert.True(exit == 0, $"curl failed ({exit}): {stderr}");
        Assert.Equal(SHA256.HashData(payload), SHA256.HashData(await File.ReadAllBytesAsync(output)));
        Assert.False(backend.Last!.Headers.ContainsKey("Proxy-Authorization"));
    }

    [Fact]
    public async Task ClientOutsideAllowedClients_Gets403()
    {
        await using var backend = await TestBackend.StartAsync(ctx => ctx.Response.WriteAsync("no"));
        await using var gw = await GatewayHost.StartAsync(ForwardConfig(new() { ["Gateway:ForwardProxy:AllowedClients:0"] = "10.0.0.0/8" }));
        using var client = gw.CreateForwardProxyClient();

        using var response = await client.GetAsync(backend.Uri);

        Assert.Equal(HttpStatusCode.Forbidden, response.StatusCode);
        Assert.Contains("may not use the forward proxy", await response.Content.ReadAsStringAsync());
        Assert.Equal(0, backend.Requests);
    }

    [Fact]
    public async Task ForwardProxyDisabled_AbsoluteFormIsNotForwarded()
    {
        await using var backend = await TestBackend.StartAsync(ctx => ctx.Response.WriteAsync("no"));
        await using var gw = await GatewayHost.StartAsync(new Dictionary<string, string?> { ["Gateway:ForwardProxy:Enabled"] = "false" });
        using var client = gw.CreateForwardProxyClient();

        using var response = await client.GetAsync(backend.Uri);

        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        Assert.Equal(0, backend.Requests);
    }

    [Fact]
    public async Task UnreachableOrigin_Gets502_AndSlowOrigin_Gets504()
    {
        await using var slow = await TestBackend.StartAsync(async ctx =>
        {
            try { await Task.Delay(TimeSpan.FromSeconds(10), ctx.RequestAborted); } catch (OperationCanceledException) { }
        });
        await using var gw = await GatewayHost.StartAsync(ForwardConfig(new() { ["Gateway:ForwardProxy:Timeout"] = "00:00:00.500" }));
        using var client = gw.CreateForwardProxyClient();

        using var unreachable = await client.GetAsync($"http://127.0.0.1:{ReverseProxyTests.FreePort()}/x");
        using var timeout = await client.GetAsync(new Uri(slow.Uri, "/slow"));

        Assert.Equal(HttpStatusCode.BadGateway, unreachable.StatusCode);
        Assert.Contains("unreachable", await unreachable.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.GatewayTimeout, timeout.StatusCode);
        Assert.Contains("did not answer in time", await timeout.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Connect_TunnelsTls_ToALocalHttpsServer()
    {
        await using var backend = await TestBackend.StartAsync(ctx => ctx.Response.WriteAsync("secret over tls " + ctx.Request.Protocol), https: true);
        await using var gw = await GatewayHost.StartAsync(ForwardConfig(new() { ["Gateway:ForwardProxy:ConnectPorts:0"] = backend.Port.ToString() }));
        using var client = gw.CreateForwardProxyClient((_, cert, _, _) => cert?.Thumbprint == TestCertificates.Localhost.Thumbprint);

        var first = await client.GetStringAsync($"https://127.0.0.1:{backend.Port}/one");
        var second = await client.GetStringAsync($"https://127.0.0.1:{backend.Port}/two");

        Assert.StartsWith("secret over tls", first);
        Assert.StartsWith("secret over tls", second);
        Assert.Equal(2, backend.Requests);
    }

    [Fact]
    public async Task Connect_TunnelsPlainTcp_BothWays()
    {
        using var echo = new TcpListener(IPAddress.Loopback, 0);
        echo.Start();
        var echoPort = ((IPEndPoint)echo.LocalEndpoint).Port;
        var echoTask = EchoOnceAsync(echo);
        await using var gw = await GatewayHost.StartAsync(ForwardConfig(new() { ["Gateway:ForwardProxy:ConnectPorts:0"] = echoPort.ToString() }));

        using var tcp = new TcpClient();
        await tcp.ConnectAsync(gw.ProxyEndPoint);
        var stream = tcp.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes($"CONNECT 127.0.0.1:{echoPort} HTTP/1.1\r\nHost: 127.0.0.1:{echoPort}\r\n\r\n"));
        var head = await ReadHeadAsync(stream);
        Assert.StartsWith("HTTP/1.1 200", head);

        var payload = RandomNumberGenerator.GetBytes(200_000);
        var writer = Task.Run(async () =>
        {
            await stream.WriteAsync(payload);
            tcp.Client.Shutdown(SocketShutdown.Send);
        });
        using var received = new MemoryStream();
        await stream.CopyToAsync(received);
        await writer;
        await echoTask;

        Assert.Equal(payload, received.ToArray());
    }

    [Fact]
    public async Task Connect_AfterEarlierRequests_OnAKeepAliveConnection_Tunnels()
    {
        await using var backend = await TestBackend.StartAsync(ctx => { ctx.Response.ContentLength = 5; return ctx.Response.WriteAsync("first"); });
        using var echo = new TcpListener(IPAddress.Loopback, 0);
        echo.Start();
        var echoPort = ((IPEndPoint)echo.LocalEndpoint).Port;
        var echoTask = EchoOnceAsync(echo);
        await using var gw = await GatewayHost.StartAsync(ForwardConfig(new() { ["Gateway:ForwardProxy:ConnectPorts:0"] = echoPort.ToString() }));

        using var tcp = new TcpClient();
        await tcp.ConnectAsync(gw.ProxyEndPoint);
        var stream = tcp.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes($"GET {backend.Uri}x HTTP/1.1\r\nHost: 127.0.0.1:{backend.Port}\r\n\r\n"));
        var first = await ReadHeadAsync(stream);
        Assert.StartsWith("HTTP/1.1 200", first);
        var length = int.Parse(first.Split("\r\n").First(l => l.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase))[15..].Trim());
        var body = new byte[length];
        await stream.ReadExactlyAsync(body);
        Assert.Equal("first", Encoding.ASCII.GetString(body));

        await stream.WriteAsync(Encoding.ASCII.GetBytes($"CONNECT 127.0.0.1:{echoPort} HTTP/1.1\r\nHost: 127.0.0.1:{echoPort}\r\n\r\n"));
        var head = await ReadHeadAsync(stream);
        Assert.StartsWith("HTTP/1.1 200 Connection established", head);
        var payload = RandomNumberGenerator.GetBytes(50_000);
        await stream.WriteAsync(payload);
        var back = new byte[payload.Length];
        await stream.ReadExactlyAsync(back).AsTask().WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(payload, back);

        tcp.Client.Shutdown(SocketShutdown.Send);
        await echoTask.WaitAsync(TimeSpan.FromSeconds(20));
        var rest = new MemoryStream();
        await stream.CopyToAsync(rest).WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(0, rest.Length); // nothing of Kestrel's own CONNECT response leaks into the tunnel
    }

    [Fact]
    public async Task Connect_ToPortNotAllowed_Gets403()
    {
        await using var gw = await GatewayHost.StartAsync(ForwardConfig());
        var (status, body) = await RawConnectAsync(gw, "127.0.0.1:25");
        Assert.StartsWith("HTTP/1.1 403", status);
        Assert.Contains("port 25 is not allowed", body);
    }

    [Fact]
    public async Task Connect_ToAHostMatchingADropRule_Gets403()
    {
        await using var gw = await GatewayHost.StartAsync(ForwardConfig(new()
        {
            ["Gateway:ForwardProxy:ConnectPorts:0"] = "443",
            ["Gateway:Rules:Drop:trackers:Match:Host"] = "*.tracker.example",
        }));
        var (status, body) = await RawConnectAsync(gw, "ads.tracker.example:443");
        Assert.StartsWith("HTTP/1.1 403", status);
        Assert.Contains("blocked by rule 'trackers'", body);
    }

    [Fact]
    public async Task Connect_FromClientNotAllowed_Gets403()
    {
        await using var gw = await GatewayHost.StartAsync(ForwardConfig(new() { ["Gateway:ForwardProxy:AllowedClients:0"] = "192.0.2.0/24" }));
        var (status, _) = await RawConnectAsync(gw, "127.0.0.1:443");
        Assert.StartsWith("HTTP/1.1 403", status);
    }

    [Fact]
    public async Task Connect_CarryingOurVia_IsALoop()
    {
        await using var gw = await GatewayHost.StartAsync(ForwardConfig(new() { ["Gateway:Name"] = "gw-connect-loop" }));
        var (status, _) = await RawConnectAsync(gw, "127.0.0.1:443", "Via: 1.1 gw-connect-loop\r\n");
        Assert.StartsWith("HTTP/1.1 508", status);
    }

    [Fact]
    public async Task Connect_ToUnreachableTarget_Gets502()
    {
        var port = ReverseProxyTests.FreePort();
        await using var gw = await GatewayHost.StartAsync(ForwardConfig(new() { ["Gateway:ForwardProxy:ConnectPorts:0"] = port.ToString() }));
        var (status, body) = await RawConnectAsync(gw, $"127.0.0.1:{port}");
        Assert.StartsWith("HTTP/1.1 502", status);
        Assert.Contains("cannot reach", body);
    }

    [Fact]
    public async Task Connect_Malformed_Gets400_AndPlainHttpStillWorksOnNewConnections()
    {
        await using var backend = await TestBackend.StartAsync(ctx => ctx.Response.WriteAsync("fine"));
        await using var gw = await GatewayHost.StartAsync(ForwardConfig());
        var (status, _) = await RawConnectAsync(gw, "no-port-here");
        Assert.StartsWith("HTTP/1.1 400", status);

        using var client = gw.CreateForwardProxyClient();
        Assert.Equal("fine", await client.GetStringAsync(backend.Uri));
    }

    private static async Task<(string StatusLine, string Body)> RawConnectAsync(GatewayHost gw, string target, string extraHeaders = "")
    {
        using var tcp = new TcpClient();
        await tcp.ConnectAsync(gw.ProxyEndPoint);
        var stream = tcp.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes($"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{extraHeaders}\r\n"));
        using var ms = new MemoryStream();
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(20));
        await stream.CopyToAsync(ms, cts.Token);
        var text = Encoding.UTF8.GetString(ms.ToArray());
        var split = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        return (text[..text.IndexOf("\r\n", StringComparison.Ordinal)], split >= 0 ? text[(split + 4)..] : "");
    }

    /// <summary>A plain TCP echo peer: accepts one connection, sends back what it reads, half-closes at the end.</summary>
    private static async Task EchoOnceAsync(TcpListener listener)
    {
        using var s = await listener.AcceptSocketAsync();
        var buf = new byte[8192];
        int n;
        while ((n = await s.ReceiveAsync(buf)) > 0)
        {
            await s.SendAsync(buf.AsMemory(0, n));
        }
        s.Shutdown(SocketShutdown.Send);
    }

    private static async Task<string> ReadHeadAsync(NetworkStream stream)
    {
        var sb = new StringBuilder();
        var one = new byte[1];
        while (!sb.ToString().EndsWith("\r\n\r\n", StringComparison.Ordinal))
        {
            if (await stream.ReadAsync(one) == 0)
            {
                break;
            }
            sb.Append((char)one[0]);
        }
        return sb.ToString();
    }

    internal static async Task<(int Exit, string Stdout, string Stderr)> Run(string file, string arguments)
    {
        var psi = new ProcessStartInfo(file, arguments) { RedirectStandardOutput = true, RedirectStandardError = true };
        Process process;
        try
        {
            process = Process.Start(psi)!;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            throw new InvalidOperationException($"{file} not found: install the Debian package '{file}' (apt-get install {file})");
        }
        using (process)
        {
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = process.StandardError.ReadToEndAsync();
            await process.WaitForExitAsync();
            return (process.ExitCode, await stdout, await stderr);
        }
    }
}
