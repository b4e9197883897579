using System.Buffers;
using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Text;

namespace Gateway.Icap.Protocol;

/// <summary>
/// Parsers of ICAP heads and encapsulated HTTP heads. Each <c>TryParse…</c> returns false when more data is needed, and
/// then has consumed nothing; it throws <see cref="IcapProtocolException"/> for malformed or over-limit input.
/// </summary>
public static class IcapParser
{
    private static ReadOnlySpan<byte> IcapVersion => "ICAP/1.0"u8;

    /// <summary>Parses an ICAP request line, its headers and validates <c>Encapsulated</c> for the method.</summary>
    public static bool TryParseRequestHead(ref SequenceReader<byte> reader, IcapParserLimits limits, [NotNullWhen(true)] out IcapRequestHead? head)
    {
        head = null;
        var copy = reader;
        if (!TryReadHeaderBlock(ref copy, limits, IcapRejectionReason.InvalidRequestLine, out var block)) return false;

        var lines = new SequenceReader<byte>(block);
        IcapMethod method = default;
        string? uri = null;
        var headers = ReadLines(ref lines, limits, (ReadOnlySpan<byte> line) => ParseRequestLine(line, out method, out uri));

        var encapsulated = ReadEncapsulated(headers, method is IcapMethod.Options ? IcapEncapsulated.NullBody : null);
        if (!encapsulated.IsLegalFor(method, isResponse: false))
        {
            IcapThrow.Reject(IcapRejectionReason.EncapsulatedNotAllowed, $"{method.ToToken()} {encapsulated}");
        }
        head = new IcapRequestHead(method, uri!, headers, encapsulated);
        _ = head.Preview; // validates the Preview header
        reader = copy;
        return true;
    }

    /// <summary>
    /// Parses an ICAP status line and headers (client side). When <paramref name="requestMethod"/> is given, a present
    /// <c>Encapsulated</c> is checked against the legal sets for a response to that method; it is required on 200 and 206.
    /// </summary>
    public static bool TryParseResponseHead(ref SequenceReader<byte> reader, IcapParserLimits limits, IcapMethod? requestMethod,
        [NotNullWhen(true)] out IcapResponseHead? head)
    {
        head = null;
        var copy = reader;
        if (!TryReadHeaderBlock(ref copy, limits, IcapRejectionReason.InvalidStatusLine, out var block)) return false;

        var lines = new SequenceReader<byte>(block);
        var status = 0;
        string? reason = null;
        var headers = ReadLines(ref lines, limits, (ReadOnlySpan<byte> line) => ParseStatusLine(line, out status, out reason));

        IcapEncapsulated? encapsulated = null;
        if (status != 100)
        {
            var required = status is 200 or 206 && requestMethod is IcapMethod.Reqmod or IcapMethod.Respmod;
            encapsulated = required ? ReadEncapsulated(headers, null) : ReadOptionalEncapsulated(headers);
            if (encapsulated is { } e && requestMethod is { } m && !e.IsLegalFor(m, isResponse: true))
            {
                IcapThrow.Reject(IcapRejectionReason.EncapsulatedNotAllowed, $"{m.ToToken()} response {e}");
            }
        }
        head = new IcapResponseHead(status, reason!, headers, encapsulated);
        reader = copy;
        return true;
    }

