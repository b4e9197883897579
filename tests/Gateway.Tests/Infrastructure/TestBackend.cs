using Microsoft.AspNetCore.Http.Features;
using System.Net;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Gateway.Tests.Infrastructure;

/// <summary>
/// A real Kestrel origin on a free loopback port, answering with a test-supplied handler and counting requests
/// (total and per path). Optionally HTTPS with a self-signed certificate.
/// </summary>
public sealed class TestBackend : IAsyncDisposable
{
    private readonly WebApplication _app;
    private int _requests;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, int> _byPath = new();
    private readonly System.Collections.Concurrent.ConcurrentQueue<RecordedRequest> _recorded = new();

    private TestBackend(WebApplication app) => _app = app;

    public Uri Uri { get; private set; } = null!;
    public int Port => Uri.Port;
    public int Requests => Volatile.Read(ref _requests);
    public int RequestsFor(string pathAndQuery) => _byPath.TryGetValue(pathAndQuery, out var n) ? n : 0;
    public IReadOnlyCollection<RecordedRequest> Recorded => _recorded.ToArray();
    public RecordedRequest? Last => _recorded.LastOrDefault();

    public sealed record RecordedRequest(string Method, string PathAndQuery, IReadOnlyDictionary<string, string> Headers, long BodyLength);

    public static async Task<TestBackend> StartAsync(RequestDelegate handler, bool https = false, bool recordBodies = false)
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = null;
            k.Listen(IPAddress.Loopback, 0, lo =>
            {
                if (https)
                {
                    lo.UseHttps(TestCertificates.Localhost);
                }
            });
        });
        var app = builder.Build();
        var backend = new TestBackend(app);
        app.Use(async (context, next) =>
        {
            Interlocked.Increment(ref backend._requests);
            var key = context.Request.Path + context.Request.QueryString;
            backend._byPath.AddOrUpdate(key, 1, (_, n) => n + 1);
            backend._recorded.Enqueue(new RecordedRequest(context.Request.Method, key,
                context.Request.Headers.ToDictionary(h => h.Key, h => h.Value.ToString(), StringComparer.OrdinalIgnoreCase),
                context.Request.ContentLength ?? -1));
            await next(context);
        });
        app.Run(handler);
        await app.StartAsync();
        var address = app.Services.GetRequiredService<IServer>().Features.GetRequiredFeature<IServerAddressesFeature>().Addresses.First();
        backend.Uri = new Uri(address.Replace("[::]", "127.0.0.1").TrimEnd('/') + "/");
        return backend;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync(new CancellationTokenSource(TimeSpan.FromSeconds(5)).Token);
        await _app.DisposeAsync();
    }
}

/// <summary>A self-signed certificate for 127.0.0.1/localhost, made once per test run.</summary>
public static class TestCertificates
{
    private static readonly Lazy<System.Security.Cryptography.X509Certificates.X509Certificate2> s_localhost = new(Create);

    public static System.Security.Cryptography.X509Certificates.X509Certificate2 Localhost => s_localhost.Value;

    private static System.Security.Cryptography.X509Certificates.X509Certificate2 Create()
    {
        using var key = System.Security.Cryptography.RSA.Create(2048);
        var request = new System.Security.Cryptography.X509Certificates.CertificateRequest("CN=localhost", key,
            System.Security.Cryptography.HashAlgorithmName.SHA256, System.Security.Cryptography.RSASignaturePadding.Pkcs1);
        var san = new System.Security.Cryptography.X509Certificates.SubjectAlternativeNameBuilder();
        san.AddDnsName("localhost");
        san.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(san.Build());
        using var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));
        return System.Security.Cryptography.X509Certificates.X509CertificateLoader.LoadPkcs12(cert.Export(System.Security.Cryptography.X509Certificates.X509ContentType.Pfx), null);
    }
}
