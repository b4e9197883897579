using System.Net;
using System.Text.Json;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.Admin;

public sealed class AdminTests
{
    [Fact]
    public async Task Healthz_AndReadyz_AnswerOnTheAdminListener()
    {
        await using var gw = await GatewayHost.StartAsync();
        using var admin = gw.CreateAdminClient();

        var health = await admin.GetStringAsync("/healthz");
        using var ready = await admin.GetAsync("/readyz");
        using var json = JsonDocument.Parse(await ready.Content.ReadAsStringAsync());

        Assert.Equal("ok\n", health);
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        Assert.Equal("ready", json.RootElement.GetProperty("status").GetString());
        Assert.Equal($"127.0.0.1:{gw.ProxyEndPoint.Port}", json.RootElement.GetProperty("listeners").GetProperty("Proxy").GetString());
    }

    [Fact]
    public async Task AdminPaths_AreNotServedOnTheProxyListener_AndProxyNotOnAdmin()
    {
        await using var gw = await GatewayHost.StartAsync();
        using var proxy = gw.CreateClient();
        using var admin = gw.CreateAdminClient();

        using var onProxy = await proxy.GetAsync("/healthz");
        using var onAdmin = await admin.GetAsync("/some/route");

        Assert.Equal(HttpStatusCode.NotFound, onProxy.StatusCode);
        Assert.Contains("no route", await onProxy.Content.ReadAsStringAsync());
        Assert.Equal(HttpStatusCode.NotFound, onAdmin.StatusCode);
        Assert.Contains("no admin endpoint", await onAdmin.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task HealthcheckCommand_ExitsZero_WhenHealthy_AndNonZero_WhenNot()
    {
        await using var gw = await GatewayHost.StartAsync();
        var root = Directory.CreateTempSubdirectory("gw-hc-").FullName;

        await using var ok = GatewayProcess.Start(root, new Dictionary<string, string?>(), "healthcheck", gw.AdminUri.ToString());
        Assert.Equal(0, await ok.WaitForExitAsync(TimeSpan.FromSeconds(30)));

        await using var bad = GatewayProcess.Start(root, new Dictionary<string, string?>(), "healthcheck", $"http://127.0.0.1:{Proxy.ReverseProxyTests.FreePort()}/");
        Assert.Equal(1, await bad.WaitForExitAsync(TimeSpan.FromSeconds(30)));
    }
}
