using System.Buffers;
using System.Text;
using Gateway.Icap.Protocol;

namespace Gateway.Icap.Tests.Protocol;

public sealed class IcapParserTests
{
    [Theory]
    [MemberData(nameof(IcapMessageTable.ValidNames), MemberType = typeof(IcapMessageTable))]
    public void Parses_ValidMessage(string name)
    {
        var m = IcapMessageTable.GetValid(name);
        foreach (var segment in new[] { int.MaxValue, 1, 3, 17 })
        {
            var parsed = MessageParser.Parse(TestSequence.Create(m.Bytes, Math.Min(segment, Math.Max(1, m.Bytes.Length))));
            Assert.Equal(m.Method, parsed.Head.Method);
            Assert.Equal(m.Service, parsed.Head.ServiceName);
            Assert.Equal(m.Encapsulated, parsed.Head.Encapsulated.ToString());
            Assert.Equal(m.Preview, parsed.Head.Preview);
            Assert.Equal(m.Body, parsed.Body);
            Assert.Equal(m.Ieof, parsed.Ieof);
            if (m.HttpRequestLine is null) Assert.Null(parsed.HttpRequest);
            else Assert.Equal(m.HttpRequestLine, $"{parsed.HttpRequest!.Method} {parsed.HttpRequest.Target} {parsed.HttpRequest.Version}");
            Assert.Equal(m.HttpStatus, parsed.HttpResponse?.StatusCode);
        }
    }

    [Theory]
    [MemberData(nameof(IcapMessageTable.ValidNames), MemberType = typeof(IcapMessageTable))]
    public void EveryPrefix_NeedsMore_AndConsumesNothing(string name)
    {
        var bytes = IcapMessageTable.GetValid(name).Bytes;
        for (var length = 0; length < bytes.Length; length++)
        {
            foreach (var segment in new[] { int.MaxValue, 1 })
            {
                var seq = TestSequence.Create(bytes.AsSpan(0, length), Math.Min(segment, Math.Max(1, length)));
                var reader = new SequenceReader<byte>(seq);
                Assert.False(MessageParser.TryParse(ref reader, IcapParserLimits.Default, out _), $"prefix {length} parsed");
                Assert.Equal(0, reader.Consumed);

                reader = new SequenceReader<byte>(seq);
                if (IcapParser.TryParseRequestHead(ref reader, IcapParserLimits.Default, out var head))
                {
                    var afterHead = reader.Consumed;
                    Assert.True(afterHead > 0);
                    if (!IcapParser.TryParseEncapsulatedHeads(ref reader, head.Encapsulated, IcapParserLimits.Default, out _, out _))
                    {
                        Assert.Equal(afterHead, reader.Consumed);
                    }
                }
                else
                {
                    Assert.Equal(0, reader.Consumed);
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(IcapMessageTable.InvalidNames), MemberType = typeof(IcapMessageTable))]
    public void Rejects_InvalidMessage(string name)
    {
        var m = IcapMessageTable.GetInvalid(name);
        foreach (var segment in new[] { int.MaxValue, 1 })
        {
            var seq = TestSequence.Create(m.Bytes, Math.Min(segment, m.Bytes.Length));
            var ex = Assert.Throws<IcapProtocolException>(() =>
            {
                var reader = new SequenceReader<byte>(seq);
                MessageParser.TryParse(ref reader, IcapParserLimits.Default, out _);
            });
            Assert.Equal(m.Reason, ex.Reason);
            Assert.Equal(m.Status, ex.StatusCode);
            Assert.Equal(m.Status, IcapRejection.GetStatusCode(m.Reason));
        }
    }

    [Fact]
    public void Parses_PreviewIeof_AndTrailers()
    {
        var parsed = MessageParser.Parse(new ReadOnlySequence<byte>(IcapMessageTable.GetValid("respmod-trailers").Bytes));
        Assert.Equal("clean", parsed.Trailers!["x-scan"]);
        Assert.True(parsed.Head.Allows204);
        Assert.False(parsed.Head.Allows206);
    }

    [Fact]
    public void Rejects_HeaderSectionOverLimit_BeforeItIsComplete()
    {
        var limits = IcapParserLimits.Default with { MaxHeaderBytes = 100 };
        var bytes = Encoding.ASCII.GetBytes("OPTIONS icap://h/echo ICAP/1.0\r\nX-A: " + new string('a', 90));
        var ex = Assert.Throws<IcapProtocolException>(() =>
        {
            var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(bytes));
            IcapParser.TryParseRequestHead(ref reader, limits, out _);
        });
        Assert.Equal(IcapRejectionReason.HeadersTooLarge, ex.Reason);
    }

    [Fact]
    public void Rejects_EncapsulatedHeadOverLimit_WithoutWaitingForIt()
    {
        var limits = IcapParserLimits.Default with { MaxHeaderBytes = 1000 };
        var enc = IcapEncapsulated.Parse("req-hdr=0, null-body=5000");
        var ex = Assert.Throws<IcapProtocolException>(() =>
        {
            var reader = new SequenceReader<byte>(ReadOnlySequence<byte>.Empty);
            IcapParser.TryParseEncapsulatedHeads(ref reader, enc, limits, out _, out _);
        });
        Assert.Equal(IcapRejectionReason.HeadersTooLarge, ex.Reason);
    }

    [Theory]
    [InlineData("ICAP/1.0 100 Continue\r\n\r\n", 100, "Continue", null)]
    [InlineData("ICAP/1.0 204 No Content\r\nISTag: \"x\"\r\n\r\n", 204, "No Content", null)]
    [InlineData("ICAP/1.0 204 No Content\r\nISTag: \"x\"\r\nEncapsulated: null-body=0\r\n\r\n", 204, "No Content", "null-body=0")]
    [InlineData("ICAP/1.0 200 OK\r\nISTag: \"x\"\r\nEncapsulated: res-hdr=0, res-body=19\r\n\r\n", 200, "OK", "res-hdr=0, res-body=19")]
    [InlineData("ICAP/1.0 206 Partial Content\r\nEncapsulated: res-hdr=0, res-body=19\r\n\r\n", 206, "Partial Content", "res-hdr=0, res-body=19")]
    [InlineData("ICAP/1.0 404 ICAP Service Not Found\r\nConnection: close\r\n\r\n", 404, "ICAP Service Not Found", null)]
    public void Parses_ResponseHead(string raw, int status, string reason, string? encapsulated)
    {
        var bytes = Encoding.ASCII.GetBytes(raw);
        foreach (var segment in new[] { bytes.Length, 1 })
        {
            var reader = new SequenceReader<byte>(TestSequence.Create(bytes, segment));
            Assert.True(IcapParser.TryParseResponseHead(ref reader, IcapParserLimits.Default, IcapMethod.Respmod, out var head));
            Assert.True(reader.End);
            Assert.Equal(status, head.StatusCode);
            Assert.Equal(reason, head.ReasonPhrase);
            Assert.Equal(encapsulated, head.Encapsulated?.ToString());
        }
        for (var i = 0; i < bytes.Length; i++)
        {
            var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(bytes, 0, i));
            Assert.False(IcapParser.TryParseResponseHead(ref reader, IcapParserLimits.Default, IcapMethod.Respmod, out _));
            Assert.Equal(0, reader.Consumed);
        }
    }

