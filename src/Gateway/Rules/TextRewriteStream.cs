using System.IO.Compression;
using System.Text;
using System.Text.RegularExpressions;

namespace Gateway.Rules;

/// <summary>Content types, charsets and content codings for body rewriting.</summary>
internal static class TextCodec
{
    /// <summary>Text content types whose bodies can be rewritten: text/*, JSON, XML, JavaScript and their +suffixes.</summary>
    public static bool IsText(ReadOnlySpan<char> mediaType)
        => mediaType.StartsWith("text/", StringComparison.OrdinalIgnoreCase)
        || mediaType.Equals("application/json", StringComparison.OrdinalIgnoreCase)
        || mediaType.Equals("application/javascript", StringComparison.OrdinalIgnoreCase)
        || mediaType.Equals("application/ecmascript", StringComparison.OrdinalIgnoreCase)
        || mediaType.Equals("application/xml", StringComparison.OrdinalIgnoreCase)
        || mediaType.Equals("application/xhtml+xml", StringComparison.OrdinalIgnoreCase)
        || mediaType.Equals("application/x-www-form-urlencoded", StringComparison.OrdinalIgnoreCase)
        || mediaType.Equals("image/svg+xml", StringComparison.OrdinalIgnoreCase)
        || mediaType.EndsWith("+json", StringComparison.OrdinalIgnoreCase)
        || mediaType.EndsWith("+xml", StringComparison.OrdinalIgnoreCase);

    /// <summary>The encoding named by the Content-Type's charset; UTF-8 when none; null when .NET does not know it.</summary>
    public static Encoding? EncodingOf(string? contentType)
    {
        if (string.IsNullOrEmpty(contentType) || !System.Net.Http.Headers.MediaTypeHeaderValue.TryParse(contentType, out var parsed) || string.IsNullOrEmpty(parsed.CharSet))
        {
            return new UTF8Encoding(encoderShouldEmitUTF8Identifier: false);
        }
        try
        {
            var encoding = Encoding.GetEncoding(parsed.CharSet.Trim('"'));
            return encoding.CodePage == Encoding.UTF8.CodePage ? new UTF8Encoding(false) : encoding;
        }
        catch (ArgumentException)
        {
            return null;
        }
    }

    /// <summary>Supported content codings: identity (empty), gzip, deflate (zlib), br.</summary>
    public static bool IsSupportedCoding(string coding)
        => coding.Length == 0 || coding is "gzip" or "x-gzip" or "deflate" or "br" or "identity";

    public static Stream Decode(string coding, Stream source) => coding switch
    {
        "gzip" or "x-gzip" => new GZipStream(source, CompressionMode.Decompress),
        "deflate" => new ZLibStream(source, CompressionMode.Decompress),
        "br" => new BrotliStream(source, CompressionMode.Decompress),
        _ => source,
    };

    public static Stream? Encoder(string coding, Stream sink) => coding switch
    {
        "gzip" or "x-gzip" => new GZipStream(sink, CompressionLevel.Fastest, leaveOpen: true),
        "deflate" => new ZLibStream(sink, CompressionLevel.Fastest, leaveOpen: true),
        "br" => new BrotliStream(sink, CompressionLevel.Fastest, leaveOpen: true),
        _ => null,
    };
}

/// <summary>
/// Streaming regex replacement with a bounded window. Text is held until at least 2×window characters are pending;
/// matches starting in the first part are replaced and that part is emitted, the last <c>window</c> characters are kept
/// for the next round so a match spanning chunk boundaries (up to <c>window</c> characters long) is still found.
/// </summary>
internal sealed class StreamingReplacer
{
    private readonly Regex _regex;
    private readonly string _replacement;
    private readonly int _window;
    private readonly StringBuilder _pending = new();
    private bool _disabled;

    public StreamingReplacer(Replacement replacement, int window)
    {
        _regex = replacement.Pattern;
        _replacement = replacement.Text;
        _window = window;
    }

    /// <summary>Set when a regex exceeded its timeout: the rest of the body then passes through unchanged.</summary>
    public bool TimedOut { get; private set; }

    public void Process(StringBuilder input, bool final, StringBuilder output)
    {
        foreach (var chunk in input.GetChunks())
        {
            _pending.Append(chunk.Span);
        }
        if (_disabled)
        {
            Flush(output);
            return;
        }
        if (!final && _pending.Length < 2 * _window)
        {
            return;
        }
        var text = _pending.ToString();
        var commit = final ? text.Length : text.Length - _window;
        var position = 0;
        try
        {
            var match = _regex.Match(text);
            while (match.Success && match.Index < commit)
            {
                if (match.Index < position)
                {
                    match = match.NextMatch();
                    continue;
                }
                output.Append(text, position, match.Index - position);
                output.Append(match.Result(_replacement));
                position = match.Index + match.Length;
                match = match.NextMatch();
            }
        }
        catch (RegexMatchTimeoutException)
        {
            _disabled = true;
            TimedOut = true;
        }
        var keepFrom = _disabled ? position : Math.Max(position, commit);
        output.Append(text, position, keepFrom - position);
        _pending.Clear();
        _pending.Append(text, keepFrom, text.Length - keepFrom);
        if (_disabled || final)
        {
            Flush(output);
        }
    }

