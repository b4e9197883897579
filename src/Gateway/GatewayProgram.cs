using Gateway.Configuration;

namespace Gateway;

/// <summary>Entry point: runs the gateway, or one of its commands (<c>healthcheck</c>, ...).</summary>
public static class GatewayProgram
{
    public static async Task<int> RunAsync(string[] args)
    {
        if (args.Length > 0 && Commands.CommandLine.TryGetCommand(args, out var command))
        {
            return await command(args);
        }

        WebApplication app;
        try
        {
            app = GatewayApp.Build(args);
        }
        catch (GatewayConfigurationException ex)
        {
            await Console.Error.WriteLineAsync(ex.Message);
            return 2;
        }

        try
        {
            await app.RunAsync();
            return 0;
        }
        catch (GatewayConfigurationException ex)
        {
            await Console.Error.WriteLineAsync(ex.Message);
            return 2;
        }
        catch (IOException ex) when (ex.InnerException is Microsoft.AspNetCore.Connections.AddressInUseException)
        {
            await Console.Error.WriteLineAsync($"gateway: cannot bind a listener: {ex.Message}");
            return 3;
        }
    }
}
