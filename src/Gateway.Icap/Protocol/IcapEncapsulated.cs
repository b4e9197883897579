using System.Globalization;
using System.Text;

namespace Gateway.Icap.Protocol;

/// <summary>The entities an <c>Encapsulated</c> header can name (RFC 3507 §4.4.1).</summary>
public enum IcapSection
{
    ReqHdr,
    ResHdr,
    ReqBody,
    ResBody,
    NullBody,
    OptBody,
}

/// <summary>
/// The <c>Encapsulated</c> header: optional <c>req-hdr</c>, optional <c>res-hdr</c>, then exactly one body entity
/// (<c>req-body</c>, <c>res-body</c>, <c>opt-body</c> or <c>null-body</c>), offsets from the start of the encapsulated part.
/// A header offset of -1 means the section is absent.
/// </summary>
public readonly record struct IcapEncapsulated(int ReqHdr, int ResHdr, IcapSection Body, int BodyOffset)
{
    /// <summary><c>null-body=0</c>: nothing encapsulated.</summary>
    public static IcapEncapsulated NullBody { get; } = new(-1, -1, IcapSection.NullBody, 0);

    public bool HasReqHdr => ReqHdr >= 0;

    public bool HasResHdr => ResHdr >= 0;

    /// <summary>A chunked body follows the heads.</summary>
    public bool HasBody => Body != IcapSection.NullBody;

    public int ReqHdrLength => HasReqHdr ? (HasResHdr ? ResHdr : BodyOffset) - ReqHdr : 0;

    public int ResHdrLength => HasResHdr ? BodyOffset - ResHdr : 0;

    /// <summary>Builds the header for heads of the given lengths (0 = absent) followed by <paramref name="body"/>.</summary>
    public static IcapEncapsulated Create(int reqHdrLength, int resHdrLength, IcapSection body)
    {
        if (body is IcapSection.ReqHdr or IcapSection.ResHdr) throw new ArgumentOutOfRangeException(nameof(body));
        var offset = 0;
        var req = -1;
        var res = -1;
        if (reqHdrLength > 0)
        {
            req = 0;
            offset = reqHdrLength;
        }
        if (resHdrLength > 0)
        {
            res = offset;
            offset += resHdrLength;
        }
        return new IcapEncapsulated(req, res, body, offset);
    }

    public static string GetToken(IcapSection section) => section switch
    {
        IcapSection.ReqHdr => "req-hdr",
        IcapSection.ResHdr => "res-hdr",
        IcapSection.ReqBody => "req-body",
        IcapSection.ResBody => "res-body",
        IcapSection.NullBody => "null-body",
        IcapSection.OptBody => "opt-body",
        _ => throw new ArgumentOutOfRangeException(nameof(section)),
    };

    public override string ToString()
    {
        var sb = new StringBuilder(48);
        if (HasReqHdr) sb.Append("req-hdr=").Append(ReqHdr.ToString(CultureInfo.InvariantCulture)).Append(", ");
        if (HasResHdr) sb.Append("res-hdr=").Append(ResHdr.ToString(CultureInfo.InvariantCulture)).Append(", ");
        sb.Append(GetToken(Body)).Append('=').Append(BodyOffset.ToString(CultureInfo.InvariantCulture));
        return sb.ToString();
    }

    /// <summary>Parses a header value; throws <see cref="IcapProtocolException"/> (InvalidEncapsulated) on syntax or order errors.</summary>
    public static IcapEncapsulated Parse(string value)
    {
        var s = value.AsSpan();
        int req = -1, res = -1, bodyOffset = -1, last = -1;
        IcapSection? body = null;
        var index = 0;
        foreach (var range in s.Split(','))
        {
            var item = s[range].Trim(" \t");
            var eq = item.IndexOf('=');
            if (eq <= 0 || body is not null) Invalid(value);
            var name = item[..eq].Trim(" \t");
            var num = item[(eq + 1)..].Trim(" \t");
            if (num.Length is 0 or > 10 || !int.TryParse(num, NumberStyles.None, CultureInfo.InvariantCulture, out var offset))
            {
                Invalid(value);
                return default;
            }
            // Offsets start at 0 and grow; a header section is never empty, so header offsets grow strictly.
            if (index == 0 ? offset != 0 : offset <= last) Invalid(value);
            if (name.Equals("req-hdr", StringComparison.OrdinalIgnoreCase))
            {
                if (index != 0) Invalid(value);
                req = offset;
            }
            else if (name.Equals("res-hdr", StringComparison.OrdinalIgnoreCase))
            {
                if (res >= 0) Invalid(value);
                res = offset;
            }
            else
            {
                body = name switch
                {
                    _ when name.Equals("req-body", StringComparison.OrdinalIgnoreCase) => IcapSection.ReqBody,
                    _ when name.Equals("res-body", StringComparison.OrdinalIgnoreCase) => IcapSection.ResBody,
                    _ when name.Equals("null-body", StringComparison.OrdinalIgnoreCase) => IcapSection.NullBody,
                    _ when name.Equals("opt-body", StringComparison.OrdinalIgnoreCase) => IcapSection.OptBody,
                    _ => Invalid<IcapSection>(value),
                };
                bodyOffset = offset;
            }
            last = offset;
            index++;
        }
        if (body is not { } b) return Invalid<IcapEncapsulated>(value);
        return new IcapEncapsulated(req, res, b, bodyOffset);
    }

    /// <summary>
    /// True when this set of entities is legal for <paramref name="method"/> in a request (<paramref name="isResponse"/> false)
    /// or in the response to such a request (RFC 3507 §4.4.1).
    /// </summary>
    public bool IsLegalFor(IcapMethod method, bool isResponse) => (method, isResponse) switch
    {
        (IcapMethod.Options, _) => !HasReqHdr && !HasResHdr && Body is IcapSection.OptBody or IcapSection.NullBody,
        (IcapMethod.Reqmod, false) => !HasResHdr && Body is IcapSection.ReqBody or IcapSection.NullBody,
        (IcapMethod.Respmod, _) => Body is IcapSection.ResBody or IcapSection.NullBody,
        // A REQMOD response carries either the (modified) request or an HTTP response that satisfies it.
        (IcapMethod.Reqmod, true) => (!HasResHdr && Body is IcapSection.ReqBody or IcapSection.NullBody)
            || (!HasReqHdr && Body is IcapSection.ResBody or IcapSection.NullBody),
        _ => false,
    };

    [System.Diagnostics.CodeAnalysis.DoesNotReturn]
    private static void Invalid(string value) => IcapThrow.Reject(IcapRejectionReason.InvalidEncapsulated, value);

    private static T Invalid<T>(string value) => throw new IcapProtocolException(IcapRejectionReason.InvalidEncapsulated, value);
}
