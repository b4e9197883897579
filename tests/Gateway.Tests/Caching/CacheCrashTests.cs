using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using Gateway.Tests.Infrastructure;
using Microsoft.AspNetCore.Http;

namespace Gateway.Tests.Caching;

/// <summary>
/// The gateway binary as a real child process, killed with SIGKILL while it tees a body to disk, then restarted on
/// the same directory: nothing partial is ever served, leftovers are cleaned, complete entries survive.
/// </summary>
public sealed class CacheCrashTests
{
    private const int SlowLength = 2_000_000;

    [Fact]
    public async Task KilledMidBody_Restart_ServesNoPartialEntry_AndKeepsCompleteOnes()
    {
        var root = Directory.CreateTempSubdirectory("gw-crash-").FullName;
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        await using var backend = await TestBackend.StartAsync(async c =>
        {
            c.Response.Headers.CacheControl = "max-age=600";
            if (c.Request.Path == "/slow")
            {
                c.Response.ContentLength = SlowLength;
                await c.Response.Body.WriteAsync(new byte[500_000]);
                await c.Response.Body.FlushAsync();
                await gate.Task.WaitAsync(TimeSpan.FromSeconds(60));
                await c.Response.Body.WriteAsync(new byte[SlowLength - 500_000]);
                return;
            }
            await c.Response.WriteAsync("complete body");
        });
        GatewayProcess? gw = null;
        try
        {
            gw = await GatewayProcess.StartAsync(root, backend.Uri);
            using (var client = gw.Client())
            {
                Assert.Equal("complete body", await client.GetStringAsync("/done"));
                await gw.WaitForEntriesAsync(1);

                using var response = await client.GetAsync("/slow", HttpCompletionOption.ResponseHeadersRead);
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                var stream = await response.Content.ReadAsStreamAsync();
                var buffer = new byte[64 * 1024];
                var read = 0;
                while (read < 300_000)
                {
                    var n = await stream.ReadAsync(buffer);
                    Assert.True(n > 0);
                    read += n;
                }
                Assert.NotEmpty(Directory.GetFiles(Path.Combine(root, "data", "cache", ".tmp")));
                gw.Kill();
            }
            gate.TrySetResult();

            gw = await GatewayProcess.StartAsync(root, backend.Uri);
            using (var client = gw.Client())
            {
                using var onlyCached = new HttpRequestMessage(HttpMethod.Get, "/slow");
                onlyCached.Headers.CacheControl = new System.Net.Http.Headers.CacheControlHeaderValue { OnlyIfCached = true };
                var miss = await client.SendAsync(onlyCached);
                Assert.Equal(HttpStatusCode.GatewayTimeout, miss.StatusCode);
                Assert.Empty(Directory.GetFiles(Path.Combine(root, "data", "cache", ".tmp")));
                Assert.Single(Directory.GetFiles(Path.Combine(root, "data", "cache"), "*.gwc", SearchOption.AllDirectories));

                var done = await client.GetAsync("/done");
                Assert.Equal("complete body", await done.Content.ReadAsStringAsync());
                Assert.Contains("; hit;", done.CacheStatus());
                Assert.Equal(1, backend.RequestsFor("/done"));

                // The full body, fetched again now, is stored whole.
                var full = await client.GetByteArrayAsync("/slow");
                Assert.Equal(SlowLength, full.Length);
                await gw.WaitForEntriesAsync(2);
            }
        }
        finally
        {
            gate.TrySetResult();
            gw?.Kill();
            Directory.Delete(root, true);
        }
    }

    /// <summary>Gateway.dll (copied beside the tests) run with <c>dotnet</c>, configured by environment variables.</summary>
    private sealed class GatewayProcess
    {
        private readonly Process _process;

        private GatewayProcess(Process process, int proxyPort, int adminPort)
        {
            _process = process;
            ProxyPort = proxyPort;
            AdminPort = adminPort;
        }

        public int ProxyPort { get; }
        public int AdminPort { get; }

        public HttpClient Client()
        {
            var client = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { BaseAddress = new Uri($"http://127.0.0.1:{ProxyPort}/"), Timeout = TimeSpan.FromSeconds(60) };
            client.DefaultRequestHeaders.Host = "app.example";
            return client;
        }

        public static async Task<GatewayProcess> StartAsync(string root, Uri backend)
        {
            var proxyPort = FreePort();
            var adminPort = FreePort();
            var dll = Path.Combine(AppContext.BaseDirectory, "Gateway.dll");
            Assert.True(File.Exists(dll), "Gateway.dll is not beside the tests: " + dll);
            var host = Environment.ProcessPath is { } p && Path.GetFileNameWithoutExtension(p) == "dotnet" ? p : "dotnet";
            var info = new ProcessStartInfo(host, [dll])
            {
                WorkingDirectory = root,
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            info.Environment["Kestrel__Endpoints__Proxy__Url"] = $"http://127.0.0.1:{proxyPort}";
            info.Environment["Kestrel__Endpoints__Admin__Url"] = $"http://127.0.0.1:{adminPort}";
            info.Environment["Gateway__Icap__Server__Listen"] = "127.0.0.1:0";
            info.Environment["Logging__LogLevel__Default"] = "Warning";
            info.Environment["ReverseProxy__Routes__r1__ClusterId"] = "c1";
            info.Environment["ReverseProxy__Routes__r1__Match__Path"] = "{**catch-all}";
            info.Environment["ReverseProxy__Clusters__c1__Destinations__d1__Address"] = backend.ToString();
            var process = Process.Start(info)!;
            process.OutputDataReceived += (_, _) => { };
            process.ErrorDataReceived += (_, _) => { };
            process.BeginOutputReadLine();
            process.BeginErrorReadLine();
            var gw = new GatewayProcess(process, proxyPort, adminPort);
            using var admin = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(2) };
            for (var i = 0; i < 300; i++)
            {
                Assert.False(process.HasExited, $"the gateway exited with code {(process.HasExited ? process.ExitCode : 0)}");
                try
                {
                    var ready = await admin.GetAsync($"http://127.0.0.1:{adminPort}/readyz");
                    if (ready.IsSuccessStatusCode)
                    {
                        return gw;
                    }
                }
                catch (HttpRequestException)
                {
                }
                catch (TaskCanceledException)
                {
                }
                await Task.Delay(100);
            }
            gw.Kill();
            throw new TimeoutException("the gateway did not become ready");
        }

        public async Task WaitForEntriesAsync(int count)
        {
            using var admin = new HttpClient(new SocketsHttpHandler { UseProxy = false });
            for (var i = 0; i < 200; i++)
            {
                var stats = await admin.GetStringAsync($"http://127.0.0.1:{AdminPort}/cache/stats");
                if (stats.Contains($"\"entries\": {count},"))
                {
                    return;
                }
                await Task.Delay(25);
            }
            Assert.Fail($"the cache never held {count} entries");
        }

        /// <summary>SIGKILL (Process.Kill on Unix), then wait for the exit.</summary>
        private bool _killed;

        public void Kill()
        {
            if (_killed)
            {
                return;
            }
            _killed = true;
            if (!_process.HasExited)
            {
                _process.Kill();
                _process.WaitForExit(10_000);
            }
            _process.Dispose();
        }

        private static int FreePort()
        {
            using var listener = new TcpListener(IPAddress.Loopback, 0);
            listener.Start();
            return ((IPEndPoint)listener.LocalEndpoint).Port;
        }
    }
}
