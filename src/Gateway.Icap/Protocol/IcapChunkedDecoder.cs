using System.Buffers;
using System.Globalization;
using System.Text;

namespace Gateway.Icap.Protocol;

public enum IcapChunkedReadStatus
{
    /// <summary>Body bytes were returned.</summary>
    Data,

    /// <summary>No complete element is buffered: read more and call again.</summary>
    NeedMoreData,

    /// <summary>The last chunk and trailers were read (end of body, or end of preview unless <see cref="IcapChunkedDecoder.Ieof"/>).</summary>
    Completed,
}

/// <summary>
/// Streaming decoder of an ICAP chunked body (RFC 3507 §4.5, RFC 9112 §7.1): chunk-size lines with extensions
/// (<c>ieof</c>, <c>use-original-body=N</c>), chunk data, and the trailer section after the last chunk.
/// Data is returned as slices of the input, never copied. Each element (size line, data CRLF, trailer line) is
/// consumed only once complete.
/// </summary>
public sealed class IcapChunkedDecoder
{
    private enum State
    {
        Size,
        Data,
        DataEnd,
        Trailer,
        Done,
    }

    private readonly IcapParserLimits _limits;
    private State _state;
    private long _remaining;
    private int _trailerBytes;

    public IcapChunkedDecoder(IcapParserLimits limits) => _limits = limits;

    /// <summary>The last chunk carried <c>ieof</c>: the preview holds the whole body.</summary>
    public bool Ieof { get; private set; }

    /// <summary>The last chunk carried <c>use-original-body=N</c> (206 responses).</summary>
    public long? UseOriginalBody { get; private set; }

    /// <summary>ICAP trailer fields after the last chunk, or null when there were none.</summary>
    public IcapHeaders? Trailers { get; private set; }

    public bool IsCompleted => _state == State.Done;

    /// <summary>Body bytes decoded so far.</summary>
    public long BodyLength { get; private set; }

    /// <summary>After a preview ended without <c>ieof</c> and 100 Continue was sent: the rest of the body follows.</summary>
    public void ContinueAfterPreview()
    {
        if (_state != State.Done || Ieof) throw new InvalidOperationException("The preview has not ended, or ended with ieof.");
        _state = State.Size;
        Trailers = null;
        UseOriginalBody = null;
    }

    /// <summary>Decodes the next element. <paramref name="data"/> is at most <paramref name="maxLength"/> bytes of the input.</summary>
    public IcapChunkedReadStatus Read(ref SequenceReader<byte> reader, long maxLength, out ReadOnlySequence<byte> data)
    {
        data = default;
        while (true)
        {
            switch (_state)
            {
                case State.Size:
                    if (!TryReadSizeLine(ref reader)) return IcapChunkedReadStatus.NeedMoreData;
                    break;
                case State.Data:
                    if (reader.End) return IcapChunkedReadStatus.NeedMoreData;
                    var n = Math.Min(Math.Min(_remaining, reader.Remaining), Math.Max(1, maxLength));
                    data = reader.UnreadSequence.Slice(0, n);
                    reader.Advance(n);
                    _remaining -= n;
                    BodyLength += n;
                    if (_remaining == 0) _state = State.DataEnd;
                    return IcapChunkedReadStatus.Data;
                case State.DataEnd:
                    if (reader.Remaining < 2)
                    {
                        if (reader.TryPeek(out var b) && b != (byte)'\r') IcapThrow.Reject(IcapRejectionReason.InvalidChunkTerminator, [b]);
                        return IcapChunkedReadStatus.NeedMoreData;
                    }
                    if (!reader.IsNext("\r\n"u8, advancePast: true))
                    {
                        reader.TryPeek(out var c);
                        IcapThrow.Reject(IcapRejectionReason.InvalidChunkTerminator, [c]);
                    }
                    _state = State.Size;
                    break;
                case State.Trailer:
                    if (!TryReadTrailerLine(ref reader)) return IcapChunkedReadStatus.NeedMoreData;
                    if (_state == State.Done) return IcapChunkedReadStatus.Completed;
                    break;
                default:
                    return IcapChunkedReadStatus.Completed;
            }
        }
    }

    private bool TryReadSizeLine(ref SequenceReader<byte> reader)
    {
        var probe = reader;
        if (!probe.TryReadTo(out ReadOnlySequence<byte> seq, (byte)'\n', advancePastDelimiter: true))
        {
            if (reader.Remaining >= _limits.MaxLineLength) IcapThrow.Reject(IcapRejectionReason.LineTooLong);
            // Reject a non-hex start early, so garbage is not buffered up to the line limit.
            if (reader.TryPeek(out var first) && !char.IsAsciiHexDigit((char)first)) IcapThrow.Reject(IcapRejectionReason.InvalidChunkSize, [first]);
            return false;
        }
        if (seq.Length + 1 > _limits.MaxLineLength) IcapThrow.Reject(IcapRejectionReason.LineTooLong);
        Span<byte> buffer = stackalloc byte[256];
        scoped ReadOnlySpan<byte> line;
        byte[]? rented = null;
        if (seq.IsSingleSegment) line = seq.FirstSpan;
        else if (seq.Length <= buffer.Length)
        {
            seq.CopyTo(buffer);
            line = buffer[..(int)seq.Length];
        }
        else
        {
            rented = ArrayPool<byte>.Shared.Rent((int)seq.Length);
            seq.CopyTo(rented);
            line = rented.AsSpan(0, (int)seq.Length);
        }
        try
        {
            ParseSizeLine(line);
        }
        finally
        {
            if (rented is not null) ArrayPool<byte>.Shared.Return(rented);
        }
        reader = probe;
        return true;
    }

