using System.Text;
using Gateway.Icap.Protocol;
using Gateway.Icap.Server;

namespace Gateway.Icap.Tests.Server;

/// <summary>Reads the whole body, then answers 200 with an HTTP response whose body is the byte count.</summary>
internal sealed class SinkService : IcapService
{
    public SinkService() : base("sink")
    {
    }

    public override async ValueTask HandleAsync(IcapRequestContext context, CancellationToken cancellationToken)
    {
        var buffer = new byte[8192];
        long total = 0;
        int n;
        while ((n = await context.Body.ReadAsync(buffer, cancellationToken)) > 0) total += n;
        await context.RespondHttpAsync(200, "OK", null, Encoding.ASCII.GetBytes(total.ToString(System.Globalization.CultureInfo.InvariantCulture)), cancellationToken);
    }
}

internal sealed class RespmodOnlyService : IcapService
{
    public RespmodOnlyService() : base("respmod-only")
    {
    }

    public override IcapServiceDeclaration Declaration { get; } = new() { Methods = [IcapMethod.Respmod], PreviewSize = null, Allow204 = false };

    protected override ValueTask RespmodAsync(IcapRequestContext context, CancellationToken cancellationToken)
        => context.RespondNoContentAsync(cancellationToken);
}

/// <summary>Waits for <see cref="Release"/> before answering 204: a request in flight.</summary>
internal sealed class SlowService : IcapService
{
    public SlowService() : base("slow")
    {
    }

    public TaskCompletionSource Started { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public TaskCompletionSource Release { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public override async ValueTask HandleAsync(IcapRequestContext context, CancellationToken cancellationToken)
    {
        Started.TrySetResult();
        await Release.Task.WaitAsync(cancellationToken);
        await context.RespondHttpAsync(200, "OK", null, "slow done"u8.ToArray(), cancellationToken);
    }
}

internal sealed class ThrowingService : IcapService
{
    public ThrowingService() : base("throws")
    {
    }

    public override ValueTask HandleAsync(IcapRequestContext context, CancellationToken cancellationToken)
        => throw new InvalidOperationException("boom");
}

internal sealed class SilentService : IcapService
{
    public SilentService() : base("silent")
    {
    }

    public override ValueTask HandleAsync(IcapRequestContext context, CancellationToken cancellationToken) => ValueTask.CompletedTask;
}
