using Gateway;

return await GatewayProgram.RunAsync(args);
