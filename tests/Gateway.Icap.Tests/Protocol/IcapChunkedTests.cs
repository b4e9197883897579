using System.Buffers;
using System.Text;
using Gateway.Icap.Protocol;

namespace Gateway.Icap.Tests.Protocol;

public sealed class IcapChunkedTests
{
    private static (string Body, IcapChunkedDecoder Decoder, long Consumed) Decode(byte[] bytes, int segment, long maxLength = 1 << 20)
    {
        var decoder = new IcapChunkedDecoder(IcapParserLimits.Default);
        var reader = new SequenceReader<byte>(TestSequence.Create(bytes, segment));
        var sb = new StringBuilder();
        while (true)
        {
            var status = decoder.Read(ref reader, maxLength, out var data);
            if (status == IcapChunkedReadStatus.Completed) break;
            Assert.Equal(IcapChunkedReadStatus.Data, status);
            Assert.InRange(data.Length, 1, maxLength);
            sb.Append(Encoding.Latin1.GetString(data.ToArray()));
        }
        return (sb.ToString(), decoder, reader.Consumed);
    }

    [Theory]
    [InlineData("5\r\nhello\r\n0\r\n\r\n", "hello", false, null)]
    [InlineData("5\r\nhello\r\n0; ieof\r\n\r\n", "hello", true, null)]
    [InlineData("0;ieof\r\n\r\n", "", true, null)]
    [InlineData("0; use-original-body=42\r\n\r\n", "", false, 42L)]
    [InlineData("3\r\nabc\r\n0; use-original-body=3\r\n\r\n", "abc", false, 3L)]
    [InlineData("A;name=\"v\"\r\n0123456789\r\n0\r\n\r\n", "0123456789", false, null)]
    [InlineData("0000a\r\n0123456789\r\n0 ; foo=bar ; ieof\r\n\r\n", "0123456789", true, null)]
    public void Decodes(string raw, string body, bool ieof, long? useOriginalBody)
    {
        var bytes = Encoding.ASCII.GetBytes(raw);
        foreach (var segment in new[] { bytes.Length, 1, 2 })
        {
            var (decoded, decoder, consumed) = Decode(bytes, segment, 3);
            Assert.Equal(body, decoded);
            Assert.Equal(ieof, decoder.Ieof);
            Assert.Equal(useOriginalBody, decoder.UseOriginalBody);
            Assert.Equal(bytes.Length, consumed);
            Assert.Equal(body.Length, decoder.BodyLength);
        }
    }

    [Fact]
    public void ContinuesAfterPreview()
    {
        var bytes = Encoding.ASCII.GetBytes("4\r\nhell\r\n0\r\n\r\n1\r\no\r\n0\r\n\r\n");
        var decoder = new IcapChunkedDecoder(IcapParserLimits.Default);
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(bytes));
        Assert.Equal(IcapChunkedReadStatus.Data, decoder.Read(ref reader, 100, out var d1));
        Assert.Equal("hell", Encoding.ASCII.GetString(d1.ToArray()));
        Assert.Equal(IcapChunkedReadStatus.Completed, decoder.Read(ref reader, 100, out _));
        Assert.False(decoder.Ieof);
        decoder.ContinueAfterPreview();
        Assert.Equal(IcapChunkedReadStatus.Data, decoder.Read(ref reader, 100, out var d2));
        Assert.Equal("o", Encoding.ASCII.GetString(d2.ToArray()));
        Assert.Equal(IcapChunkedReadStatus.Completed, decoder.Read(ref reader, 100, out _));
        Assert.True(reader.End);
        Assert.Equal(5, decoder.BodyLength);
    }

    [Fact]
    public void IncompleteSizeLine_ConsumesNothing()
    {
        var decoder = new IcapChunkedDecoder(IcapParserLimits.Default);
        var bytes = Encoding.ASCII.GetBytes("1f; ie");
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(bytes));
        Assert.Equal(IcapChunkedReadStatus.NeedMoreData, decoder.Read(ref reader, 100, out _));
        Assert.Equal(0, reader.Consumed);
    }

    [Theory]
    [InlineData("g\r\n", IcapRejectionReason.InvalidChunkSize)]
    [InlineData("x", IcapRejectionReason.InvalidChunkSize)]
    [InlineData("-1\r\n", IcapRejectionReason.InvalidChunkSize)]
    [InlineData("5 5\r\n", IcapRejectionReason.InvalidChunkSize)]
    [InlineData("ffffffffffffffffffff\r\n", IcapRejectionReason.ChunkSizeTooLarge)]
    [InlineData("1000001\r\n", IcapRejectionReason.ChunkSizeTooLarge)]
    [InlineData("3\nabc", IcapRejectionReason.InvalidLineEnding)]
    [InlineData("3\r\nabcd", IcapRejectionReason.InvalidChunkTerminator)]
    [InlineData("0; use-original-body=x\r\n\r\n", IcapRejectionReason.InvalidChunkExtension)]
    [InlineData("3; use-original-body=1\r\n", IcapRejectionReason.InvalidChunkExtension)]
    [InlineData("0; =x\r\n\r\n", IcapRejectionReason.InvalidChunkExtension)]
    [InlineData("0\r\nbad trailer\r\n\r\n", IcapRejectionReason.InvalidHeaderLine)]
    public void Rejects(string raw, IcapRejectionReason reason)
    {
        var ex = Assert.Throws<IcapProtocolException>(() => Decode(Encoding.ASCII.GetBytes(raw), int.MaxValue));
        Assert.Equal(reason, ex.Reason);
    }

    [Fact]
    public void Writer_RoundTrips()
    {
        var buffer = new ArrayBufferWriter<byte>();
        IcapWriter.WriteChunk(buffer, "hello"u8);
        IcapWriter.WriteChunk(buffer, new byte[300]);
        IcapWriter.WriteChunk(buffer, ReadOnlySpan<byte>.Empty);
        IcapWriter.WriteUseOriginalBody(buffer, 305);
        var text = Encoding.ASCII.GetString(buffer.WrittenSpan);
        Assert.StartsWith("5\r\nhello\r\n12c\r\n", text);
        Assert.EndsWith("\r\n0; use-original-body=305\r\n\r\n", text);
        var (body, decoder, _) = Decode(buffer.WrittenSpan.ToArray(), 7);
        Assert.Equal(305, body.Length);
        Assert.Equal(305, decoder.UseOriginalBody);

        buffer.Clear();
        IcapWriter.WriteLastChunk(buffer, ieof: true);
        Assert.Equal("0; ieof\r\n\r\n", Encoding.ASCII.GetString(buffer.WrittenSpan));
    }
}