    /// <summary>
    /// Parses the encapsulated HTTP heads named by <paramref name="encapsulated"/> (everything before the body offset).
    /// Returns false, consuming nothing, until all of those bytes are available.
    /// </summary>
    public static bool TryParseEncapsulatedHeads(ref SequenceReader<byte> reader, IcapEncapsulated encapsulated, IcapParserLimits limits,
        out HttpRequestHead? request, out HttpResponseHead? response)
    {
        request = null;
        response = null;
        if (encapsulated.ReqHdrLength > limits.MaxHeaderBytes || encapsulated.ResHdrLength > limits.MaxHeaderBytes)
        {
            IcapThrow.Reject(IcapRejectionReason.HeadersTooLarge, encapsulated.ToString());
        }
        var total = encapsulated.BodyOffset;
        if (!encapsulated.HasReqHdr && !encapsulated.HasResHdr)
        {
            if (total != 0) IcapThrow.Reject(IcapRejectionReason.EncapsulatedOffsetMismatch, encapsulated.ToString());
            return true;
        }
        if (reader.Remaining < total) return false;

        var section = reader.UnreadSequence.Slice(0, total);
        if (encapsulated.HasReqHdr)
        {
            var part = new SequenceReader<byte>(section.Slice(encapsulated.ReqHdr, encapsulated.ReqHdrLength));
            request = ParseHttpRequestHead(ref part, limits);
        }
        if (encapsulated.HasResHdr)
        {
            var part = new SequenceReader<byte>(section.Slice(encapsulated.ResHdr, encapsulated.ResHdrLength));
            response = ParseHttpResponseHead(ref part, limits);
        }
        reader.Advance(total);
        return true;
    }

    private static HttpRequestHead ParseHttpRequestHead(ref SequenceReader<byte> part, IcapParserLimits limits)
    {
        var copy = part;
        if (!TryReadHeaderBlock(ref copy, limits, IcapRejectionReason.InvalidHttpRequestLine, out var block) || !copy.End)
        {
            IcapThrow.Reject(IcapRejectionReason.EncapsulatedOffsetMismatch, "req-hdr");
        }
        var lines = new SequenceReader<byte>(block);
        string? method = null, target = null, version = null;
        var headers = ReadLines(ref lines, limits, (ReadOnlySpan<byte> line) => ParseHttpRequestLine(line, out method, out target, out version));
        return new HttpRequestHead(method!, target!, version!, headers);
    }

    private static HttpResponseHead ParseHttpResponseHead(ref SequenceReader<byte> part, IcapParserLimits limits)
    {
        var copy = part;
        if (!TryReadHeaderBlock(ref copy, limits, IcapRejectionReason.InvalidHttpStatusLine, out var block) || !copy.End)
        {
            IcapThrow.Reject(IcapRejectionReason.EncapsulatedOffsetMismatch, "res-hdr");
        }
        var lines = new SequenceReader<byte>(block);
        string? version = null, reason = null;
        var status = 0;
        var headers = ReadLines(ref lines, limits, (ReadOnlySpan<byte> line) => ParseHttpStatusLine(line, out version, out status, out reason));
        return new HttpResponseHead(version!, status, reason!, headers);
    }

    /// <summary>
    /// Finds a complete header block (start line, header lines, empty line) while enforcing the limits on line length,
    /// header bytes and header count. Advances <paramref name="reader"/> past it only when it is complete.
    /// </summary>
    internal static bool TryReadHeaderBlock(ref SequenceReader<byte> reader, IcapParserLimits limits, IcapRejectionReason emptyStartLine,
        out ReadOnlySequence<byte> block)
    {
        block = default;
        var scan = reader;
        var start = scan.Position;
        long total = 0;
        var lineCount = 0;
        while (true)
        {
            if (!scan.TryReadTo(out ReadOnlySequence<byte> line, (byte)'\n', advancePastDelimiter: true))
            {
                var rest = scan.Remaining;
                if (rest > limits.MaxLineLength) IcapThrow.Reject(IcapRejectionReason.LineTooLong);
                if (total + rest > limits.MaxHeaderBytes) IcapThrow.Reject(IcapRejectionReason.HeadersTooLarge);
                return false;
            }
            var length = line.Length + 1;
            if (length > limits.MaxLineLength) IcapThrow.Reject(IcapRejectionReason.LineTooLong);
            total += length;
            if (total > limits.MaxHeaderBytes) IcapThrow.Reject(IcapRejectionReason.HeadersTooLarge);
            if (line.Length == 0 || LastByte(line) != (byte)'\r') IcapThrow.Reject(IcapRejectionReason.InvalidLineEnding, Head(line));
            if (line.Length == 1)
            {
                if (lineCount == 0) IcapThrow.Reject(emptyStartLine);
                block = reader.Sequence.Slice(start, scan.Position);
                reader = scan;
                return true;
            }
            if (++lineCount > limits.MaxHeaderCount + 1) IcapThrow.Reject(IcapRejectionReason.TooManyHeaders);
        }
    }

