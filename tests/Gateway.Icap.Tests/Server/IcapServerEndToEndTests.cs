using System.Diagnostics;
using System.Text;
using Gateway.Icap.Protocol;
using Gateway.Icap.Server;
using Gateway.Icap.Tests.Protocol;
using Microsoft.Extensions.DependencyInjection;

namespace Gateway.Icap.Tests.Server;

/// <summary>The server on a real Kestrel listener over loopback TCP.</summary>
public sealed class IcapServerEndToEndTests
{
    [Fact]
    public async Task ValidTableMessages_AreAnsweredOverTcp_OnOneConnection()
    {
        await using var host = await IcapKestrelHost.StartAsync();
        await using var client = await RawIcapClient.ConnectAsync(host.Port);
        foreach (var m in IcapMessageTable.ValidMessages)
        {
            await client.SendAsync(m.Bytes);
            var r = await client.ReadResponseAsync(m.Method);
            if (r.Status == 100)
            {
                await client.SendAsync("0\r\n\r\n");
                r = await client.ReadResponseAsync(m.Method);
            }
            Assert.True(r.Status is 200 or 204, $"{m.Name}: {r.Status}");
            if (r.Status == 200 && m.Method != IcapMethod.Options) Assert.Equal(m.Body, Encoding.Latin1.GetString(r.Body));
        }
    }

    [Fact]
    public async Task InvalidTableMessages_GetTheirStatusOverTcp_AndTheServerLives()
    {
        await using var host = await IcapKestrelHost.StartAsync();
        foreach (var m in IcapMessageTable.InvalidMessages)
        {
            await using var client = await RawIcapClient.ConnectAsync(host.Port);
            await client.SendAsync(Encoding.Latin1.GetBytes(m.Raw.Replace("/echo ", "/sink ")));
            var r = await client.ReadResponseAsync(null);
            Assert.True(m.Status == r.Status, $"{m.Name}: expected {m.Status}, got {r.Status}");
            Assert.Equal("close", r.Head.Headers["Connection"]);
            Assert.True(await client.IsClosedAsync(), m.Name);
        }
        await using var after = await RawIcapClient.ConnectAsync(host.Port);
        await after.SendAsync(IcapRequests.Options());
        Assert.Equal(200, (await after.ReadResponseAsync(IcapMethod.Options)).Status);
    }

    [Fact]
    public async Task TwoHundredIdleKeepAliveConnections_DoNotDelayANewRequest()
    {
        await using var host = await IcapKestrelHost.StartAsync();
        var idle = new List<RawIcapClient>();
        try
        {
            for (var i = 0; i < 200; i++)
            {
                var c = await RawIcapClient.ConnectAsync(host.Port);
                idle.Add(c);
                await c.SendAsync(IcapRequests.Options());
            }
            foreach (var c in idle) Assert.Equal(200, (await c.ReadResponseAsync(IcapMethod.Options)).Status);
            // one of them is half-way through a request: its body never comes
            await idle[0].SendAsync(IcapRequests.Respmod("echo", "0123456789")[..^20]);

            var sw = Stopwatch.StartNew();
            await using var fresh = await RawIcapClient.ConnectAsync(host.Port);
            await fresh.SendAsync(IcapRequests.Respmod("echo", "fresh"));
            var r = await fresh.ReadResponseAsync();
            sw.Stop();
            Assert.Equal("fresh", r.BodyText);
            Assert.True(sw.ElapsedMilliseconds < 1000, $"took {sw.ElapsedMilliseconds} ms");
            Assert.Equal(201, host.Services.GetRequiredService<Gateway.Icap.Server.IcapConnectionHandler>().ActiveConnections);

            // the idle ones are still served
            await idle[199].SendAsync(IcapRequests.Options());
            Assert.Equal(200, (await idle[199].ReadResponseAsync(IcapMethod.Options)).Status);
        }
        finally
        {
            foreach (var c in idle) await c.DisposeAsync();
        }
    }

