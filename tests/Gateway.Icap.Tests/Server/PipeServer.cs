using System.IO.Pipelines;
using Gateway.Icap.Server;
using Gateway.Icap.Services;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace Gateway.Icap.Tests.Server;

/// <summary>The server core over an in-memory duplex pipe: no sockets.</summary>
internal sealed class PipeServer : IAsyncDisposable
{
    private readonly CancellationTokenSource _close = new();
    private readonly CancellationTokenSource _abort = new();

    public PipeServer(IcapServerOptions? options = null, params IcapService[] extra)
    {
        options ??= new IcapServerOptions();
        var pipeOptions = new PipeOptions(useSynchronizationContext: false);
        var toServer = new Pipe(pipeOptions);
        var toClient = new Pipe(pipeOptions);
        var filter = new FilterService(Options.Create(new FilterServiceOptions { Keywords = { ["k1"] = "casino" } }));
        var services = new IcapServiceRegistry(new IcapService[] { new EchoService(), filter, new SinkService(), new RespmodOnlyService(), new ThrowingService(), new SilentService() }.Concat(extra));
        var core = new IcapServerConnection(new DuplexPipe(toServer.Reader, toClient.Writer), services, options, NullLogger.Instance,
            TimeProvider.System, "test", null, overLimit: false);
        Run = Task.Run(async () =>
        {
            try
            {
                await core.RunAsync(_close.Token, _abort.Token);
            }
            finally
            {
                await toClient.Writer.CompleteAsync();
                await toServer.Reader.CompleteAsync();
            }
        });
        Client = new RawIcapClient(toClient.Reader, toServer.Writer);
    }

    public Task Run { get; }

    public RawIcapClient Client { get; }

    public void RequestClose() => _close.Cancel();

    public async ValueTask DisposeAsync()
    {
        await Client.DisposeAsync();
        await Run.WaitAsync(TimeSpan.FromSeconds(10));
        _abort.Cancel();
    }

    private sealed class DuplexPipe(PipeReader input, PipeWriter output) : IDuplexPipe
    {
        public PipeReader Input { get; } = input;

        public PipeWriter Output { get; } = output;
    }
}