    private delegate void StartLineParser(ReadOnlySpan<byte> line);

    /// <summary>Reads a complete block found by <see cref="TryReadHeaderBlock"/>: the start line, then header fields.</summary>
    private static IcapHeaders ReadLines(ref SequenceReader<byte> lines, IcapParserLimits limits, StartLineParser startLine)
    {
        byte[]? rented = null;
        try
        {
            var first = true;
            var headers = new IcapHeaders();
            while (lines.TryReadTo(out ReadOnlySequence<byte> seq, (byte)'\n', advancePastDelimiter: true))
            {
                ReadOnlySpan<byte> line;
                if (seq.IsSingleSegment)
                {
                    line = seq.FirstSpan;
                }
                else
                {
                    if (rented is null || rented.Length < seq.Length)
                    {
                        if (rented is not null) ArrayPool<byte>.Shared.Return(rented);
                        rented = ArrayPool<byte>.Shared.Rent((int)seq.Length);
                    }
                    seq.CopyTo(rented);
                    line = rented.AsSpan(0, (int)seq.Length);
                }
                line = line[..^1]; // CR, checked by TryReadHeaderBlock
                if (line.IsEmpty) break;
                if (first)
                {
                    startLine(line);
                    first = false;
                }
                else
                {
                    ParseHeaderLine(line, headers);
                }
            }
            _ = limits;
            return headers;
        }
        finally
        {
            if (rented is not null) ArrayPool<byte>.Shared.Return(rented);
        }
    }

    /// <summary>Parses one <c>name: value</c> field into <paramref name="headers"/> (trailers use it too).</summary>
    internal static void ParseHeaderLine(ReadOnlySpan<byte> line, IcapHeaders headers)
    {
        var colon = line.IndexOf((byte)':');
        if (colon <= 0) IcapThrow.Reject(IcapRejectionReason.InvalidHeaderLine, line);
        var name = line[..colon];
        if (!IsToken(name)) IcapThrow.Reject(IcapRejectionReason.InvalidHeaderLine, line);
        var value = TrimOws(line[(colon + 1)..]);
        foreach (var b in value)
        {
            if ((b < 0x20 && b != (byte)'\t') || b == 0x7f) IcapThrow.Reject(IcapRejectionReason.InvalidHeaderLine, line);
        }
        headers.Add(KnownHeaderNames.Get(name), Encoding.Latin1.GetString(value));
    }

    private static void ParseRequestLine(ReadOnlySpan<byte> line, out IcapMethod method, out string uri)
    {
        var sp1 = line.IndexOf((byte)' ');
        var sp2 = line.LastIndexOf((byte)' ');
        if (sp1 <= 0 || sp2 == sp1) IcapThrow.Reject(IcapRejectionReason.InvalidRequestLine, line);
        var token = line[..sp1];
        var target = line[(sp1 + 1)..sp2];
        var version = line[(sp2 + 1)..];
        if (!IsToken(token)) IcapThrow.Reject(IcapRejectionReason.InvalidRequestLine, line);
        CheckVersion(version, line, IcapRejectionReason.InvalidRequestLine);

        if (token.SequenceEqual("REQMOD"u8)) method = IcapMethod.Reqmod;
        else if (token.SequenceEqual("RESPMOD"u8)) method = IcapMethod.Respmod;
        else if (token.SequenceEqual("OPTIONS"u8)) method = IcapMethod.Options;
        else
        {
            method = default;
            IcapThrow.Reject(IcapRejectionReason.UnknownMethod, token);
        }

        if (target.IsEmpty || !IsVisible(target)) IcapThrow.Reject(IcapRejectionReason.InvalidUri, target);
        if (!(target[0] == (byte)'/' || StartsWithIgnoreCase(target, "icap://"u8) || StartsWithIgnoreCase(target, "icaps://"u8)))
        {
            IcapThrow.Reject(IcapRejectionReason.InvalidUri, target);
        }
        uri = Encoding.Latin1.GetString(target);
    }