    [Theory]
    [InlineData("ICAP/2.0 200 OK\r\n\r\n", IcapRejectionReason.UnsupportedVersion)]
    [InlineData("ICAP/1.0 2x0 OK\r\n\r\n", IcapRejectionReason.InvalidStatusLine)]
    [InlineData("ICAP/1.0 200 OK\r\nISTag: \"x\"\r\n\r\n", IcapRejectionReason.MissingEncapsulated)]
    [InlineData("ICAP/1.0 200 OK\r\nEncapsulated: req-hdr=0, req-body=10\r\n\r\n", IcapRejectionReason.EncapsulatedNotAllowed)]
    public void Rejects_InvalidResponseHead(string raw, IcapRejectionReason reason)
    {
        var ex = Assert.Throws<IcapProtocolException>(() =>
        {
            var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(Encoding.ASCII.GetBytes(raw)));
            IcapParser.TryParseResponseHead(ref reader, IcapParserLimits.Default, IcapMethod.Respmod, out _);
        });
        Assert.Equal(reason, ex.Reason);
    }

    [Fact]
    public void Parses_ReqmodResponse_ThatSatisfiesTheRequest()
    {
        var raw = "ICAP/1.0 200 OK\r\nEncapsulated: res-hdr=0, res-body=30\r\n\r\n";
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(Encoding.ASCII.GetBytes(raw)));
        Assert.True(IcapParser.TryParseResponseHead(ref reader, IcapParserLimits.Default, IcapMethod.Reqmod, out var head));
        Assert.Equal(IcapSection.ResBody, head.Encapsulated!.Value.Body);
    }
}
