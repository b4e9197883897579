namespace Gateway.Commands;

/// <summary>
/// Commands of the gateway binary besides running it: <c>healthcheck</c> (for container health checks, no curl
/// needed). Other capabilities add theirs here (e.g. <c>cache</c>).
/// </summary>
internal static class CommandLine
{
    private static readonly Dictionary<string, Func<string[], Task<int>>> s_commands = new(StringComparer.OrdinalIgnoreCase)
    {
        ["healthcheck"] = HealthCheckCommand.RunAsync,
        ["cache"] = Caching.CacheCommand.RunAsync,
        ["rules"] = Gateway.Rules.RulesCommand.RunAsync,
    };

    public static void Register(string name, Func<string[], Task<int>> command) => s_commands[name] = command;

    public static bool TryGetCommand(string[] args, out Func<string[], Task<int>> command)
        => s_commands.TryGetValue(args[0], out command!);
}

/// <summary>
/// <c>gateway healthcheck [url]</c>: GETs the admin listener's <c>/healthz</c> (default from <c>Kestrel:Endpoints:Admin:Url</c>
/// in appsettings.json/environment, else <c>http://127.0.0.1:9901</c>); exit code 0 when it answers 200.
/// </summary>
internal static class HealthCheckCommand
{
    public static async Task<int> RunAsync(string[] args)
    {
        var url = args.Length > 1 ? args[1] : AdminUrlFromConfiguration();
        var target = new Uri(new Uri(url.Replace("0.0.0.0", "127.0.0.1").Replace("[::]", "[::1]").Replace("*", "127.0.0.1").Replace("+", "127.0.0.1")), "/healthz");
        using var client = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(5) };
        try
        {
            using var response = await client.GetAsync(target);
            Console.WriteLine($"{(int)response.StatusCode} {target}");
            return response.IsSuccessStatusCode ? 0 : 1;
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException)
        {
            Console.Error.WriteLine($"unhealthy: {target}: {ex.Message}");
            return 1;
        }
    }

    private static string AdminUrlFromConfiguration()
    {
        var config = new ConfigurationBuilder()
            .AddInMemoryCollection(GatewayApp.Defaults)
            .AddJsonFile(Path.Combine(Directory.GetCurrentDirectory(), "appsettings.json"), optional: true)
            .AddEnvironmentVariables()
            .Build();
        return config["Kestrel:Endpoints:Admin:Url"] ?? "http://127.0.0.1:9901";
    }
}
