using System.Buffers;
using System.Text;
using Gateway.Icap.Protocol;

namespace Gateway.Icap.Tests.Protocol;

public sealed class IcapWriterTests
{
    [Fact]
    public void WritesRequest_ThatParsesBack_WithOffsets()
    {
        var http = new HttpRequestHead("GET", "http://example.com/a?b", "HTTP/1.1", new IcapHeaders { { "Host", "example.com" } });
        var res = new HttpResponseHead("HTTP/1.1", 200, "OK", new IcapHeaders { { "Content-Type", "text/html" } });
        var enc = IcapEncapsulated.Create(IcapWriter.GetLength(http), IcapWriter.GetLength(res), IcapSection.ResBody);
        var head = new IcapRequestHead(IcapMethod.Respmod, "icap://127.0.0.1:1344/echo", new IcapHeaders { { "Host", "127.0.0.1" }, { "Allow", "204" } }, enc);
        var buffer = new ArrayBufferWriter<byte>();
        IcapWriter.WriteRequestHead(buffer, head);
        Assert.Equal(IcapWriter.GetLength(http), IcapWriter.WriteHttpRequestHead(buffer, http));
        Assert.Equal(IcapWriter.GetLength(res), IcapWriter.WriteHttpResponseHead(buffer, res));
        IcapWriter.WriteChunk(buffer, "body"u8);
        IcapWriter.WriteLastChunk(buffer);

        var parsed = MessageParser.Parse(new ReadOnlySequence<byte>(buffer.WrittenMemory));
        Assert.Equal(IcapMethod.Respmod, parsed.Head.Method);
        Assert.Equal("echo", parsed.Head.ServiceName);
        Assert.Equal("http://example.com/a?b", parsed.HttpRequest!.Target);
        Assert.Equal("text/html", parsed.HttpResponse!.Headers["content-type"]);
        Assert.Equal("body", parsed.Body);
    }

    [Fact]
    public void WritesResponseHead()
    {
        var buffer = new ArrayBufferWriter<byte>();
        IcapWriter.WriteResponseHead(buffer, new IcapResponseHead(204, "No Content", new IcapHeaders { { "ISTag", "\"t1\"" } }, IcapEncapsulated.NullBody));
        Assert.Equal("ICAP/1.0 204 No Content\r\nISTag: \"t1\"\r\nEncapsulated: null-body=0\r\n\r\n", Encoding.ASCII.GetString(buffer.WrittenSpan));
    }

    [Fact]
    public void RefusesHeaderInjection()
    {
        var buffer = new ArrayBufferWriter<byte>();
        Assert.Throws<ArgumentException>(() => IcapWriter.WriteHeader(buffer, "X-A", "v\r\nInjected: 1"));
    }
}