    private void ParseSizeLine(ReadOnlySpan<byte> line)
    {
        if (line.IsEmpty || line[^1] != (byte)'\r') IcapThrow.Reject(IcapRejectionReason.InvalidLineEnding, line);
        line = line[..^1];
        var i = 0;
        long size = 0;
        while (i < line.Length && char.IsAsciiHexDigit((char)line[i]))
        {
            size = (size << 4) | (long)HexValue(line[i]);
            if (size > _limits.MaxChunkSize) IcapThrow.Reject(IcapRejectionReason.ChunkSizeTooLarge, line);
            i++;
        }
        if (i == 0) IcapThrow.Reject(IcapRejectionReason.InvalidChunkSize, line);
        var ieof = false;
        long? useOriginal = null;
        var rest = line[i..];
        while (true)
        {
            rest = IcapParser.TrimOws(rest);
            if (rest.IsEmpty) break;
            if (rest[0] != (byte)';') IcapThrow.Reject(IcapRejectionReason.InvalidChunkSize, line);
            rest = IcapParser.TrimOws(rest[1..]);
            var end = rest.IndexOf((byte)';');
            var ext = end < 0 ? rest : rest[..end];
            rest = end < 0 ? ReadOnlySpan<byte>.Empty : rest[end..];
            var eq = ext.IndexOf((byte)'=');
            var name = IcapParser.TrimOws(eq < 0 ? ext : ext[..eq]);
            var value = eq < 0 ? ReadOnlySpan<byte>.Empty : IcapParser.TrimOws(ext[(eq + 1)..]);
            if (!IcapParser.IsToken(name)) IcapThrow.Reject(IcapRejectionReason.InvalidChunkExtension, line);
            if (Ascii.EqualsIgnoreCase(name, "ieof"u8))
            {
                if (size != 0 || eq >= 0) IcapThrow.Reject(IcapRejectionReason.InvalidChunkExtension, line);
                ieof = true;
            }
            else if (Ascii.EqualsIgnoreCase(name, "use-original-body"u8))
            {
                if (size != 0 || value.Length is 0 or > 18
                    || !long.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out var offset))
                {
                    IcapThrow.Reject(IcapRejectionReason.InvalidChunkExtension, line);
                    return;
                }
                useOriginal = offset;
            }
            else if (eq >= 0 && value.IsEmpty)
            {
                IcapThrow.Reject(IcapRejectionReason.InvalidChunkExtension, line);
            }
        }
        if (size == 0)
        {
            Ieof = ieof;
            UseOriginalBody = useOriginal;
            _trailerBytes = 0;
            _state = State.Trailer;
        }
        else
        {
            _remaining = size;
            _state = State.Data;
        }
    }

    private bool TryReadTrailerLine(ref SequenceReader<byte> reader)
    {
        var probe = reader;
        if (!probe.TryReadTo(out ReadOnlySequence<byte> seq, (byte)'\n', advancePastDelimiter: true))
        {
            if (reader.Remaining >= _limits.MaxLineLength) IcapThrow.Reject(IcapRejectionReason.LineTooLong);
            if (_trailerBytes + reader.Remaining > _limits.MaxHeaderBytes) IcapThrow.Reject(IcapRejectionReason.HeadersTooLarge);
            return false;
        }
        var length = seq.Length + 1;
        if (length > _limits.MaxLineLength) IcapThrow.Reject(IcapRejectionReason.LineTooLong);
        _trailerBytes += (int)length;
        if (_trailerBytes > _limits.MaxHeaderBytes) IcapThrow.Reject(IcapRejectionReason.HeadersTooLarge);
        if (seq.Length == 0 || IcapParser.LastByte(seq) != (byte)'\r') IcapThrow.Reject(IcapRejectionReason.InvalidLineEnding);
        if (seq.Length == 1)
        {
            reader = probe;
            _state = State.Done;
            return true;
        }
        var line = seq.Slice(0, seq.Length - 1).ToArray();
        Trailers ??= new IcapHeaders();
        if (Trailers.Count >= _limits.MaxHeaderCount) IcapThrow.Reject(IcapRejectionReason.TooManyHeaders);
        IcapParser.ParseHeaderLine(line, Trailers);
        reader = probe;
        return true;
    }

    private static int HexValue(byte b) => b <= '9' ? b - '0' : (b | 0x20) - 'a' + 10;
}