    private void Flush(StringBuilder output)
    {
        foreach (var chunk in _pending.GetChunks())
        {
            output.Append(chunk.Span);
        }
        _pending.Clear();
    }
}

/// <summary>
/// A read-only stream that rewrites a text body as it is read: decodes the content coding (gzip, deflate, br),
/// decodes the charset, runs the replacements in order through bounded windows, encodes back to the same charset and
/// re-applies the same content coding. Pull-based: it does work only when the consumer reads, so the client's pace
/// bounds memory (about 2×window characters per replacement plus one input chunk).
/// </summary>
internal sealed class TextRewriteStream : Stream
{
    private const int ChunkSize = 16 * 1024;

    private readonly Stream _source;
    private readonly Decoder _decoder;
    private readonly Encoder _encoder;
    private readonly StreamingReplacer[] _replacers;
    private readonly StringBuilder[] _stages;
    private readonly MemoryStream _sink = new();
    private readonly Stream? _compressor;
    private readonly byte[] _inBytes = new byte[ChunkSize];
    private readonly char[] _chars;
    private byte[] _outBytes;
    private readonly Action? _onTimeout;
    private int _sinkRead;
    private bool _done;

    public TextRewriteStream(Stream decodedSource, Encoding encoding, string coding, IEnumerable<Replacement> replacements, int window, Action? onTimeout = null)
    {
        _source = decodedSource;
        _decoder = encoding.GetDecoder();
        _encoder = encoding.GetEncoder();
        _replacers = replacements.Select(r => new StreamingReplacer(r, window)).ToArray();
        _stages = new StringBuilder[_replacers.Length + 1];
        for (var i = 0; i < _stages.Length; i++)
        {
            _stages[i] = new StringBuilder();
        }
        _chars = new char[encoding.GetMaxCharCount(ChunkSize)];
        _outBytes = new byte[encoding.GetMaxByteCount(ChunkSize)];
        _compressor = TextCodec.Encoder(coding, _sink);
        _onTimeout = onTimeout;
    }

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        while (_sinkRead >= _sink.Length && !_done)
        {
            _sink.SetLength(0);
            _sinkRead = 0;
            var n = await _source.ReadAsync(_inBytes, cancellationToken);
            Step(n);
        }
        var available = (int)_sink.Length - _sinkRead;
        if (available <= 0)
        {
            return 0;
        }
        var count = Math.Min(available, buffer.Length);
        _sink.GetBuffer().AsSpan(_sinkRead, count).CopyTo(buffer.Span);
        _sinkRead += count;
        return count;
    }

    /// <summary>One round: <paramref name="read"/> new bytes (0 = end of body) through decode → replace → encode → compress.</summary>
    private void Step(int read)
    {
        var final = read == 0;
        var charCount = _decoder.GetChars(_inBytes, 0, read, _chars, 0, flush: final);
        var input = _stages[0];
        input.Clear();
        input.Append(_chars, 0, charCount);
        for (var i = 0; i < _replacers.Length; i++)
        {
            var output = _stages[i + 1];
            output.Clear();
            var hadTimeout = _replacers[i].TimedOut;
            _replacers[i].Process(_stages[i], final, output);
            if (!hadTimeout && _replacers[i].TimedOut)
            {
                _onTimeout?.Invoke();
            }
        }
        var text = _stages[^1];
        var target = _compressor ?? _sink;
        foreach (var chunk in text.GetChunks())
        {
            var span = chunk.Span;
            EnsureOut(_encoder.GetByteCount(span, flush: false));
            var bytes = _encoder.GetBytes(span, _outBytes, flush: false);
            target.Write(_outBytes, 0, bytes);
        }
        if (final)
        {
            var tail = _encoder.GetBytes(ReadOnlySpan<char>.Empty, _outBytes, flush: true);
            target.Write(_outBytes, 0, tail);
            _compressor?.Dispose(); // writes the coding's trailer into the sink
            _done = true;
        }
    }

    private void EnsureOut(int size)
    {
        if (_outBytes.Length < size)
        {
            _outBytes = new byte[Math.Max(size, _outBytes.Length * 2)];
        }
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            _source.Dispose();
            if (!_done)
            {
                _compressor?.Dispose();
            }
        }
        base.Dispose(disposing);
    }

    public override async ValueTask DisposeAsync()
    {
        await _source.DisposeAsync();
        if (!_done && _compressor is not null)
        {
            await _compressor.DisposeAsync();
        }
        await base.DisposeAsync();
    }

    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}