    private static void ParseStatusLine(ReadOnlySpan<byte> line, out int status, out string reason)
    {
        var sp = line.IndexOf((byte)' ');
        if (sp <= 0) IcapThrow.Reject(IcapRejectionReason.InvalidStatusLine, line);
        CheckVersion(line[..sp], line, IcapRejectionReason.InvalidStatusLine);
        var rest = line[(sp + 1)..];
        if (!TryParseStatus(rest, out status) || (rest.Length > 3 && rest[3] != (byte)' '))
        {
            IcapThrow.Reject(IcapRejectionReason.InvalidStatusLine, line);
        }
        reason = rest.Length > 4 ? Encoding.Latin1.GetString(rest[4..]) : string.Empty;
    }

    private static void ParseHttpRequestLine(ReadOnlySpan<byte> line, out string method, out string target, out string version)
    {
        var sp1 = line.IndexOf((byte)' ');
        var sp2 = line.LastIndexOf((byte)' ');
        if (sp1 <= 0 || sp2 == sp1) IcapThrow.Reject(IcapRejectionReason.InvalidHttpRequestLine, line);
        var m = line[..sp1];
        var t = line[(sp1 + 1)..sp2];
        var v = line[(sp2 + 1)..];
        if (!IsToken(m) || t.IsEmpty || !IsVisible(t) || !IsHttpVersion(v)) IcapThrow.Reject(IcapRejectionReason.InvalidHttpRequestLine, line);
        method = Encoding.Latin1.GetString(m);
        target = Encoding.Latin1.GetString(t);
        version = Encoding.Latin1.GetString(v);
    }

    private static void ParseHttpStatusLine(ReadOnlySpan<byte> line, out string version, out int status, out string reason)
    {
        var sp = line.IndexOf((byte)' ');
        if (sp <= 0 || !IsHttpVersion(line[..sp])) IcapThrow.Reject(IcapRejectionReason.InvalidHttpStatusLine, line);
        var rest = line[(sp + 1)..];
        if (!TryParseStatus(rest, out status) || (rest.Length > 3 && rest[3] != (byte)' '))
        {
            IcapThrow.Reject(IcapRejectionReason.InvalidHttpStatusLine, line);
        }
        version = Encoding.Latin1.GetString(line[..sp]);
        reason = rest.Length > 4 ? Encoding.Latin1.GetString(rest[4..]) : string.Empty;
    }

    private static void CheckVersion(ReadOnlySpan<byte> version, ReadOnlySpan<byte> line, IcapRejectionReason malformed)
    {
        if (version.SequenceEqual(IcapVersion)) return;
        if (version.Length >= 8 && version.StartsWith("ICAP/"u8) && IsDigits(version[5..]))
        {
            IcapThrow.Reject(IcapRejectionReason.UnsupportedVersion, version);
        }
        IcapThrow.Reject(malformed, line);
    }

    private static bool IsDigits(ReadOnlySpan<byte> v)
    {
        // "1.0"-like: digits '.' digits
        var dot = v.IndexOf((byte)'.');
        if (dot <= 0 || dot == v.Length - 1) return false;
        foreach (var b in v[..dot]) if (!char.IsAsciiDigit((char)b)) return false;
        foreach (var b in v[(dot + 1)..]) if (!char.IsAsciiDigit((char)b)) return false;
        return true;
    }

    private static bool IsHttpVersion(ReadOnlySpan<byte> v) => v.Length >= 6 && v.StartsWith("HTTP/"u8) && IsDigits(v[5..]);

    private static bool TryParseStatus(ReadOnlySpan<byte> rest, out int status)
    {
        status = 0;
        if (rest.Length < 3) return false;
        for (var i = 0; i < 3; i++)
        {
            if (!char.IsAsciiDigit((char)rest[i])) return false;
            status = status * 10 + (rest[i] - '0');
        }
        return status >= 100;
    }

