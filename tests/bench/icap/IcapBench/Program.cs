using System.Buffers;
using System.Diagnostics;
using System.Globalization;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Gateway.Icap.Protocol;
using Gateway.Icap.Server;
using Microsoft.AspNetCore.Hosting;
using Microsoft.Extensions.Logging;

// Usage:
//   IcapBench serve  <port> [maxConnections]
//   IcapBench load   <port> <service> <bodyBytes> <concurrency> <seconds>
//   IcapBench stream <port> <service> <totalBytes>
var mode = args.Length > 0 ? args[0] : "";
return mode switch
{
    "serve" => await Serve(int.Parse(args[1], CultureInfo.InvariantCulture), args.Length > 2 ? int.Parse(args[2], CultureInfo.InvariantCulture) : 10000),
    "load" => await Load(int.Parse(args[1], CultureInfo.InvariantCulture), args[2], int.Parse(args[3], CultureInfo.InvariantCulture),
        int.Parse(args[4], CultureInfo.InvariantCulture), double.Parse(args[5], CultureInfo.InvariantCulture)),
    "stream" => await Stream1(int.Parse(args[1], CultureInfo.InvariantCulture), args[2], long.Parse(args[3], CultureInfo.InvariantCulture)),
    _ => Usage(),
};

static int Usage()
{
    Console.Error.WriteLine("IcapBench serve <port> [maxConnections] | load <port> <service> <bodyBytes> <concurrency> <seconds> | stream <port> <service> <totalBytes>");
    return 2;
}

static async Task<int> Serve(int port, int maxConnections)
{
    var builder = Microsoft.AspNetCore.Builder.WebApplication.CreateSlimBuilder();
    builder.Logging.ClearProviders();
    builder.Services.AddIcapServer(o => o.MaxConnections = maxConnections);
    builder.WebHost.ConfigureKestrel(k => k.Listen(IPAddress.Loopback, port, lo => lo.UseIcapServer()));
    if (Environment.GetEnvironmentVariable("ICAP_BENCH_INLINE") == "1")
    {
        // Run pipe continuations on the socket I/O threads (fewer thread hops); a host-level Kestrel choice.
        builder.WebHost.UseSockets(o => o.UnsafePreferInlineScheduling = true);
    }
    var app = builder.Build();
    await app.RunAsync();
    return 0;
}

static byte[] BuildRequest(string service, int port, int bodyBytes)
{
    const string resHdr = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n";
    var sb = new StringBuilder();
    sb.Append(CultureInfo.InvariantCulture, $"RESPMOD icap://127.0.0.1:{port}/{service} ICAP/1.0\r\nHost: 127.0.0.1\r\n");
    sb.Append(CultureInfo.InvariantCulture, $"Encapsulated: res-hdr=0, res-body={resHdr.Length}\r\n\r\n{resHdr}");
    var ms = new MemoryStream();
    ms.Write(Encoding.ASCII.GetBytes(sb.ToString()));
    var body = new byte[bodyBytes];
    new Random(1).NextBytes(body);
    for (var off = 0; off < bodyBytes; off += 65536)
    {
        var n = Math.Min(65536, bodyBytes - off);
        ms.Write(Encoding.ASCII.GetBytes(n.ToString("x", CultureInfo.InvariantCulture) + "\r\n"));
        ms.Write(body, off, n);
        ms.Write("\r\n"u8);
    }
    ms.Write("0\r\n\r\n"u8);
    return ms.ToArray();
}

/// <summary>Reads one complete ICAP response; returns the number of decoded body bytes.</summary>
static async Task<long> ReadResponse(PipeReader reader, IcapMethod method)
{
    var limits = IcapParserLimits.Default with { MaxChunkSize = long.MaxValue / 32 };
    IcapResponseHead? head;
    while (true)
    {
        var r = await reader.ReadAsync();
        var sr = new SequenceReader<byte>(r.Buffer);
        if (IcapParser.TryParseResponseHead(ref sr, limits, method, out head))
        {
            reader.AdvanceTo(sr.Position);
            break;
        }
        reader.AdvanceTo(r.Buffer.Start, r.Buffer.End);
        if (r.IsCompleted) throw new EndOfStreamException();
    }
    if (head.StatusCode == 100) return await ReadResponse(reader, method);
    if (head.Encapsulated is not { } enc) return 0;
    if (enc.BodyOffset > 0)
    {
        while (true)
        {
            var r = await reader.ReadAsync();
            var sr = new SequenceReader<byte>(r.Buffer);
            if (IcapParser.TryParseEncapsulatedHeads(ref sr, enc, limits, out _, out _))
            {
                reader.AdvanceTo(sr.Position);
                break;
            }
            reader.AdvanceTo(r.Buffer.Start, r.Buffer.End);
            if (r.IsCompleted) throw new EndOfStreamException();
        }
    }
    if (!enc.HasBody) return 0;
    var decoder = new IcapChunkedDecoder(limits);
    while (true)
    {
        var r = await reader.ReadAsync();
        var sr = new SequenceReader<byte>(r.Buffer);
        var done = false;
        while (true)
        {
            var s = decoder.Read(ref sr, long.MaxValue, out _);
            if (s == IcapChunkedReadStatus.Data) continue;
            done = s == IcapChunkedReadStatus.Completed;
            break;
        }
        reader.AdvanceTo(sr.Position, done ? sr.Position : r.Buffer.End);
        if (done) return decoder.BodyLength;
        if (r.IsCompleted) throw new EndOfStreamException();
    }
}

