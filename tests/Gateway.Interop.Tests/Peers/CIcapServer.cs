using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Gateway.Interop.Tests.Peers;

/// <summary>
/// A real c-icap (Debian <c>c-icap</c>) in the foreground on a free loopback port, with its config, pid file, control
/// socket, temp dir and logs in a fresh temp directory. Stopped through its control socket, then by killing the pid
/// this class started. A missing binary fails the test naming the Debian package.
/// </summary>
public sealed class CIcapServer : IAsyncDisposable
{
    public const string Binary = "/usr/bin/c-icap";
    private const string ModulesDir = "/usr/lib/x86_64-linux-gnu/c_icap";
    private readonly Process _process;

    private CIcapServer(Process process, string dir, int port)
    {
        _process = process;
        Directory = dir;
        Port = port;
    }

    public string Directory { get; }

    public int Port { get; }

    public string Uri(string service) => $"icap://127.0.0.1:{Port}/{service}";

    /// <summary>Starts c-icap with the echo and ex206 services; with <paramref name="antivirus"/> also ClamAV's virus_scan (alias avscan).</summary>
    public static async Task<CIcapServer> StartAsync(bool antivirus = false)
    {
        if (!File.Exists(Binary)) throw new InvalidOperationException($"{Binary} not found: install the Debian package 'c-icap'");
        if (!System.IO.Directory.Exists(ModulesDir) || !File.Exists(Path.Combine(ModulesDir, "srv_echo.so")))
        {
            throw new InvalidOperationException($"{ModulesDir}/srv_echo.so not found: install the Debian package 'c-icap'");
        }
        if (antivirus)
        {
            if (!File.Exists(Path.Combine(ModulesDir, "virus_scan.so")) || !File.Exists(Path.Combine(ModulesDir, "clamav_mod.so")))
            {
                throw new InvalidOperationException("c-icap's virus_scan/clamav_mod modules not found: install the Debian packages 'libc-icap-mod-virus-scan' and 'clamav'");
            }
            InstallTestSignature();
        }
        var dir = System.IO.Directory.CreateTempSubdirectory("gw-cicap-").FullName;
        foreach (var sub in new[] { "run", "tmp", "log" }) System.IO.Directory.CreateDirectory(Path.Combine(dir, sub));
        // c-icap drops privileges to User c-icap when started as root: everything it writes must be writable by it.
        foreach (var d in new[] { dir, Path.Combine(dir, "run"), Path.Combine(dir, "tmp"), Path.Combine(dir, "log") })
        {
            if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(d, (UnixFileMode)0x1FF);
        }
        var port = FreePort();
        var conf = $"""
            PidFile {dir}/run/c-icap.pid
            CommandsSocket {dir}/run/c-icap.ctl
            Timeout 300
            MaxKeepAliveRequests 100
            KeepAliveTimeout 600
            StartServers 1
            MaxServers 2
            MinSpareThreads 5
            MaxSpareThreads 10
            ThreadsPerChild 10
            MaxRequestsPerChild 0
            Port 127.0.0.1:{port}
            User c-icap
            Group nogroup
            ServerAdmin root@localhost
            ServerName gateway-interop
            TmpDir {dir}/tmp
            MaxMemObject 131072
            DebugLevel 1
            Pipelining on
            SupportBuggyClients off
            ModulesDir {ModulesDir}
            ServicesDir {ModulesDir}
            TemplateDir /usr/share/c_icap/templates/
            TemplateDefaultLanguage en
            LoadMagicFile /etc/c-icap/c-icap.magic
            RemoteProxyUsers off
            ServerLog {dir}/log/server.log
            AccessLog {dir}/log/access.log
            Service echo srv_echo.so
            echo.PreviewSize 1024
            Service ex206 srv_ex206.so

            """;
        if (antivirus)
        {
            conf += """
                Include /etc/c-icap/clamav_mod.conf
                Include /etc/c-icap/virus_scan.conf

                """;
        }
        var confPath = Path.Combine(dir, "c-icap.conf");
        await File.WriteAllTextAsync(confPath, conf);
        var psi = new ProcessStartInfo(Binary, ["-N", "-f", confPath])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        var process = Process.Start(psi)!;
        process.OutputDataReceived += (_, _) => { };
        process.ErrorDataReceived += (_, _) => { };
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        var server = new CIcapServer(process, dir, port);
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(antivirus ? 60 : 15);
        while (DateTime.UtcNow < deadline)
        {
            if (process.HasExited)
            {
                var log = File.Exists(Path.Combine(dir, "log/server.log")) ? await File.ReadAllTextAsync(Path.Combine(dir, "log/server.log")) : "";
                throw new InvalidOperationException($"c-icap exited with {process.ExitCode}: {log}");
            }
            try
            {
                using var probe = new TcpClient();
                await probe.ConnectAsync(IPAddress.Loopback, port);
                return server;
            }
            catch (SocketException)
            {
                await Task.Delay(100);
            }
        }
        await server.DisposeAsync();
        throw new InvalidOperationException("c-icap did not start listening in time");
    }

    /// <summary>
    /// libclamav reads signatures from its compiled-in database directory (/var/lib/clamav); the test signature goes
    /// there. It is the one of ../shared/peers/clamav-test-signature.ndb: a body containing the ASCII text
    /// ICAPPEERTESTMARKER (hex below) is "infected" as IcapPeerTest.Marker. Written here so the tests need no file
    /// from outside the repository.
    /// </summary>
    internal const string TestSignature = "IcapPeerTest.Marker:0:*:4943415050454552544553544d41524b4552\n";

    private static void InstallTestSignature()
    {
        const string target = "/var/lib/clamav/gateway-interop-test.ndb";
        if (!System.IO.Directory.Exists("/var/lib/clamav"))
        {
            throw new InvalidOperationException("/var/lib/clamav not found: install the Debian package 'clamav' (apt-get install clamav libc-icap-mod-virus-scan)");
        }
        if (!File.Exists(target) || File.ReadAllText(target) != TestSignature)
        {
            File.WriteAllText(target, TestSignature);
        }
    }

    public static int FreePort()
    {
        using var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        var port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    public async ValueTask DisposeAsync()
    {
        var ctl = Path.Combine(Directory, "run/c-icap.ctl");
        try
        {
            if (File.Exists(ctl)) await File.WriteAllTextAsync(ctl, "stop");
        }
        catch (IOException)
        {
        }
        if (!_process.WaitForExit(5000))
        {
            try { _process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
            _process.WaitForExit(5000);
        }
        _process.Dispose();
        try { System.IO.Directory.Delete(Directory, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}
