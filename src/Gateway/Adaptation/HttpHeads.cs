using System.Buffers;
using System.Diagnostics;
using System.Net.Http.Headers;
using System.Text;
using Gateway.Icap.Client;
using Gateway.Icap.Protocol;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Net.Http.Headers;

namespace Gateway.Adaptation;

/// <summary>Conversions between the ASP.NET Core request/response and the encapsulated HTTP heads sent to ICAP.</summary>
internal static class HttpHeads
{
    private static readonly HashSet<string> s_notCopied = new(StringComparer.OrdinalIgnoreCase)
    {
        "Connection", "Keep-Alive", "Transfer-Encoding", "Content-Length", "Proxy-Connection", "TE", "Trailer", "Upgrade",
    };

    public static HttpRequestHead FromRequest(HttpRequest request, Uri? target)
    {
        var headers = new IcapHeaders(request.Headers.Count + 1);
        if (!request.Headers.ContainsKey(HeaderNames.Host) && target is not null) headers.Add("Host", target.Authority);
        foreach (var (name, values) in request.Headers)
        {
            foreach (var v in values)
            {
                if (v is not null && IsSafe(name, v)) headers.Add(name, v);
            }
        }
        var version = request.Protocol is "HTTP/1.0" ? "HTTP/1.0" : "HTTP/1.1";
        var requestTarget = target?.AbsoluteUri ?? (request.PathBase + request.Path + request.QueryString).ToString();
        return new HttpRequestHead(request.Method, requestTarget, version, headers);
    }

    public static HttpResponseHead FromResponse(HttpResponse response)
    {
        var headers = new IcapHeaders(response.Headers.Count);
        foreach (var (name, values) in response.Headers)
        {
            foreach (var v in values)
            {
                if (v is not null && IsSafe(name, v)) headers.Add(name, v);
            }
        }
        var reason = response.HttpContext.Features.Get<IHttpResponseFeature>()?.ReasonPhrase
            ?? Microsoft.AspNetCore.WebUtilities.ReasonPhrases.GetReasonPhrase(response.StatusCode);
        return new HttpResponseHead("HTTP/1.1", response.StatusCode, string.IsNullOrEmpty(reason) ? "Unknown" : reason, headers);
    }

    /// <summary>Replaces the response's status and headers with an adapted head (framing headers are the pipeline's).</summary>
    public static void ApplyResponse(HttpResponse response, HttpResponseHead head)
    {
        response.StatusCode = head.StatusCode;
        var feature = response.HttpContext.Features.Get<IHttpResponseFeature>();
        if (feature is not null) feature.ReasonPhrase = head.ReasonPhrase;
        response.Headers.Clear();
        foreach (var (name, value) in head.Headers)
        {
            if (s_notCopied.Contains(name)) continue;
            response.Headers.Append(name, value);
        }
    }

    /// <summary>The Content-Length an adapted head declares, if it is one valid number.</summary>
    public static long? DeclaredLength(IcapHeaders headers)
        => headers["Content-Length"] is { } v && long.TryParse(v, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out var n) ? n : null;

    /// <summary>The identity the request carries: an authenticated user, else the user of Basic (Proxy-)Authorization.</summary>
    public static string? GetUser(HttpContext context)
    {
        if (context.User.Identity is { IsAuthenticated: true, Name: { Length: > 0 } name }) return name;
        foreach (var header in new[] { HeaderNames.ProxyAuthorization, HeaderNames.Authorization })
        {
            var value = context.Request.Headers[header].ToString();
            if (AuthenticationHeaderValue.TryParse(value, out var auth) && auth.Scheme.Equals("Basic", StringComparison.OrdinalIgnoreCase) && auth.Parameter is { } p)
            {
                try
                {
                    var decoded = Encoding.UTF8.GetString(Convert.FromBase64String(p));
                    var colon = decoded.IndexOf(':');
                    var user = colon < 0 ? decoded : decoded[..colon];
                    if (user.Length > 0) return user;
                }
                catch (FormatException)
                {
                }
            }
        }
        return null;
    }

    private static bool IsSafe(string name, string value)
        => name.Length > 0 && !name.StartsWith(':') && value.AsSpan().IndexOfAny('\r', '\n', '\0') < 0;
}

/// <summary>
/// Wraps an adapted body: counts bytes, checks a declared length (a service that lies about Content-Length fails the
/// response instead of corrupting it), and on its end or disposal completes the ICAP call (result disposed, Activity
/// stopped, outcome recorded).
/// </summary>
internal sealed class AdaptedBodyStream : Stream
{
    private readonly Stream _inner;
    private readonly long? _expectedLength;
    private readonly Func<Exception?, long, ValueTask> _onEnd;
    private long _read;
    private int _ended;
    private bool _endedClean;

