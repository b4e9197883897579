using System.Text;
using Gateway.Icap.Protocol;

namespace Gateway.Icap.Tests.Protocol;

/// <summary>
/// The one table of ICAP request messages: valid ones (parsed by unit tests, answered by the server end to end) and
/// invalid ones with the rejection reason and the ICAP status the server answers.
/// </summary>
public static class IcapMessageTable
{
    public sealed record Valid(string Name, string Raw, IcapMethod Method, string Service, string Encapsulated, string? HttpRequestLine,
        int? HttpStatus, string Body, int? Preview, bool Ieof)
    {
        public byte[] Bytes => Encoding.Latin1.GetBytes(Raw);

        public override string ToString() => Name;
    }

    public sealed record Invalid(string Name, string Raw, IcapRejectionReason Reason, int Status)
    {
        public byte[] Bytes => Encoding.Latin1.GetBytes(Raw);

        public override string ToString() => Name;
    }

    private const string ReqHdr = "GET /index.html HTTP/1.1\r\nHost: origin.example\r\nAccept: */*\r\n\r\n";
    private const string PostHdr = "POST /form HTTP/1.1\r\nHost: origin.example\r\nContent-Length: 11\r\n\r\n";
    private const string ResHdr = "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 11\r\n\r\n";

    public static readonly IReadOnlyList<Valid> ValidMessages =
    [
        new("options",
            "OPTIONS icap://127.0.0.1:1344/echo ICAP/1.0\r\nHost: 127.0.0.1\r\n\r\n",
            IcapMethod.Options, "echo", "null-body=0", null, null, "", null, false),
        new("options-null-body",
            "OPTIONS icap://127.0.0.1/echo ICAP/1.0\r\nHost: 127.0.0.1\r\nEncapsulated: null-body=0\r\n\r\n",
            IcapMethod.Options, "echo", "null-body=0", null, null, "", null, false),
        new("reqmod-null-body",
            $"REQMOD icap://127.0.0.1/echo ICAP/1.0\r\nHost: 127.0.0.1\r\nEncapsulated: req-hdr=0, null-body={ReqHdr.Length}\r\n\r\n{ReqHdr}",
            IcapMethod.Reqmod, "echo", $"req-hdr=0, null-body={ReqHdr.Length}", "GET /index.html HTTP/1.1", null, "", null, false),
        new("reqmod-body",
            $"REQMOD icap://127.0.0.1/echo ICAP/1.0\r\nHost: 127.0.0.1\r\nAllow: 204\r\nEncapsulated: req-hdr=0, req-body={PostHdr.Length}\r\n\r\n{PostHdr}b\r\nhello world\r\n0\r\n\r\n",
            IcapMethod.Reqmod, "echo", $"req-hdr=0, req-body={PostHdr.Length}", "POST /form HTTP/1.1", null, "hello world", null, false),
        new("reqmod-preview-ieof",
            $"REQMOD icap://127.0.0.1/echo?x=1 ICAP/1.0\r\nHost: 127.0.0.1\r\nPreview: 1024\r\nEncapsulated: req-hdr=0, req-body={PostHdr.Length}\r\n\r\n{PostHdr}b\r\nhello world\r\n0; ieof\r\n\r\n",
            IcapMethod.Reqmod, "echo", $"req-hdr=0, req-body={PostHdr.Length}", "POST /form HTTP/1.1", null, "hello world", 1024, true),
        new("respmod-body",
            $"RESPMOD icap://127.0.0.1:1344/echo ICAP/1.0\r\nHost: 127.0.0.1\r\nEncapsulated: req-hdr=0, res-hdr={ReqHdr.Length}, res-body={ReqHdr.Length + ResHdr.Length}\r\n\r\n{ReqHdr}{ResHdr}6\r\nhello \r\n5; ext=\"q\"\r\nworld\r\n0\r\n\r\n",
            IcapMethod.Respmod, "echo", $"req-hdr=0, res-hdr={ReqHdr.Length}, res-body={ReqHdr.Length + ResHdr.Length}", "GET /index.html HTTP/1.1", 200, "hello world", null, false),
        new("respmod-preview-continue",
            $"RESPMOD icap://127.0.0.1/echo ICAP/1.0\r\nHost: 127.0.0.1\r\nPreview: 4\r\nEncapsulated: res-hdr=0, res-body={ResHdr.Length}\r\n\r\n{ResHdr}4\r\nhell\r\n0\r\n\r\n",
            IcapMethod.Respmod, "echo", $"res-hdr=0, res-body={ResHdr.Length}", null, 200, "hell", 4, false),
        new("respmod-preview-zero-ieof",
            $"RESPMOD icap://127.0.0.1/echo ICAP/1.0\r\nHost: 127.0.0.1\r\nPreview: 0\r\nEncapsulated: res-hdr=0, res-body={ResHdr.Length}\r\n\r\n{ResHdr}0; ieof\r\n\r\n",
            IcapMethod.Respmod, "echo", $"res-hdr=0, res-body={ResHdr.Length}", null, 200, "", 0, true),
        new("respmod-preview-null-body",
            $"RESPMOD icap://127.0.0.1/echo ICAP/1.0\r\nHost: 127.0.0.1\r\nPreview: 0\r\nEncapsulated: res-hdr=0, null-body={ResHdr.Length}\r\n\r\n{ResHdr}",
            IcapMethod.Respmod, "echo", $"res-hdr=0, null-body={ResHdr.Length}", null, 200, "", 0, false),
        new("respmod-trailers",
            $"RESPMOD icap://127.0.0.1/echo ICAP/1.0\r\nHost: 127.0.0.1\r\nAllow: 204, trailers\r\nEncapsulated: res-hdr=0, res-body={ResHdr.Length}\r\n\r\n{ResHdr}3\r\nabc\r\n0\r\nX-Scan: clean\r\n\r\n",
            IcapMethod.Respmod, "echo", $"res-hdr=0, res-body={ResHdr.Length}", null, 200, "abc", null, false),
        new("reqmod-body-only",
            "REQMOD icap://127.0.0.1/echo ICAP/1.0\r\nHost: 127.0.0.1\r\nEncapsulated: req-body=0\r\n\r\n3\r\nxyz\r\n0\r\n\r\n",
            IcapMethod.Reqmod, "echo", "req-body=0", null, null, "xyz", null, false),
    ];

