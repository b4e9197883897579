using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Text;

namespace Gateway.Icap.Protocol;

/// <summary>Why a peer's ICAP message was rejected. Mapped to an ICAP status in one place: <see cref="IcapRejection"/>.</summary>
public enum IcapRejectionReason
{
    InvalidRequestLine,
    InvalidStatusLine,
    UnknownMethod,
    UnsupportedVersion,
    InvalidUri,
    InvalidHeaderLine,
    InvalidLineEnding,
    LineTooLong,
    HeadersTooLarge,
    TooManyHeaders,
    MissingEncapsulated,
    InvalidEncapsulated,
    DuplicateEncapsulated,
    EncapsulatedNotAllowed,
    EncapsulatedOffsetMismatch,
    InvalidPreview,
    InvalidHttpRequestLine,
    InvalidHttpStatusLine,
    InvalidChunkSize,
    ChunkSizeTooLarge,
    InvalidChunkExtension,
    InvalidChunkTerminator,
    UnexpectedEndOfMessage,
    RequestTimeout,
}

/// <summary>The single mapping of rejection reasons to ICAP status codes and messages.</summary>
public static class IcapRejection
{
    public static int GetStatusCode(IcapRejectionReason reason) => reason switch
    {
        IcapRejectionReason.UnknownMethod => 501,
        IcapRejectionReason.UnsupportedVersion => 505,
        IcapRejectionReason.HeadersTooLarge or IcapRejectionReason.TooManyHeaders or IcapRejectionReason.LineTooLong
            or IcapRejectionReason.ChunkSizeTooLarge => 413,
        IcapRejectionReason.RequestTimeout => 408,
        _ => 400,
    };

    public static string GetMessage(IcapRejectionReason reason) => reason switch
    {
        IcapRejectionReason.InvalidRequestLine => "Invalid request line",
        IcapRejectionReason.InvalidStatusLine => "Invalid status line",
        IcapRejectionReason.UnknownMethod => "Unknown method",
        IcapRejectionReason.UnsupportedVersion => "Unsupported ICAP version",
        IcapRejectionReason.InvalidUri => "Invalid ICAP URI",
        IcapRejectionReason.InvalidHeaderLine => "Invalid header line",
        IcapRejectionReason.InvalidLineEnding => "Line not terminated by CRLF",
        IcapRejectionReason.LineTooLong => "Line too long",
        IcapRejectionReason.HeadersTooLarge => "Header section too large",
        IcapRejectionReason.TooManyHeaders => "Too many header fields",
        IcapRejectionReason.MissingEncapsulated => "Missing Encapsulated header",
        IcapRejectionReason.InvalidEncapsulated => "Invalid Encapsulated header",
        IcapRejectionReason.DuplicateEncapsulated => "Duplicate Encapsulated header",
        IcapRejectionReason.EncapsulatedNotAllowed => "Encapsulated sections not allowed for this method",
        IcapRejectionReason.EncapsulatedOffsetMismatch => "Encapsulated offsets do not match the data",
        IcapRejectionReason.InvalidPreview => "Invalid Preview header",
        IcapRejectionReason.InvalidHttpRequestLine => "Invalid encapsulated HTTP request line",
        IcapRejectionReason.InvalidHttpStatusLine => "Invalid encapsulated HTTP status line",
        IcapRejectionReason.InvalidChunkSize => "Invalid chunk size",
        IcapRejectionReason.ChunkSizeTooLarge => "Chunk size too large",
        IcapRejectionReason.InvalidChunkExtension => "Invalid chunk extension",
        IcapRejectionReason.InvalidChunkTerminator => "Chunk data not followed by CRLF",
        IcapRejectionReason.UnexpectedEndOfMessage => "Connection closed in the middle of a message",
        IcapRejectionReason.RequestTimeout => "Request timeout",
        _ => reason.ToString(),
    };

    /// <summary>Standard reason phrases of the ICAP status codes.</summary>
    public static string GetReasonPhrase(int statusCode) => statusCode switch
    {
        100 => "Continue",
        200 => "OK",
        204 => "No Content",
        206 => "Partial Content",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "ICAP Service Not Found",
        405 => "Method Not Allowed For Service",
        408 => "Request Timeout",
        413 => "Request Entity Too Large",
        500 => "Server Error",
        501 => "Method Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Overloaded",
        505 => "ICAP Version Not Supported",
        _ => "Unknown",
    };
}

/// <summary>A malformed or over-limit ICAP message. <see cref="StatusCode"/> comes from <see cref="IcapRejection"/>.</summary>
public sealed class IcapProtocolException : Exception
{
    public IcapProtocolException(IcapRejectionReason reason, string? detail = null)
        : base(detail is null ? IcapRejection.GetMessage(reason) : $"{IcapRejection.GetMessage(reason)}: {detail}")
    {
        Reason = reason;
    }

    public IcapRejectionReason Reason { get; }

    public int StatusCode => IcapRejection.GetStatusCode(Reason);
}

internal static class IcapThrow
{
    private const int MaxDetailLength = 64;

    [DoesNotReturn, StackTraceHidden]
    public static void Reject(IcapRejectionReason reason) => throw new IcapProtocolException(reason);

    [DoesNotReturn, StackTraceHidden]
    public static void Reject(IcapRejectionReason reason, ReadOnlySpan<byte> offending)
        => throw new IcapProtocolException(reason, Escape(offending));

    [DoesNotReturn, StackTraceHidden]
    public static void Reject(IcapRejectionReason reason, string detail)
        => throw new IcapProtocolException(reason, detail);

    [DoesNotReturn, StackTraceHidden]
    public static T Reject<T>(IcapRejectionReason reason, ReadOnlySpan<byte> offending)
        => throw new IcapProtocolException(reason, Escape(offending));

    /// <summary>Printable ASCII kept, everything else as \xNN, truncated.</summary>
    internal static string Escape(ReadOnlySpan<byte> bytes)
    {
        var sb = new StringBuilder(Math.Min(bytes.Length, MaxDetailLength) + 8);
        sb.Append('\'');
        var n = Math.Min(bytes.Length, MaxDetailLength);
        for (var i = 0; i < n; i++)
        {
            var b = bytes[i];
            if (b >= 0x20 && b < 0x7f && b != (byte)'\\') sb.Append((char)b);
            else sb.Append("\\x").Append(b.ToString("X2"));
        }
        sb.Append('\'');
        if (bytes.Length > n) sb.Append("...");
        return sb.ToString();
    }
}
