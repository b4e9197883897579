// Plain YARP: one catch-all route to one destination, nothing else in the pipeline.
//   dotnet PlainYarp.dll --urls http://127.0.0.1:5001 --Backend http://127.0.0.1:5000/
// (or BENCH_BACKEND=http://127.0.0.1:5000/). Logs warnings and errors only.
using Yarp.ReverseProxy.Configuration;

var builder = WebApplication.CreateBuilder(args);
var backend = builder.Configuration["Backend"] ?? Environment.GetEnvironmentVariable("BENCH_BACKEND");
if (string.IsNullOrWhiteSpace(backend) || !Uri.TryCreate(backend, UriKind.Absolute, out _))
{
    Console.Error.WriteLine("PlainYarp: give the backend address: --Backend http://127.0.0.1:PORT/ (or BENCH_BACKEND)");
    return 2;
}

builder.Logging.SetMinimumLevel(LogLevel.Warning);
builder.WebHost.ConfigureKestrel(kestrel => kestrel.AddServerHeader = false);
builder.Services.AddReverseProxy().LoadFromMemory(
    [new RouteConfig { RouteId = "all", ClusterId = "backend", Match = new RouteMatch { Path = "{**catch-all}" } }],
    [new ClusterConfig
    {
        ClusterId = "backend",
        Destinations = new Dictionary<string, DestinationConfig> { ["d1"] = new() { Address = backend } },
    }]);

var app = builder.Build();
app.MapReverseProxy();
await app.RunAsync();
return 0;
