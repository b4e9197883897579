using System.Buffers;
using System.Text;
using Gateway.Icap.Protocol;

namespace Gateway.Icap.Tests.Protocol;

/// <summary>Test composition of the protocol parsers: a whole request message, all or nothing.</summary>
internal sealed record ParsedMessage(IcapRequestHead Head, HttpRequestHead? HttpRequest, HttpResponseHead? HttpResponse, string Body,
    bool Ieof, IcapHeaders? Trailers);

internal static class MessageParser
{
    public static bool TryParse(ref SequenceReader<byte> reader, IcapParserLimits limits, out ParsedMessage? message)
    {
        message = null;
        var copy = reader;
        if (!IcapParser.TryParseRequestHead(ref copy, limits, out var head)) return false;
        if (!IcapParser.TryParseEncapsulatedHeads(ref copy, head.Encapsulated, limits, out var req, out var res)) return false;
        var body = new StringBuilder();
        var decoder = new IcapChunkedDecoder(limits);
        if (head.Encapsulated.HasBody)
        {
            while (true)
            {
                var status = decoder.Read(ref copy, 7, out var data);
                if (status == IcapChunkedReadStatus.NeedMoreData) return false;
                if (status == IcapChunkedReadStatus.Completed) break;
                body.Append(Encoding.Latin1.GetString(data.ToArray()));
            }
        }
        message = new ParsedMessage(head, req, res, body.ToString(), decoder.Ieof, decoder.Trailers);
        reader = copy;
        return true;
    }

    public static ParsedMessage Parse(ReadOnlySequence<byte> sequence, IcapParserLimits? limits = null)
    {
        var reader = new SequenceReader<byte>(sequence);
        Assert.True(TryParse(ref reader, limits ?? IcapParserLimits.Default, out var message), "message incomplete");
        Assert.True(reader.End, "message not consumed to the end");
        return message!;
    }
}
