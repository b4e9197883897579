using Gateway.Icap.Protocol;

namespace Gateway.Icap.Tests.Protocol;

public sealed class IcapEncapsulatedTests
{
    [Theory]
    [InlineData("req-hdr=0, null-body=170", 0, -1, IcapSection.NullBody, 170)]
    [InlineData("req-hdr=0,res-hdr=137,res-body=296", 0, 137, IcapSection.ResBody, 296)]
    [InlineData("res-hdr=0, res-body=65", -1, 0, IcapSection.ResBody, 65)]
    [InlineData("opt-body=0", -1, -1, IcapSection.OptBody, 0)]
    [InlineData("REQ-HDR=0 , REQ-BODY=10", 0, -1, IcapSection.ReqBody, 10)]
    public void Parses(string value, int req, int res, IcapSection body, int offset)
    {
        var e = IcapEncapsulated.Parse(value);
        Assert.Equal(new IcapEncapsulated(req, res, body, offset), e);
    }

    [Theory]
    [InlineData("")]
    [InlineData("req-hdr=0")]
    [InlineData("null-body=0, req-hdr=0")]
    [InlineData("req-hdr=0, res-hdr=0, res-body=5")]
    [InlineData("res-hdr=0, req-hdr=10, res-body=20")]
    [InlineData("req-hdr=0, req-body=10, null-body=20")]
    [InlineData("req-hdr=-1, null-body=3")]
    [InlineData("req-hdr=0, null-body=99999999999")]
    [InlineData("req-hdr 0, null-body=3")]
    public void Rejects(string value)
    {
        var ex = Assert.Throws<IcapProtocolException>(() => IcapEncapsulated.Parse(value));
        Assert.Equal(IcapRejectionReason.InvalidEncapsulated, ex.Reason);
    }

    [Theory]
    [InlineData(IcapMethod.Reqmod, false, "req-hdr=0, req-body=5", true)]
    [InlineData(IcapMethod.Reqmod, false, "req-hdr=0, null-body=5", true)]
    [InlineData(IcapMethod.Reqmod, false, "res-hdr=0, res-body=5", false)]
    [InlineData(IcapMethod.Reqmod, false, "opt-body=0", false)]
    [InlineData(IcapMethod.Reqmod, true, "res-hdr=0, res-body=5", true)]
    [InlineData(IcapMethod.Reqmod, true, "req-hdr=0, res-hdr=5, res-body=9", false)]
    [InlineData(IcapMethod.Respmod, false, "req-hdr=0, res-hdr=5, res-body=9", true)]
    [InlineData(IcapMethod.Respmod, false, "req-hdr=0, req-body=5", false)]
    [InlineData(IcapMethod.Respmod, true, "res-hdr=0, null-body=5", true)]
    [InlineData(IcapMethod.Options, false, "null-body=0", true)]
    [InlineData(IcapMethod.Options, false, "req-hdr=0, null-body=5", false)]
    [InlineData(IcapMethod.Options, true, "opt-body=0", true)]
    public void Validates_LegalSets(IcapMethod method, bool response, string value, bool legal)
        => Assert.Equal(legal, IcapEncapsulated.Parse(value).IsLegalFor(method, response));

    [Fact]
    public void Create_ComputesOffsets()
    {
        Assert.Equal("req-hdr=0, res-hdr=10, res-body=30", IcapEncapsulated.Create(10, 20, IcapSection.ResBody).ToString());
        Assert.Equal("res-hdr=0, null-body=20", IcapEncapsulated.Create(0, 20, IcapSection.NullBody).ToString());
        Assert.Equal("null-body=0", IcapEncapsulated.Create(0, 0, IcapSection.NullBody).ToString());
    }
}