static async Task<(PipeReader, NetworkStream)> Connect(int port)
{
    var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
    await socket.ConnectAsync(IPAddress.Loopback, port);
    var stream = new NetworkStream(socket, ownsSocket: true);
    return (PipeReader.Create(stream, new StreamPipeReaderOptions(bufferSize: 65536)), stream);
}

static async Task<int> Load(int port, string service, int bodyBytes, int concurrency, double seconds)
{
    var request = BuildRequest(service, port, bodyBytes);
    var stop = Stopwatch.StartNew();
    var until = TimeSpan.FromSeconds(seconds);
    var latencies = new List<double>[concurrency];
    long bytes = 0, errors = 0;
    var workers = Enumerable.Range(0, concurrency).Select(async i =>
    {
        var list = latencies[i] = new List<double>(100_000);
        var (reader, stream) = await Connect(port);
        try
        {
            while (stop.Elapsed < until)
            {
                var t0 = Stopwatch.GetTimestamp();
                // write concurrently with reading: large bodies are echoed while they are being sent
                var write = stream.WriteAsync(request).AsTask();
                var got = await ReadResponse(reader, IcapMethod.Respmod);
                await write;
                list.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
                if (got != bodyBytes) Interlocked.Increment(ref errors);
                Interlocked.Add(ref bytes, got);
            }
        }
        catch (Exception)
        {
            Interlocked.Increment(ref errors);
        }
        finally
        {
            await stream.DisposeAsync();
        }
    }).ToArray();
    await Task.WhenAll(workers);
    var elapsed = stop.Elapsed.TotalSeconds;
    var all = latencies.SelectMany(l => l).Order().ToArray();
    var p99 = all.Length == 0 ? 0 : all[Math.Min(all.Length - 1, (int)Math.Ceiling(all.Length * 0.99) - 1)];
    var p50 = all.Length == 0 ? 0 : all[all.Length / 2];
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture,
        $"service={service} body={bodyBytes} concurrency={concurrency} requests={all.Length} errors={errors} req/s={all.Length / elapsed:F0} MB/s={bytes / elapsed / 1e6:F1} p50_ms={p50:F2} p99_ms={p99:F2}"));
    return errors == 0 ? 0 : 1;
}

static async Task<int> Stream1(int port, string service, long total)
{
    const string resHdr = "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n";
    var (reader, stream) = await Connect(port);
    var head = Encoding.ASCII.GetBytes(
        $"RESPMOD icap://127.0.0.1:{port}/{service} ICAP/1.0\r\nHost: 127.0.0.1\r\nEncapsulated: res-hdr=0, res-body={resHdr.Length}\r\n\r\n{resHdr}");
    var chunk = new byte[65536];
    new Random(2).NextBytes(chunk);
    var sw = Stopwatch.StartNew();
    var send = Task.Run(async () =>
    {
        await stream.WriteAsync(head);
        var framed = new byte[chunk.Length + 12];
        for (long sent = 0; sent < total;)
        {
            var n = (int)Math.Min(chunk.Length, total - sent);
            var prefix = Encoding.ASCII.GetBytes(n.ToString("x", CultureInfo.InvariantCulture) + "\r\n");
            prefix.CopyTo(framed, 0);
            Array.Copy(chunk, 0, framed, prefix.Length, n);
            framed[prefix.Length + n] = (byte)'\r';
            framed[prefix.Length + n + 1] = (byte)'\n';
            await stream.WriteAsync(framed.AsMemory(0, prefix.Length + n + 2));
            sent += n;
        }
        await stream.WriteAsync("0\r\n\r\n"u8.ToArray());
    });
    var got = await ReadResponse(reader, IcapMethod.Respmod);
    await send;
    var s = sw.Elapsed.TotalSeconds;
    Console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"stream service={service} bytes={total} echoed={got} seconds={s:F2} MB/s={total / s / 1e6:F1}"));
    await stream.DisposeAsync();
    return got == total ? 0 : 1;
}
