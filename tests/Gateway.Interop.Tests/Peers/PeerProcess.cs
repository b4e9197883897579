using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Gateway.Interop.Tests.Peers;

/// <summary>Finds peer binaries (failing with the Debian package to install) and runs them.</summary>
public static class PeerProcess
{
    private static readonly string[] ExtraDirs = ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/bin", "/usr/local/sbin"];

    /// <summary>The full path of <paramref name="binary"/>; fails the test when missing (never skips).</summary>
    public static string Require(string binary, string debianPackage)
    {
        var dirs = (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries).Concat(ExtraDirs);
        foreach (var dir in dirs)
        {
            var path = Path.Combine(dir, binary);
            if (File.Exists(path)) return path;
        }
        Assert.Fail($"{binary} not found: apt-get install {debianPackage}");
        return "";
    }

    public sealed record Result(int ExitCode, string Output);

    /// <summary>Runs to completion (killing it after <paramref name="timeout"/>), stdout and stderr merged.</summary>
    public static async Task<Result> RunAsync(string file, IEnumerable<string> args, TimeSpan? timeout = null)
    {
        var psi = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var a in args) psi.ArgumentList.Add(a);
        using var process = Process.Start(psi)!;
        var output = new StringBuilder();
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(30));
        try
        {
            await process.WaitForExitAsync(cts.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            Assert.Fail($"{file} {string.Join(' ', psi.ArgumentList)} timed out; output: {await stdout}{await stderr}");
        }
        output.Append(await stdout).Append(await stderr);
        return new Result(process.ExitCode, output.ToString());
    }

    public static int FreePort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    public static async Task WaitForPortAsync(int port, TimeSpan timeout, Func<string>? diagnostics = null)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                using var client = new TcpClient();
                await client.ConnectAsync(IPAddress.Loopback, port);
                return;
            }
            catch (SocketException)
            {
                await Task.Delay(100);
            }
        }
        Assert.Fail($"nothing listens on 127.0.0.1:{port} after {timeout}. {diagnostics?.Invoke()}");
    }
}
