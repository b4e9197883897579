using Gateway.Icap.Protocol;
using Gateway.Icap.Server;

namespace Gateway.Icap.Services;

/// <summary>
/// <c>echo</c>: answers with the message it was given. 204 when the client sent <c>Allow: 204</c> (the cheapest answer);
/// otherwise 200 with the same HTTP head and the body streamed back. The URI query <c>prefer</c> picks another legal
/// answer: <c>prefer=200</c> always streams the message back, <c>prefer=206</c> answers 206 with the preview bytes and
/// <c>use-original-body</c> when the client sent <c>Allow: 206</c>.
/// </summary>
public sealed class EchoService : IcapService
{
    public const string ServiceName = "echo";

    public EchoService()
        : base(ServiceName)
    {
    }

    public override IcapServiceDeclaration Declaration { get; } = new()
    {
        Description = "Gateway echo service",
        PreviewSize = 1024,
        Allow204 = true,
        Allow206 = true,
    };

    public override async ValueTask HandleAsync(IcapRequestContext context, CancellationToken cancellationToken)
    {
        var prefer = context.GetQueryValue("prefer");
        if (prefer == "206" && context.HasBody && context.CanRespondPartial)
        {
            var preview = await context.ReadPreviewAsync(cancellationToken: cancellationToken);
            await context.RespondPartialAsync(preview.Length, preview, cancellationToken: cancellationToken);
            return;
        }
        if (prefer != "200" && context.Allows204)
        {
            await context.RespondNoContentAsync(cancellationToken);
            return;
        }
        var body = context.HasBody ? context.Body : null;
        if (context.Method == IcapMethod.Respmod && context.HttpResponse is { } response)
        {
            await context.RespondAsync(response, body, cancellationToken);
        }
        else if (context.HttpRequest is { } request && context.Method == IcapMethod.Reqmod)
        {
            await context.RespondAsync(request, body, cancellationToken);
        }
        else if (body is not null)
        {
            await context.RespondBodyAsync(body, cancellationToken);
        }
        else if (context.CanRespondNoContent)
        {
            await context.RespondNoContentAsync(cancellationToken);
        }
        else
        {
            await context.RespondErrorAsync(400, "Nothing to echo", cancellationToken);
        }
    }
}
