using System.Net.Sockets;
using System.Text;
using Gateway.Configuration;
using Gateway.Proxy;
using Gateway.Tests.Infrastructure;

namespace Gateway.Tests.IcapHost;

public sealed class IcapServerHostingTests
{
    [Fact]
    public async Task Gateway_ServesIcapOptions_OnItsIcapListener()
    {
        await using var gw = await GatewayHost.StartAsync();
        var endpoint = gw.EndPoint(ListenerRegistry.Icap);
        Assert.NotNull(endpoint);

        using var tcp = new TcpClient();
        await tcp.ConnectAsync(endpoint!);
        var stream = tcp.GetStream();
        await stream.WriteAsync(Encoding.ASCII.GetBytes($"OPTIONS icap://127.0.0.1:{endpoint!.Port}/echo ICAP/1.0\r\nHost: 127.0.0.1\r\nEncapsulated: null-body=0\r\n\r\n"));
        var head = new StringBuilder();
        var one = new byte[1];
        while (!head.ToString().EndsWith("\r\n\r\n", StringComparison.Ordinal) && await stream.ReadAsync(one) == 1)
        {
            head.Append((char)one[0]);
        }

        var text = head.ToString();
        Assert.StartsWith("ICAP/1.0 200", text);
        Assert.Contains("Methods: ", text);
        Assert.Contains("ISTag: \"", text);
    }

    [Fact]
    public void BadIcapServerSettings_AreListedWithTheOtherErrors()
    {
        var ex = Assert.Throws<GatewayConfigurationException>(() => GatewayHost.Build(new Dictionary<string, string?>
        {
            ["Gateway:Icap:Server:Listen"] = "nowhere",
            ["Gateway:Icap:Server:MaxConnections"] = "-1",
            ["Gateway:Icap:Server:Colour"] = "red",
        }));
        var keys = ex.Errors.Select(e => e.Key).ToList();
        Assert.Contains("Gateway:Icap:Server:Listen", keys);
        Assert.Contains("Gateway:Icap:Server:MaxConnections", keys);
        Assert.Contains("Gateway:Icap:Server:Colour", keys);
    }

    [Fact]
    public async Task IcapServer_CanBeDisabled()
    {
        await using var gw = await GatewayHost.StartAsync(new Dictionary<string, string?> { ["Gateway:Icap:Server:Enabled"] = "false" });
        Assert.Null(gw.EndPoint(ListenerRegistry.Icap));
    }
}