    public AdaptedBodyStream(Stream inner, long? expectedLength, Func<Exception?, long, ValueTask> onEnd)
    {
        _inner = inner;
        _expectedLength = expectedLength;
        _onEnd = onEnd;
    }

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override async ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (Volatile.Read(ref _ended) != 0 && _endedClean) return 0;
        if (buffer.IsEmpty)
        {
            // A zero-byte read (YARP's copier issues them) is not the end of the body.
            return await _inner.ReadAsync(buffer, cancellationToken);
        }
        int n;
        try
        {
            n = await _inner.ReadAsync(buffer, cancellationToken);
        }
        catch (Exception ex)
        {
            await EndAsync(ex);
            throw;
        }
        _read += n;
        if (_expectedLength is { } expected && (_read > expected || (n == 0 && _read != expected)))
        {
            var ex = new IcapClientException(IcapClientError.ProtocolError, $"the adapted body is {(n == 0 ? _read : "more than " + expected)} bytes, but its head declared Content-Length {expected}");
            await EndAsync(ex);
            throw ex;
        }
        if (n == 0)
        {
            _endedClean = true;
            await EndAsync(null);
        }
        return n;
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    private ValueTask EndAsync(Exception? error)
        => Interlocked.Exchange(ref _ended, 1) == 0 ? _onEnd(error, _read) : ValueTask.CompletedTask;

    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing) DisposeAsync().AsTask().GetAwaiter().GetResult();
    }

    public override async ValueTask DisposeAsync()
    {
        await EndAsync(null);
        await _inner.DisposeAsync();
        GC.SuppressFinalize(this);
    }
}

/// <summary>A body whose first bytes were read ahead (to learn a small body's exact length) followed by the rest.</summary>
internal sealed class PrefixedStream : Stream
{
    private readonly byte[] _prefix;
    private readonly int _length;
    private readonly Stream _rest;
    private int _position;

    public PrefixedStream(byte[] prefix, int length, Stream rest)
    {
        _prefix = prefix;
        _length = length;
        _rest = rest;
    }

    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        if (_position < _length)
        {
            var n = Math.Min(buffer.Length, _length - _position);
            _prefix.AsSpan(_position, n).CopyTo(buffer.Span);
            _position += n;
            return ValueTask.FromResult(n);
        }
        return _rest.ReadAsync(buffer, cancellationToken);
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken)
        => ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override int Read(byte[] buffer, int offset, int count) => ReadAsync(buffer.AsMemory(offset, count)).AsTask().GetAwaiter().GetResult();

    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    public override async ValueTask DisposeAsync()
    {
        var p = Interlocked.Exchange(ref _returned, 1);
        if (p == 0) ArrayPool<byte>.Shared.Return(_prefix);
        await _rest.DisposeAsync();
        GC.SuppressFinalize(this);
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing) DisposeAsync().AsTask().GetAwaiter().GetResult();
    }

    private int _returned;

    /// <summary>
    /// Reads up to <paramref name="limit"/> bytes ahead: when the body ends within them its exact length is known.
    /// Returns the stream to use from now on (the read-ahead bytes first) and the exact length, or null.
    /// </summary>
    public static async ValueTask<(Stream Body, long? ExactLength)> ReadAheadAsync(Stream body, int limit, CancellationToken cancellationToken)
    {
        // Start small and grow: most adapted bodies are small, and large pooled arrays would be LOH-sized.
        var buffer = ArrayPool<byte>.Shared.Rent(Math.Min(limit + 1, 16 * 1024));
        var filled = 0;
        while (filled <= limit)
        {
            if (filled == buffer.Length)
            {
                var bigger = ArrayPool<byte>.Shared.Rent(Math.Min(limit + 1, buffer.Length * 2));
                buffer.AsSpan(0, filled).CopyTo(bigger);
                ArrayPool<byte>.Shared.Return(buffer);
                buffer = bigger;
            }
            var n = await body.ReadAsync(buffer.AsMemory(filled, Math.Min(limit + 1, buffer.Length) - filled), cancellationToken);
            if (n == 0)
            {
                return (new PrefixedStream(buffer, filled, body), filled);
            }
            filled += n;
        }
        Debug.Assert(filled == limit + 1);
        return (new PrefixedStream(buffer, filled, body), null);
    }
}
