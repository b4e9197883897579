using System.Buffers;
using System.Globalization;
using System.Text;

namespace Gateway.Icap.Protocol;

/// <summary>Serializes ICAP heads, encapsulated HTTP heads and chunked framing into an <see cref="IBufferWriter{T}"/>.</summary>
public static class IcapWriter
{
    private static ReadOnlySpan<byte> Crlf => "\r\n"u8;

    /// <summary><c>ICAP/1.0 100 Continue</c> and the empty line.</summary>
    public static ReadOnlySpan<byte> Continue => "ICAP/1.0 100 Continue\r\n\r\n"u8;

    /// <summary>Writes the request line and headers; <c>Encapsulated</c> is written from <see cref="IcapRequestHead.Encapsulated"/>.</summary>
    public static void WriteRequestHead(IBufferWriter<byte> writer, IcapRequestHead head)
    {
        WriteAscii(writer, head.Method.ToToken());
        writer.Write(" "u8);
        WriteAscii(writer, head.Uri);
        writer.Write(" ICAP/1.0\r\n"u8);
        WriteHeaders(writer, head.Headers, skipEncapsulated: true);
        WriteHeader(writer, "Encapsulated", head.Encapsulated.ToString());
        writer.Write(Crlf);
    }

    /// <summary>Writes the status line and headers; <c>Encapsulated</c> is written when <see cref="IcapResponseHead.Encapsulated"/> is set.</summary>
    public static void WriteResponseHead(IBufferWriter<byte> writer, IcapResponseHead head)
    {
        writer.Write("ICAP/1.0 "u8);
        WriteStatus(writer, head.StatusCode);
        writer.Write(" "u8);
        WriteAscii(writer, head.ReasonPhrase);
        writer.Write(Crlf);
        WriteHeaders(writer, head.Headers, skipEncapsulated: true);
        if (head.Encapsulated is { } e) WriteHeader(writer, "Encapsulated", e.ToString());
        writer.Write(Crlf);
    }

    public static int WriteHttpRequestHead(IBufferWriter<byte> writer, HttpRequestHead head)
    {
        var length = GetLength(head);
        WriteAscii(writer, head.Method);
        writer.Write(" "u8);
        WriteAscii(writer, head.Target);
        writer.Write(" "u8);
        WriteAscii(writer, head.Version);
        writer.Write(Crlf);
        WriteHeaders(writer, head.Headers, skipEncapsulated: false);
        writer.Write(Crlf);
        return length;
    }

    public static int WriteHttpResponseHead(IBufferWriter<byte> writer, HttpResponseHead head)
    {
        var length = GetLength(head);
        WriteAscii(writer, head.Version);
        writer.Write(" "u8);
        WriteStatus(writer, head.StatusCode);
        writer.Write(" "u8);
        WriteAscii(writer, head.ReasonPhrase);
        writer.Write(Crlf);
        WriteHeaders(writer, head.Headers, skipEncapsulated: false);
        writer.Write(Crlf);
        return length;
    }

    /// <summary>Bytes <see cref="WriteHttpRequestHead"/> writes: the Encapsulated offset arithmetic.</summary>
    public static int GetLength(HttpRequestHead head)
        => head.Method.Length + head.Target.Length + head.Version.Length + 4 + GetLength(head.Headers) + 2;

    public static int GetLength(HttpResponseHead head)
        => head.Version.Length + 3 + head.ReasonPhrase.Length + 4 + GetLength(head.Headers) + 2;

    private static int GetLength(IcapHeaders headers)
    {
        var n = 0;
        foreach (var (name, value) in headers) n += name.Length + value.Length + 4;
        return n;
    }

    /// <summary>Writes one chunk: size line, data, CRLF. Empty data writes nothing (a 0 chunk ends the body).</summary>
    public static void WriteChunk(IBufferWriter<byte> writer, ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty) return;
        WriteChunkHeader(writer, data.Length);
        writer.Write(data);
        writer.Write(Crlf);
    }

    /// <summary>Writes a chunk-size line; the caller writes <paramref name="size"/> bytes then <see cref="WriteChunkEnd"/>.</summary>
    public static void WriteChunkHeader(IBufferWriter<byte> writer, long size)
    {
        if (size <= 0) throw new ArgumentOutOfRangeException(nameof(size));
        var span = writer.GetSpan(18);
        size.TryFormat(span, out var n, "x", CultureInfo.InvariantCulture);
        span[n++] = (byte)'\r';
        span[n++] = (byte)'\n';
        writer.Advance(n);
    }

    public static void WriteChunkEnd(IBufferWriter<byte> writer) => writer.Write(Crlf);

    /// <summary>The last chunk: <c>0\r\n\r\n</c>, or <c>0; ieof\r\n\r\n</c> when a preview holds the whole body.</summary>
    public static void WriteLastChunk(IBufferWriter<byte> writer, bool ieof = false)
        => writer.Write(ieof ? "0; ieof\r\n\r\n"u8 : "0\r\n\r\n"u8);

    /// <summary>The last chunk of a 206 response: <c>0; use-original-body=N</c>.</summary>
    public static void WriteUseOriginalBody(IBufferWriter<byte> writer, long offset)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        writer.Write("0; use-original-body="u8);
        var span = writer.GetSpan(24);
        offset.TryFormat(span, out var n, default, CultureInfo.InvariantCulture);
        writer.Advance(n);
        writer.Write("\r\n\r\n"u8);
    }

    public static void WriteHeader(IBufferWriter<byte> writer, string name, string value)
    {
        CheckField(name, value);
        WriteAscii(writer, name);
        writer.Write(": "u8);
        WriteAscii(writer, value);
        writer.Write(Crlf);
    }

    private static void WriteHeaders(IBufferWriter<byte> writer, IcapHeaders headers, bool skipEncapsulated)
    {
        foreach (var (name, value) in headers)
        {
            if (skipEncapsulated && name.Equals("Encapsulated", StringComparison.OrdinalIgnoreCase)) continue;
            WriteHeader(writer, name, value);
        }
    }

    private static void CheckField(string name, string value)
    {
        if (name.Length == 0 || name.AsSpan().IndexOfAny(" \t\r\n:") >= 0 || value.AsSpan().IndexOfAny('\r', '\n', '\0') >= 0)
        {
            throw new ArgumentException($"Header field '{name}' has a name or value that would break the framing.");
        }
    }

    private static void WriteStatus(IBufferWriter<byte> writer, int status)
    {
        if (status is < 100 or > 999) throw new ArgumentOutOfRangeException(nameof(status));
        var span = writer.GetSpan(3);
        span[0] = (byte)('0' + status / 100);
        span[1] = (byte)('0' + status / 10 % 10);
        span[2] = (byte)('0' + status % 10);
        writer.Advance(3);
    }

    internal static void WriteAscii(IBufferWriter<byte> writer, string value)
    {
        if (value.Length == 0) return;
        var span = writer.GetSpan(value.Length);
        var n = Encoding.Latin1.GetBytes(value, span);
        writer.Advance(n);
    }
}
