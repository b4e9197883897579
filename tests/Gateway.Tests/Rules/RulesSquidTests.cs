using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Gateway.Proxy;
using Gateway.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;

namespace Gateway.Tests.Rules;

/// <summary>
/// Squid as the forward proxy, adapting through the gateway's ICAP service <c>rules</c> (REQMOD and RESPMOD):
/// Squid users get the same drop and rewrite rules.
/// </summary>
public sealed class RulesSquidTests
{
    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    [Fact]
    public async Task Squid_AppliesDropAndRewriteRules_ThroughTheRulesIcapService()
    {
        await using var backend = await TestBackend.StartAsync(c =>
        {
            c.Response.ContentType = "text/html; charset=utf-8";
            return c.Response.WriteAsync($"<p>hello world from {c.Request.Path}{c.Request.QueryString} ua={c.Request.Headers["X-Via-Rules"]}</p>");
        });
        var config = new Dictionary<string, string?>
        {
            ["Gateway:Rules:Drop:ads:Match:Path"] = "/ads/*",
            ["Gateway:Rules:Drop:ads:Match:Port"] = backend.Port.ToString(),
            ["Gateway:Rules:Rewrite:site:Match:Port"] = backend.Port.ToString(),
            ["Gateway:Rules:Rewrite:site:Request:Url:0:Pattern"] = "/old/",
            ["Gateway:Rules:Rewrite:site:Request:Url:0:Replacement"] = "/new/",
            ["Gateway:Rules:Rewrite:site:Request:Headers:Set:X-Via-Rules"] = "yes",
            ["Gateway:Rules:Rewrite:body:Match:Port"] = backend.Port.ToString(),
            ["Gateway:Rules:Rewrite:body:Match:ContentType"] = "text/html",
            ["Gateway:Rules:Rewrite:body:Response:Body:0:Pattern"] = "world",
            ["Gateway:Rules:Rewrite:body:Response:Body:0:Replacement"] = "squid",
            ["Gateway:Rules:Rewrite:body:Response:Headers:Set:X-Filtered"] = "1",
        };
        await using var gw = await GatewayHost.StartAsync(config);
        var icapPort = gw.EndPoint(ListenerRegistry.Icap)!.Port;

        var dir = Directory.CreateTempSubdirectory("gw-rules-squid-").FullName;
        foreach (var sub in new[] { "run", "log", "cache" })
        {
            Directory.CreateDirectory(Path.Combine(dir, sub));
        }
        // Squid switches to its effective user: let it write its logs and pid file.
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(dir, (UnixFileMode)0b111_111_111);
            foreach (var sub in new[] { "run", "log", "cache" })
            {
                File.SetUnixFileMode(Path.Combine(dir, sub), (UnixFileMode)0b111_111_111);
            }
        }
        var squidPort = FreePort();
        await File.WriteAllTextAsync(Path.Combine(dir, "squid.conf"), $"""
            http_port 127.0.0.1:{squidPort}
            visible_hostname rules-squid-test
            pid_filename {dir}/run/squid.pid
            cache_effective_user proxy
            cache_log {dir}/log/cache.log
            access_log stdio:{dir}/log/access.log squid
            coredump_dir {dir}/cache
            cache deny all
            cache_mem 8 MB
            dns_nameservers 127.0.0.1
            shutdown_lifetime 1 seconds
            pinger_enable off
            acl localnet src 127.0.0.0/8
            http_access allow localnet
            http_access deny all
            icap_enable on
            icap_preview_enable on
            icap_persistent_connections on
            icap_send_client_ip on
            icap_service rules_req reqmod_precache icap://127.0.0.1:{icapPort}/rules bypass=off
            icap_service rules_resp respmod_precache icap://127.0.0.1:{icapPort}/rules bypass=off
            adaptation_access rules_req allow all
            adaptation_access rules_resp allow all
            """);

        var psi = new ProcessStartInfo("squid") { UseShellExecute = false, RedirectStandardError = true, RedirectStandardOutput = true };
        foreach (var a in new[] { "-N", "-f", Path.Combine(dir, "squid.conf") })
        {
            psi.ArgumentList.Add(a);
        }
        Process squid;
        try
        {
            squid = Process.Start(psi)!;
        }
        catch (System.ComponentModel.Win32Exception ex)
        {
            throw new Xunit.Sdk.XunitException("squid is not installed (Debian package: squid): " + ex.Message);
        }
        try
        {
            await WaitForPortAsync(squidPort, squid, dir);
            using var client = new HttpClient(new HttpClientHandler { Proxy = new WebProxy($"http://127.0.0.1:{squidPort}"), UseProxy = true })
            {
                Timeout = TimeSpan.FromSeconds(30),
            };

            using (var dropped = await client.GetAsync($"http://127.0.0.1:{backend.Port}/ads/banner.gif"))
            {
                Assert.Equal(HttpStatusCode.OK, dropped.StatusCode);
                Assert.Equal("image/gif", dropped.Content.Headers.ContentType!.MediaType);
                Assert.Equal(43, (await dropped.Content.ReadAsByteArrayAsync()).Length);
            }
            Assert.Equal(0, backend.RequestsFor("/ads/banner.gif"));

            using (var page = await client.GetAsync($"http://127.0.0.1:{backend.Port}/old/page?x=1"))
            {
                Assert.Equal(HttpStatusCode.OK, page.StatusCode);
                Assert.Equal("<p>hello squid from /new/page?x=1 ua=yes</p>", await page.Content.ReadAsStringAsync());
                Assert.Equal("1", page.Headers.GetValues("X-Filtered").Single());
            }
            Assert.Equal(1, backend.RequestsFor("/new/page?x=1"));
            Assert.Equal(0, backend.RequestsFor("/old/page?x=1"));
        }
        finally
        {
            if (!squid.HasExited)
            {
                squid.Kill(); // only the squid this test started, by its own process
                await squid.WaitForExitAsync();
            }
            squid.Dispose();
            try { Directory.Delete(dir, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
        }
    }

    private static async Task WaitForPortAsync(int port, Process squid, string dir)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (DateTime.UtcNow < deadline)
        {
            if (squid.HasExited)
            {
                var log = File.Exists(Path.Combine(dir, "log", "cache.log")) ? await File.ReadAllTextAsync(Path.Combine(dir, "log", "cache.log")) : "";
                throw new Xunit.Sdk.XunitException($"squid exited ({squid.ExitCode}): {await squid.StandardError.ReadToEndAsync()} {log}");
            }
            try
            {
                using var tcp = new TcpClient();
                await tcp.ConnectAsync(IPAddress.Loopback, port);
                return;
            }
            catch (SocketException)
            {
                await Task.Delay(100);
            }
        }
        throw new Xunit.Sdk.XunitException("squid did not listen on port " + port);
    }
}
