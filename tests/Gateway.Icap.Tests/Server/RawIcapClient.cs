using System.Buffers;
using System.IO.Pipelines;
using System.Net.Sockets;
using System.Text;
using Gateway.Icap.Protocol;

namespace Gateway.Icap.Tests.Server;

internal sealed record IcapTestResponse(IcapResponseHead Head, HttpRequestHead? HttpRequest, HttpResponseHead? HttpResponse, byte[] Body,
    long? UseOriginalBody)
{
    public int Status => Head.StatusCode;

    public string BodyText => Encoding.UTF8.GetString(Body);
}

/// <summary>A byte-level ICAP client for tests, parsing answers with the protocol layer under test.</summary>
internal sealed class RawIcapClient : IAsyncDisposable
{
    private readonly PipeReader _reader;
    private readonly PipeWriter _writer;
    private readonly IDisposable? _owner;

    public RawIcapClient(PipeReader reader, PipeWriter writer, IDisposable? owner = null)
    {
        _reader = reader;
        _writer = writer;
        _owner = owner;
    }

    public static async Task<RawIcapClient> ConnectAsync(int port)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        await socket.ConnectAsync(System.Net.IPAddress.Loopback, port);
        var stream = new NetworkStream(socket, ownsSocket: true);
        return new RawIcapClient(PipeReader.Create(stream), PipeWriter.Create(stream), stream);
    }

    public async Task SendAsync(string text) => await SendAsync(Encoding.Latin1.GetBytes(text));

    public async Task SendAsync(ReadOnlyMemory<byte> bytes)
    {
        await _writer.WriteAsync(bytes);
    }

    public async Task CompleteSendingAsync() => await _writer.CompleteAsync();

    public async Task<IcapTestResponse> ReadResponseAsync(IcapMethod? method = IcapMethod.Respmod, TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(10));
        IcapResponseHead head = await ReadAsync((ref SequenceReader<byte> r, out IcapResponseHead? h)
            => IcapParser.TryParseResponseHead(ref r, IcapParserLimits.Default, method, out h), cts.Token);
        if (head.Encapsulated is not { } enc) return new IcapTestResponse(head, null, null, [], null);
        (HttpRequestHead?, HttpResponseHead?)? heads = null;
        if (enc.HasReqHdr || enc.HasResHdr) heads = await ReadAsync((ref SequenceReader<byte> r, out (HttpRequestHead?, HttpResponseHead?)? v) =>
        {
            var ok = IcapParser.TryParseEncapsulatedHeads(ref r, enc, IcapParserLimits.Default, out var q, out var s);
            v = ok ? (q, s) : null;
            return ok;
        }, cts.Token);
        var body = new MemoryStream();
        long? useOriginal = null;
        if (enc.HasBody)
        {
            var decoder = new IcapChunkedDecoder(IcapParserLimits.Default with { MaxChunkSize = long.MaxValue / 32 });
            while (true)
            {
                var result = await _reader.ReadAsync(cts.Token);
                var reader = new SequenceReader<byte>(result.Buffer);
                var done = false;
                while (true)
                {
                    var status = decoder.Read(ref reader, long.MaxValue, out var data);
                    if (status == IcapChunkedReadStatus.Data)
                    {
                        foreach (var seg in data) body.Write(seg.Span);
                        continue;
                    }
                    done = status == IcapChunkedReadStatus.Completed;
                    break;
                }
                _reader.AdvanceTo(reader.Position, done ? reader.Position : result.Buffer.End);
                if (done) break;
                if (result.IsCompleted) throw new EndOfStreamException("connection closed inside the response body");
            }
            useOriginal = decoder.UseOriginalBody;
        }
        return new IcapTestResponse(head, heads?.Item1, heads?.Item2, body.ToArray(), useOriginal);
    }

    /// <summary>True when the server closes the connection (after any unread bytes) within the timeout.</summary>
    public async Task<bool> IsClosedAsync(TimeSpan? timeout = null)
    {
        using var cts = new CancellationTokenSource(timeout ?? TimeSpan.FromSeconds(5));
        try
        {
            while (true)
            {
                var result = await _reader.ReadAsync(cts.Token);
                _reader.AdvanceTo(result.Buffer.End);
                if (result.IsCompleted) return true;
            }
        }
        catch (OperationCanceledException)
        {
            return false;
        }
        catch (IOException)
        {
            return true;
        }
    }

    private delegate bool Parser<T>(ref SequenceReader<byte> reader, out T? value);

    private async Task<T> ReadAsync<T>(Parser<T> parse, CancellationToken cancellationToken)
    {
        while (true)
        {
            var result = await _reader.ReadAsync(cancellationToken);
            var reader = new SequenceReader<byte>(result.Buffer);
            if (parse(ref reader, out var value))
            {
                _reader.AdvanceTo(reader.Position);
                return value!;
            }
            _reader.AdvanceTo(result.Buffer.Start, result.Buffer.End);
            if (result.IsCompleted) throw new EndOfStreamException("connection closed before a complete response head");
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _writer.CompleteAsync();
        await _reader.CompleteAsync();
        _owner?.Dispose();
    }
}

internal static class IcapRequests
{
    public const string ResHdr = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n";

    public static string Options(string service = "echo") => $"OPTIONS icap://127.0.0.1/{service} ICAP/1.0\r\nHost: 127.0.0.1\r\n\r\n";

    /// <summary>A RESPMOD with <paramref name="body"/> in one chunk; with <paramref name="preview"/>, only that many bytes are sent first.</summary>
    public static string Respmod(string service, string body, string extraHeaders = "", int? preview = null, string resHdr = ResHdr)
    {
        var sb = new StringBuilder();
        sb.Append($"RESPMOD icap://127.0.0.1/{service} ICAP/1.0\r\nHost: 127.0.0.1\r\n{extraHeaders}");
        if (preview is { } p) sb.Append($"Preview: {p}\r\n");
        sb.Append($"Encapsulated: res-hdr=0, res-body={resHdr.Length}\r\n\r\n{resHdr}");
        var first = preview is { } n ? body[..Math.Min(n, body.Length)] : body;
        if (first.Length > 0) sb.Append($"{first.Length:x}\r\n{first}\r\n");
        sb.Append(preview is not null && first.Length == body.Length ? "0; ieof\r\n\r\n" : "0\r\n\r\n");
        return sb.ToString();
    }

    /// <summary>What the client sends after 100 Continue: the rest of the body.</summary>
    public static string Rest(string body, int preview)
    {
        var rest = body[preview..];
        return (rest.Length > 0 ? $"{rest.Length:x}\r\n{rest}\r\n" : "") + "0\r\n\r\n";
    }

    public static string Reqmod(string service, string target, string body = "", string extraHeaders = "", string method = "GET")
    {
        var head = $"{method} {target} HTTP/1.1\r\nHost: origin.example\r\n\r\n";
        var encapsulated = body.Length > 0 ? $"req-hdr=0, req-body={head.Length}" : $"req-hdr=0, null-body={head.Length}";
        var chunks = body.Length > 0 ? $"{body.Length:x}\r\n{body}\r\n0\r\n\r\n" : "";
        return $"REQMOD icap://127.0.0.1/{service} ICAP/1.0\r\nHost: 127.0.0.1\r\n{extraHeaders}Encapsulated: {encapsulated}\r\n\r\n{head}{chunks}";
    }
}