    [Fact]
    public async Task PastMaxConnections_Answers503AndCloses()
    {
        await using var host = await IcapKestrelHost.StartAsync(o => o.MaxConnections = 5);
        var open = new List<RawIcapClient>();
        try
        {
            for (var i = 0; i < 5; i++)
            {
                var c = await RawIcapClient.ConnectAsync(host.Port);
                open.Add(c);
                await c.SendAsync(IcapRequests.Options());
                var o = await c.ReadResponseAsync(IcapMethod.Options);
                Assert.Equal(200, o.Status);
                Assert.Equal("5", o.Head.Headers["Max-Connections"]);
            }
            await using (var extra = await RawIcapClient.ConnectAsync(host.Port))
            {
                await extra.SendAsync(IcapRequests.Respmod("echo", "x"));
                var r = await extra.ReadResponseAsync();
                Assert.Equal(503, r.Status);
                Assert.Equal("close", r.Head.Headers["Connection"]);
                Assert.True(await extra.IsClosedAsync());
            }
            // closing one frees a slot
            await open[0].DisposeAsync();
            open.RemoveAt(0);
            var deadline = DateTime.UtcNow.AddSeconds(5);
            var handler = host.Services.GetRequiredService<Gateway.Icap.Server.IcapConnectionHandler>();
            while (handler.ActiveConnections > 4 && DateTime.UtcNow < deadline) await Task.Delay(20);
            await using var again = await RawIcapClient.ConnectAsync(host.Port);
            await again.SendAsync(IcapRequests.Options());
            Assert.Equal(200, (await again.ReadResponseAsync(IcapMethod.Options)).Status);
        }
        finally
        {
            foreach (var c in open) await c.DisposeAsync();
        }
    }

    [Fact]
    public async Task GracefulShutdown_LetsARequestInFlightFinish_AndClosesIdleConnections()
    {
        var slow = new SlowService();
        await using var host = await IcapKestrelHost.StartAsync(services: s => s.AddIcapService(slow));
        await using var idle = await RawIcapClient.ConnectAsync(host.Port);
        await idle.SendAsync(IcapRequests.Options());
        Assert.Equal(200, (await idle.ReadResponseAsync(IcapMethod.Options)).Status);

        await using var busy = await RawIcapClient.ConnectAsync(host.Port);
        await busy.SendAsync(IcapRequests.Respmod("slow", "x"));
        await slow.Started.Task.WaitAsync(TimeSpan.FromSeconds(5));

        var stop = host.StopAsync();
        Assert.True(await idle.IsClosedAsync(TimeSpan.FromSeconds(5)), "idle connection not closed on shutdown");
        Assert.False(stop.IsCompleted);
        slow.Release.SetResult();
        var r = await busy.ReadResponseAsync();
        Assert.Equal(200, r.Status);
        Assert.Equal("slow done", r.BodyText);
        Assert.Equal("close", r.Head.Headers["Connection"]);
        await stop.WaitAsync(TimeSpan.FromSeconds(10));
    }

    [Fact]
    public async Task LargeBody_IsEchoedByteIdentical()
    {
        await using var host = await IcapKestrelHost.StartAsync();
        await using var client = await RawIcapClient.ConnectAsync(host.Port);
        var body = new byte[3 * 1024 * 1024 + 7];
        new Random(42).NextBytes(body);
        var head = Encoding.ASCII.GetBytes($"RESPMOD icap://127.0.0.1/echo ICAP/1.0\r\nHost: x\r\nPreview: 1024\r\nEncapsulated: res-hdr=0, res-body={IcapRequests.ResHdr.Length}\r\n\r\n{IcapRequests.ResHdr}400\r\n");
        await client.SendAsync(head);
        await client.SendAsync(body.AsMemory(0, 1024));
        await client.SendAsync("\r\n0\r\n\r\n");
        Assert.Equal(100, (await client.ReadResponseAsync()).Status);
        var send = Task.Run(async () =>
        {
            for (var offset = 1024; offset < body.Length; offset += 65536)
            {
                var n = Math.Min(65536, body.Length - offset);
                await client.SendAsync(Encoding.ASCII.GetBytes($"{n:x}\r\n"));
                await client.SendAsync(body.AsMemory(offset, n));
                await client.SendAsync("\r\n");
            }
            await client.SendAsync("0\r\n\r\n");
        });
        var r = await client.ReadResponseAsync(timeout: TimeSpan.FromSeconds(30));
        await send;
        Assert.Equal(200, r.Status);
        Assert.True(body.AsSpan().SequenceEqual(r.Body));
    }
}
