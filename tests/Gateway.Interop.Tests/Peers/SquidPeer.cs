using System.Diagnostics;
using System.Globalization;

namespace Gateway.Interop.Tests.Peers;

/// <summary>
/// Squid (Debian <c>squid</c>) as an ICAP client, on a free loopback port, with its config, logs and pid file in a temp
/// directory. Started with <c>-N</c> (no daemon) and stopped by the pid of the process started here.
/// </summary>
public sealed class SquidPeer : IAsyncDisposable
{
    private readonly Process _process;

    private SquidPeer(Process process, int port, string directory)
    {
        _process = process;
        Port = port;
        Directory = directory;
    }

    public int Port { get; }

    public string Directory { get; }

    public string IcapLog => ReadOrEmpty(Path.Combine(Directory, "icap.log"));

    public string CacheLog => ReadOrEmpty(Path.Combine(Directory, "cache.log"));

    /// <param name="icapConfig">icap_service / adaptation_access lines.</param>
    public static async Task<SquidPeer> StartAsync(string icapConfig)
    {
        var squid = PeerProcess.Require("squid", "squid");
        var dir = Path.Combine(Path.GetTempPath(), "gw-squid-" + Guid.NewGuid().ToString("N")[..8]);
        System.IO.Directory.CreateDirectory(dir);
        // squid drops to the 'proxy' user when started as root: it must write its logs and pid file here
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(dir, (UnixFileMode)0x1FF);
        var port = PeerProcess.FreePort();
        var conf = string.Create(CultureInfo.InvariantCulture, $"""
            http_port 127.0.0.1:{port}
            visible_hostname gateway-interop
            pid_filename {dir}/squid.pid
            cache_effective_user proxy
            cache_log {dir}/cache.log
            access_log stdio:{dir}/access.log squid
            coredump_dir {dir}
            cache deny all
            cache_mem 8 MB
            dns_nameservers 127.0.0.1
            shutdown_lifetime 1 seconds
            pinger_enable off
            acl localnet src 127.0.0.0/8
            http_access allow localnet
            http_access deny all
            request_body_max_size 0
            icap_enable on
            icap_preview_enable on
            icap_persistent_connections on
            icap_send_client_ip on
            icap_service_failure_limit -1
            icap_log stdio:{dir}/icap.log icap_squid
            {icapConfig}

            """);
        var confPath = Path.Combine(dir, "squid.conf");
        await File.WriteAllTextAsync(confPath, conf);
        var psi = new ProcessStartInfo(squid) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "-N", "-f", confPath }) psi.ArgumentList.Add(a);
        var process = Process.Start(psi)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var peer = new SquidPeer(process, port, dir);
        await PeerProcess.WaitForPortAsync(port, TimeSpan.FromSeconds(20), () => $"squid exited={process.HasExited}; cache.log: {peer.CacheLog}");
        return peer;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(10));
            }
        }
        catch (InvalidOperationException)
        {
        }
        _process.Dispose();
        try
        {
            System.IO.Directory.Delete(Directory, recursive: true);
        }
        catch (IOException)
        {
        }
        catch (UnauthorizedAccessException)
        {
        }
    }

    private static string ReadOrEmpty(string path)
    {
        try
        {
            using var s = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite);
            return new StreamReader(s).ReadToEnd();
        }
        catch (IOException)
        {
            return "";
        }
    }
}
