using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;

namespace Gateway.Icap.Client;

/// <summary>Why an ICAP transaction failed on the client side. One taxonomy, mapped to messages in one place.</summary>
public enum IcapClientError
{
    /// <summary>The TCP connection could not be opened (refused, unreachable, connect timeout).</summary>
    ConnectFailed,

    /// <summary>A read or write on the ICAP connection took longer than the I/O timeout.</summary>
    Timeout,

    /// <summary>The service closed the connection before its answer was complete.</summary>
    ConnectionClosed,

    /// <summary>The answer is not valid ICAP (garbage, bad framing, illegal Encapsulated).</summary>
    ProtocolError,

    /// <summary>The service answered with an error status (4xx/5xx) or one the request did not allow.</summary>
    ServiceError,

    /// <summary>The service is marked down (failure limit reached, or OPTIONS failed) and waits for its revival.</summary>
    ServiceDown,

    /// <summary>Reading the original body failed (the origin or the client went away).</summary>
    BodySourceFailed,
}

/// <summary>An ICAP transaction that failed; <see cref="Error"/> says why.</summary>
public sealed class IcapClientException : Exception
{
    public IcapClientException(IcapClientError error, string message, Exception? inner = null, int icapStatus = 0)
        : base(message, inner)
    {
        Error = error;
        IcapStatus = icapStatus;
    }

    public IcapClientError Error { get; }

    /// <summary>The ICAP status of a <see cref="IcapClientError.ServiceError"/>, else 0.</summary>
    public int IcapStatus { get; }

    /// <summary>
    /// When the message could still go on unadapted (Bypass): the original body rebuilt from the replay buffer and the
    /// unread rest of the source. Null when the body was never touched (use the original) or is gone (<see cref="BodyConsumed"/>).
    /// </summary>
    public Stream? OriginalBody { get; internal set; }

    /// <summary>The original body was read past the replay buffer: the message cannot go on unadapted.</summary>
    public bool BodyConsumed { get; internal set; }

    /// <summary>Failures that count towards the service's failure limit (not the origin's or client's fault).</summary>
    public bool CountsAsServiceFailure => Error is not (IcapClientError.BodySourceFailed or IcapClientError.ServiceDown);
}

internal static class IcapClientThrow
{
    [DoesNotReturn, StackTraceHidden]
    public static void Throw(IcapClientError error, string message, Exception? inner = null, int status = 0)
        => throw new IcapClientException(error, message, inner, status);

    [StackTraceHidden]
    public static IcapClientException Create(IcapClientError error, string message, Exception? inner = null) => new(error, message, inner);
}