    private static string Reqmod(string encapsulated, string rest) =>
        $"REQMOD icap://127.0.0.1/echo ICAP/1.0\r\nHost: 127.0.0.1\r\nEncapsulated: {encapsulated}\r\n\r\n{rest}";

    public static readonly IReadOnlyList<Invalid> InvalidMessages =
    [
        new("bad-request-line", "REQMOD\r\n\r\n", IcapRejectionReason.InvalidRequestLine, 400),
        new("bad-request-line-no-version", "OPTIONS icap://127.0.0.1/echo\r\n\r\n", IcapRejectionReason.InvalidRequestLine, 400),
        new("request-line-garbage", "\u0001\u0002 x y\r\n\r\n", IcapRejectionReason.InvalidRequestLine, 400),
        new("empty-request-line", "\r\n\r\n", IcapRejectionReason.InvalidRequestLine, 400),
        new("unknown-method", "GET icap://127.0.0.1/echo ICAP/1.0\r\nHost: x\r\n\r\n", IcapRejectionReason.UnknownMethod, 501),
        new("lowercase-method", "options icap://127.0.0.1/echo ICAP/1.0\r\nHost: x\r\n\r\n", IcapRejectionReason.UnknownMethod, 501),
        new("icap-2.0", "OPTIONS icap://127.0.0.1/echo ICAP/2.0\r\nHost: x\r\n\r\n", IcapRejectionReason.UnsupportedVersion, 505),
        new("http-version", "OPTIONS icap://127.0.0.1/echo HTTP/1.1\r\nHost: x\r\n\r\n", IcapRejectionReason.InvalidRequestLine, 400),
        new("bad-uri", "OPTIONS http://127.0.0.1/echo ICAP/1.0\r\nHost: x\r\n\r\n", IcapRejectionReason.InvalidUri, 400),
        new("bare-lf", "OPTIONS icap://127.0.0.1/echo ICAP/1.0\nHost: x\n\n", IcapRejectionReason.InvalidLineEnding, 400),
        new("header-no-colon", "OPTIONS icap://127.0.0.1/echo ICAP/1.0\r\nHost x\r\n\r\n", IcapRejectionReason.InvalidHeaderLine, 400),
        new("header-space-before-colon", "OPTIONS icap://127.0.0.1/echo ICAP/1.0\r\nHost : x\r\n\r\n", IcapRejectionReason.InvalidHeaderLine, 400),
        new("header-obs-fold", "OPTIONS icap://127.0.0.1/echo ICAP/1.0\r\nHost: x\r\n folded\r\n\r\n", IcapRejectionReason.InvalidHeaderLine, 400),
        new("missing-encapsulated", "REQMOD icap://127.0.0.1/echo ICAP/1.0\r\nHost: x\r\n\r\n", IcapRejectionReason.MissingEncapsulated, 400),
        new("duplicate-encapsulated", "REQMOD icap://127.0.0.1/echo ICAP/1.0\r\nEncapsulated: null-body=0\r\nEncapsulated: null-body=0\r\n\r\n",
            IcapRejectionReason.DuplicateEncapsulated, 400),
        new("disordered-encapsulated", Reqmod("req-body=70, req-hdr=0", ""), IcapRejectionReason.InvalidEncapsulated, 400),
        new("encapsulated-not-starting-at-0", Reqmod("req-hdr=5, null-body=70", ""), IcapRejectionReason.InvalidEncapsulated, 400),
        new("encapsulated-unknown-entity", Reqmod("foo-hdr=0, null-body=10", ""), IcapRejectionReason.InvalidEncapsulated, 400),
        new("encapsulated-no-body-entity", Reqmod("req-hdr=0", ""), IcapRejectionReason.InvalidEncapsulated, 400),
        new("encapsulated-bad-number", Reqmod("req-hdr=0, null-body=x1", ""), IcapRejectionReason.InvalidEncapsulated, 400),
        new("reqmod-with-res-body", Reqmod("res-hdr=0, res-body=10", ""), IcapRejectionReason.EncapsulatedNotAllowed, 400),
        new("respmod-with-req-body", "RESPMOD icap://127.0.0.1/echo ICAP/1.0\r\nEncapsulated: req-hdr=0, req-body=10\r\n\r\n",
            IcapRejectionReason.EncapsulatedNotAllowed, 400),
        new("offset-past-data", Reqmod("req-hdr=0, null-body=30", "GET / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\n"),
            IcapRejectionReason.EncapsulatedOffsetMismatch, 400),
        new("offset-short-of-data", Reqmod("req-hdr=0, null-body=20", "GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
            IcapRejectionReason.EncapsulatedOffsetMismatch, 400),
        new("bad-http-request-line", Reqmod("req-hdr=0, null-body=11", "GARBAGE\r\n\r\n"), IcapRejectionReason.InvalidHttpRequestLine, 400),
        new("chunk-size-not-hex", Reqmod("req-body=0", "zz\r\nabc\r\n0\r\n\r\n"), IcapRejectionReason.InvalidChunkSize, 400),
        new("chunk-size-trailing-garbage", Reqmod("req-body=0", "3 x\r\nabc\r\n0\r\n\r\n"), IcapRejectionReason.InvalidChunkSize, 400),
        new("chunk-size-overflow", Reqmod("req-body=0", "fffffffffffffffffffff\r\nabc\r\n0\r\n\r\n"), IcapRejectionReason.ChunkSizeTooLarge, 413),
        new("chunk-missing-crlf", Reqmod("req-body=0", "3\r\nabcX\r\n0\r\n\r\n"), IcapRejectionReason.InvalidChunkTerminator, 400),
        new("ieof-on-data-chunk", Reqmod("req-body=0", "3; ieof\r\nabc\r\n0\r\n\r\n"), IcapRejectionReason.InvalidChunkExtension, 400),
        new("bad-preview", "RESPMOD icap://127.0.0.1/echo ICAP/1.0\r\nPreview: ten\r\nEncapsulated: null-body=0\r\n\r\n",
            IcapRejectionReason.InvalidPreview, 400),
        new("header-section-over-limit", "OPTIONS icap://127.0.0.1/echo ICAP/1.0\r\n" + string.Concat(Enumerable.Repeat("X-Filler: " + new string('a', 1000) + "\r\n", 80)) + "\r\n",
            IcapRejectionReason.HeadersTooLarge, 413),
        new("too-many-headers", "OPTIONS icap://127.0.0.1/echo ICAP/1.0\r\n" + string.Concat(Enumerable.Range(0, 120).Select(i => $"X-H{i}: v\r\n")) + "\r\n",
            IcapRejectionReason.TooManyHeaders, 413),
        new("line-too-long", "OPTIONS icap://127.0.0.1/" + new string('a', 20000) + " ICAP/1.0\r\n\r\n", IcapRejectionReason.LineTooLong, 413),
    ];

    public static TheoryData<string> ValidNames()
    {
        var data = new TheoryData<string>();
        foreach (var m in ValidMessages) data.Add(m.Name);
        return data;
    }

    public static TheoryData<string> InvalidNames()
    {
        var data = new TheoryData<string>();
        foreach (var m in InvalidMessages) data.Add(m.Name);
        return data;
    }

    public static Valid GetValid(string name) => ValidMessages.Single(m => m.Name == name);

    public static Invalid GetInvalid(string name) => InvalidMessages.Single(m => m.Name == name);
}