    private static IcapEncapsulated ReadEncapsulated(IcapHeaders headers, IcapEncapsulated? whenMissing)
    {
        var e = ReadOptionalEncapsulated(headers);
        if (e is { } value) return value;
        if (whenMissing is { } missing) return missing;
        IcapThrow.Reject(IcapRejectionReason.MissingEncapsulated);
        return default;
    }

    private static IcapEncapsulated? ReadOptionalEncapsulated(IcapHeaders headers)
    {
        string? value = null;
        foreach (var (name, v) in headers)
        {
            if (!name.Equals("Encapsulated", StringComparison.OrdinalIgnoreCase)) continue;
            if (value is not null) IcapThrow.Reject(IcapRejectionReason.DuplicateEncapsulated);
            value = v;
        }
        return value is null ? null : IcapEncapsulated.Parse(value);
    }

    internal static ReadOnlySpan<byte> TrimOws(ReadOnlySpan<byte> s)
    {
        var start = 0;
        var end = s.Length;
        while (start < end && (s[start] == (byte)' ' || s[start] == (byte)'\t')) start++;
        while (end > start && (s[end - 1] == (byte)' ' || s[end - 1] == (byte)'\t')) end--;
        return s[start..end];
    }

    internal static bool IsToken(ReadOnlySpan<byte> s)
    {
        if (s.IsEmpty) return false;
        foreach (var b in s)
        {
            if (b <= 0x20 || b >= 0x7f) return false;
            if ("\"(),/:;<=>?@[\\]{}"u8.Contains(b)) return false;
        }
        return true;
    }

    private static bool IsVisible(ReadOnlySpan<byte> s)
    {
        foreach (var b in s)
        {
            if (b <= 0x20 || b >= 0x7f) return false;
        }
        return true;
    }

    private static bool StartsWithIgnoreCase(ReadOnlySpan<byte> s, ReadOnlySpan<byte> prefix)
    {
        if (s.Length < prefix.Length) return false;
        for (var i = 0; i < prefix.Length; i++)
        {
            if ((s[i] | 0x20) != prefix[i]) return false;
        }
        return true;
    }

    internal static byte LastByte(in ReadOnlySequence<byte> s) => s.Slice(s.Length - 1).FirstSpan[0];

    private static ReadOnlySpan<byte> Head(in ReadOnlySequence<byte> s) => s.FirstSpan.Length > 64 ? s.FirstSpan[..64] : s.FirstSpan;

    internal static string ToInvariant(long value) => value.ToString(CultureInfo.InvariantCulture);
}

/// <summary>Interned strings for the header names seen on nearly every message (exact-case match, else a new string).</summary>
internal static class KnownHeaderNames
{
    private static readonly string[] s_names =
    [
        "Host", "Allow", "Preview", "Encapsulated", "Connection", "ISTag", "X-Client-IP", "Date", "Server", "Via",
        "Content-Length", "Content-Type", "Content-Encoding", "Transfer-Encoding", "Cache-Control", "Last-Modified",
        "User-Agent", "Accept", "Accept-Encoding", "Accept-Language", "Cookie", "Set-Cookie", "Expires", "ETag",
        "Location", "Authorization", "Referer", "Pragma", "Age", "Vary", "Methods", "Service", "Options-TTL",
        "Max-Connections", "Transfer-Preview", "Transfer-Ignore", "Transfer-Complete", "X-Forwarded-For",
    ];

    private static readonly byte[][] s_bytes = s_names.Select(Encoding.ASCII.GetBytes).ToArray();

    public static string Get(ReadOnlySpan<byte> name)
    {
        for (var i = 0; i < s_bytes.Length; i++)
        {
            var known = s_bytes[i];
            if (known.Length == name.Length && known[0] == name[0] && name.SequenceEqual(known)) return s_names[i];
        }
        return Encoding.Latin1.GetString(name);
    }
}
