using System.Net;
using System.Net.Sockets;

namespace Gateway.Proxy;

/// <summary>An address range in CIDR notation. Host bits in the base address are ignored (<c>127.0.0.1/8</c> = <c>127.0.0.0/8</c>).</summary>
public readonly struct CidrRange
{
    private readonly byte[] _network;
    private readonly int _prefix;

    private CidrRange(byte[] network, int prefix)
    {
        _network = network;
        _prefix = prefix;
    }

    public AddressFamily Family => _network.Length == 4 ? AddressFamily.InterNetwork : AddressFamily.InterNetworkV6;

    public static bool TryParse(string? text, out CidrRange range, out string? error)
    {
        range = default;
        error = null;
        if (string.IsNullOrWhiteSpace(text))
        {
            error = "empty address range";
            return false;
        }
        var slash = text.IndexOf('/');
        var addressText = slash < 0 ? text : text[..slash];
        if (!IPAddress.TryParse(addressText, out var address))
        {
            error = $"'{text}' is not an IP address or CIDR range";
            return false;
        }
        var bytes = address.GetAddressBytes();
        var maxPrefix = bytes.Length * 8;
        var prefix = maxPrefix;
        if (slash >= 0 && (!int.TryParse(text.AsSpan(slash + 1), System.Globalization.NumberStyles.None, null, out prefix) || prefix > maxPrefix))
        {
            error = $"'{text}': prefix length must be 0..{maxPrefix}";
            return false;
        }
        Mask(bytes, prefix);
        range = new CidrRange(bytes, prefix);
        return true;
    }

    public bool Contains(IPAddress? address)
    {
        if (address is null || _network is null)
        {
            return false;
        }
        if (address.IsIPv4MappedToIPv6 && _network.Length == 4)
        {
            address = address.MapToIPv4();
        }
        Span<byte> bytes = stackalloc byte[16];
        if (!address.TryWriteBytes(bytes, out var written) || written != _network.Length)
        {
            return false;
        }
        bytes = bytes[..written];
        Mask(bytes, _prefix);
        return bytes.SequenceEqual(_network);
    }

    private static void Mask(Span<byte> bytes, int prefix)
    {
        for (var i = 0; i < bytes.Length; i++)
        {
            var bits = Math.Clamp(prefix - i * 8, 0, 8);
            bytes[i] &= (byte)(0xFF << (8 - bits));
        }
    }

    public override string ToString() => $"{new IPAddress(_network)}/{_prefix}";
}
