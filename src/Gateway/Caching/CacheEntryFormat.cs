using System.Buffers;
using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.InteropServices;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace Gateway.Caching;

/// <summary>
/// The on-disk layout of one cache entry file (<c>*.gwc</c>). All integers little-endian.
/// <code>
/// offset  size  field
///  0      4     magic "GWCE" (0x47 0x57 0x43 0x45)
///  4      2     format version (1); any other version is a miss: the file is logged and removed
///  6      2     flags: bit 0 = archived copy (never served by lookups)
///  8      4     M = length of the metadata block
/// 12      4     H = length of the headers block
/// 16      8     B = length of the body
/// 24      4     CRC-32C of metadata block followed by headers block
/// 28      4     CRC-32C of the body
/// 32      M     metadata block, in order:
///                 string key (primary cache key), string url, string varyNames (comma-separated, lower case),
///                 string varyKey (the request's values of those headers, normalized), string location ("" = default),
///                 string archivePeriod ("" unless archived), string adaptationTags ("" = none),
///                 int64 requestTime, int64 responseTime (Unix milliseconds: when the request that produced the
///                 stored response was sent and its response received), int32 status
/// 32+M    H     headers block: int32 count, then count pairs (string name, string value), one pair per field line value
/// 32+M+H  B     body, exactly as sent to the client
/// </code>
/// A <c>string</c> is a 7-bit encoded length (as <see cref="BinaryWriter"/>) followed by UTF-8 bytes. The file length
/// must be exactly 32+M+H+B: a short file (a write that never finished) or a checksum mismatch is a miss.
/// Files are written under a temporary name, flushed, then renamed into place, so a reader sees either the old
/// complete entry or the new complete entry.
/// </summary>
internal static class CacheEntryFormat
{
    public const int FixedHeaderSize = 32;
    public const ushort Version = 1;
    public const ushort FlagArchived = 1;
    public static ReadOnlySpan<byte> Magic => "GWCE"u8;
    public const string Extension = ".gwc";

    /// <summary>Serializes the fixed header (body length and body CRC zero until <see cref="PatchBody"/>), metadata and headers.</summary>
    public static byte[] BuildHead(EntryMeta meta, IReadOnlyList<KeyValuePair<string, string>> headers, ushort flags = 0)
    {
        using var ms = new MemoryStream(512);
        ms.Write(new byte[FixedHeaderSize]);
        using (var w = new BinaryWriter(ms, Encoding.UTF8, leaveOpen: true))
        {
            w.Write(meta.Key);
            w.Write(meta.Url);
            w.Write(meta.VaryNames);
            w.Write(meta.VaryKey);
            w.Write(meta.Location);
            w.Write(meta.ArchivePeriod);
            w.Write(meta.AdaptationTags);
            w.Write(meta.RequestTime);
            w.Write(meta.ResponseTime);
            w.Write(meta.Status);
            w.Flush();
            var metaLength = (int)ms.Length - FixedHeaderSize;
            w.Write(headers.Count);
            foreach (var h in headers)
            {
                w.Write(h.Key);
                w.Write(h.Value);
            }
            w.Flush();
            var buffer = ms.GetBuffer();
            var total = (int)ms.Length;
            var span = buffer.AsSpan(0, FixedHeaderSize);
            Magic.CopyTo(span);
            BinaryPrimitives.WriteUInt16LittleEndian(span[4..], Version);
            BinaryPrimitives.WriteUInt16LittleEndian(span[6..], flags);
            BinaryPrimitives.WriteInt32LittleEndian(span[8..], metaLength);
            BinaryPrimitives.WriteInt32LittleEndian(span[12..], total - FixedHeaderSize - metaLength);
            BinaryPrimitives.WriteUInt32LittleEndian(span[24..], Crc32C.Compute(buffer.AsSpan(FixedHeaderSize, total - FixedHeaderSize)));
        }
        return ms.ToArray();
    }

    /// <summary>Writes body length and body CRC into the fixed header of a file being written.</summary>
    public static void PatchBody(SafeFileHandle file, long bodyLength, uint bodyCrc)
    {
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteInt64LittleEndian(length, bodyLength);
        RandomAccess.Write(file, length, 16);
        Span<byte> crc = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(crc, bodyCrc);
        RandomAccess.Write(file, crc, 28);
    }

    /// <summary>
    /// Reads and checks the fixed header, metadata and headers of an entry file. Returns null and a reason when the
    /// file is not a complete entry of a known version (the body checksum is checked separately: <see cref="VerifyBody"/>).
    /// </summary>
    /// <param name="indexOnly">Keep only the fields the index needs (freshness and validators): used when the
    /// index is rebuilt at start-up, where allocating every header of 100,000 entries would dominate.</param>
    public static EntryHead? TryReadHead(SafeFileHandle file, out string? error, bool indexOnly = false)
    {
        var fileLength = RandomAccess.GetLength(file);
        if (fileLength < FixedHeaderSize)
        {
            error = $"truncated file ({fileLength} bytes)";
            return null;
        }
        var rented = ArrayPool<byte>.Shared.Rent(4096);
        try
        {
            var read = ReadAtLeast(file, rented.AsSpan(0, (int)Math.Min(rented.Length, fileLength)), 0);
            var fixedPart = rented.AsSpan(0, FixedHeaderSize);
            if (read < FixedHeaderSize || !fixedPart[..4].SequenceEqual(Magic))
            {
                error = "not a cache entry (bad magic)";
                return null;
            }
            var version = BinaryPrimitives.ReadUInt16LittleEndian(fixedPart[4..]);
            if (version != Version)
            {
                error = $"unknown format version {version}";
                return null;
            }
            var flags = BinaryPrimitives.ReadUInt16LittleEndian(fixedPart[6..]);
            var metaLength = BinaryPrimitives.ReadInt32LittleEndian(fixedPart[8..]);
            var headersLength = BinaryPrimitives.ReadInt32LittleEndian(fixedPart[12..]);
            var bodyLength = BinaryPrimitives.ReadInt64LittleEndian(fixedPart[16..]);
            var headCrc = BinaryPrimitives.ReadUInt32LittleEndian(fixedPart[24..]);
            var bodyCrc = BinaryPrimitives.ReadUInt32LittleEndian(fixedPart[28..]);
            if (metaLength < 0 || headersLength < 0 || bodyLength < 0 || (long)metaLength + headersLength > 16 << 20
                || FixedHeaderSize + (long)metaLength + headersLength + bodyLength != fileLength)
            {
                error = $"length mismatch (file {fileLength} bytes, recorded {FixedHeaderSize}+{metaLength}+{headersLength}+{bodyLength})";
                return null;
            }
            var headLength = metaLength + headersLength;
            byte[] head;
            if (FixedHeaderSize + headLength <= read)
            {
                head = rented.AsSpan(FixedHeaderSize, headLength).ToArray();
            }
            else
            {
                head = new byte[headLength];
                if (ReadAtLeast(file, head, FixedHeaderSize) < headLength)
                {
                    error = "truncated head";
                    return null;
                }
            }
            if (Crc32C.Compute(head) != headCrc)
            {
                error = "head checksum mismatch";
                return null;
            }
            var reader = new SpanReader(head);
            if (!reader.TryReadString(out var key) || !reader.TryReadString(out var url) || !reader.TryReadString(out var varyNames)
                || !reader.TryReadString(out var varyKey) || !reader.TryReadString(out var location) || !reader.TryReadString(out var archivePeriod)
                || !reader.TryReadString(out var adaptationTags) || !reader.TryReadInt64(out var requestTime) || !reader.TryReadInt64(out var responseTime)
                || !reader.TryReadInt32(out var status) || reader.Position != metaLength)
            {
                error = "malformed metadata block";
                return null;
            }
            var meta = new EntryMeta
            {
                Key = key, Url = url, VaryNames = varyNames, VaryKey = varyKey, Location = location, ArchivePeriod = archivePeriod,
                AdaptationTags = adaptationTags, RequestTime = requestTime, ResponseTime = responseTime, Status = status,
            };
            if (!reader.TryReadInt32(out var count) || count < 0 || count > 10_000)
            {
                error = "bad header count";
                return null;
            }
            var headers = new List<KeyValuePair<string, string>>(indexOnly ? 6 : count);
            for (var i = 0; i < count; i++)
            {
                if (!reader.TryReadBytes(out var name))
                {
                    error = "malformed headers block";
                    return null;
                }
                if (indexOnly && !IsIndexField(name))
                {
                    if (!reader.TryReadBytes(out _))
                    {
                        error = "malformed headers block";
                        return null;
                    }
                    continue;
                }
                if (!reader.TryReadString(out var value))
                {
                    error = "malformed headers block";
                    return null;
                }
                headers.Add(new(Encoding.UTF8.GetString(name), value));
            }
            if (reader.Position != headLength)
            {
                error = "headers block length mismatch";
                return null;
            }
            error = null;
            return new EntryHead(meta, headers, flags, FixedHeaderSize + headLength, bodyLength, bodyCrc, fileLength);
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(rented);
        }
    }

    private static bool IsIndexField(ReadOnlySpan<byte> name)
        => Ascii.EqualsIgnoreCase(name, "Cache-Control"u8) || Ascii.EqualsIgnoreCase(name, "Date"u8) || Ascii.EqualsIgnoreCase(name, "Expires"u8)
           || Ascii.EqualsIgnoreCase(name, "Last-Modified"u8) || Ascii.EqualsIgnoreCase(name, "ETag"u8) || Ascii.EqualsIgnoreCase(name, "Age"u8);

    /// <summary>Reads the body of an entry and compares its CRC-32C with the recorded one.</summary>
    public static bool VerifyBody(SafeFileHandle file, EntryHead head)
    {
        var buffer = ArrayPool<byte>.Shared.Rent(128 * 1024);
        try
        {
            uint crc = 0;
            var offset = head.BodyOffset;
            var end = head.BodyOffset + head.BodyLength;
            while (offset < end)
            {
                var n = RandomAccess.Read(file, buffer.AsSpan(0, (int)Math.Min(buffer.Length, end - offset)), offset);
                if (n <= 0)
                {
                    return false;
                }
                crc = Crc32C.Append(crc, buffer.AsSpan(0, n));
                offset += n;
            }
            return crc == head.BodyCrc;
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }
    }

    private static int ReadAtLeast(SafeFileHandle file, Span<byte> buffer, long offset)
    {
        var total = 0;
        while (total < buffer.Length)
        {
            var n = RandomAccess.Read(file, buffer[total..], offset + total);
            if (n <= 0)
            {
                break;
            }
            total += n;
        }
        return total;
    }
}

/// <summary>Reads the length-prefixed strings and little-endian integers of <see cref="CacheEntryFormat"/>; false when the data is short or malformed.</summary>
internal ref struct SpanReader(ReadOnlySpan<byte> data)
{
    private readonly ReadOnlySpan<byte> _data = data;

    public int Position { get; private set; }

    public bool TryReadBytes(out ReadOnlySpan<byte> bytes)
    {
        bytes = default;
        // 7-bit encoded length, as BinaryWriter writes it (at most 5 bytes)
        var length = 0;
        for (var shift = 0; shift < 35; shift += 7)
        {
            if (Position >= _data.Length)
            {
                return false;
            }
            var b = _data[Position++];
            length |= (b & 0x7F) << shift;
            if ((b & 0x80) == 0)
            {
                if (length < 0 || length > _data.Length - Position)
                {
                    return false;
                }
                bytes = _data.Slice(Position, length);
                Position += length;
                return true;
            }
        }
        return false;
    }

    public bool TryReadString(out string value)
    {
        if (TryReadBytes(out var bytes))
        {
            value = bytes.IsEmpty ? "" : Encoding.UTF8.GetString(bytes);
            return true;
        }
        value = "";
        return false;
    }

    public bool TryReadInt64(out long value)
    {
        value = 0;
        if (_data.Length - Position < 8)
        {
            return false;
        }
        value = BinaryPrimitives.ReadInt64LittleEndian(_data[Position..]);
        Position += 8;
        return true;
    }

    public bool TryReadInt32(out int value)
    {
        value = 0;
        if (_data.Length - Position < 4)
        {
            return false;
        }
        value = BinaryPrimitives.ReadInt32LittleEndian(_data[Position..]);
        Position += 4;
        return true;
    }
}

/// <summary>The metadata block of an entry file (see <see cref="CacheEntryFormat"/>).</summary>
internal sealed class EntryMeta
{
    public string Key { get; init; } = "";
    public string Url { get; init; } = "";
    public string VaryNames { get; init; } = "";
    public string VaryKey { get; init; } = "";
    public string Location { get; init; } = "";
    public string ArchivePeriod { get; init; } = "";
    public string AdaptationTags { get; init; } = "";
    public long RequestTime { get; init; }
    public long ResponseTime { get; init; }
    public int Status { get; init; }
}

/// <summary>What <see cref="CacheEntryFormat.TryReadHead"/> returns: metadata, stored headers and where the body is.</summary>
internal sealed record EntryHead(EntryMeta Meta, List<KeyValuePair<string, string>> Headers, ushort Flags, long BodyOffset, long BodyLength, uint BodyCrc, long FileLength);

/// <summary>CRC-32C (Castagnoli), hardware-accelerated through <see cref="BitOperations.Crc32C(uint, ulong)"/>.</summary>
internal static class Crc32C
{
    public static uint Compute(ReadOnlySpan<byte> data) => Append(0, data);

    /// <summary>Continues a CRC: <c>Append(Append(0, a), b) == Compute(a + b)</c>.</summary>
    public static uint Append(uint crc, ReadOnlySpan<byte> data)
    {
        var c = ~crc;
        var longs = MemoryMarshal.Cast<byte, ulong>(data);
        foreach (var l in longs)
        {
            c = BitOperations.Crc32C(c, BitConverter.IsLittleEndian ? l : BinaryPrimitives.ReverseEndianness(l));
        }
        foreach (var b in data[(longs.Length * 8)..])
        {
            c = BitOperations.Crc32C(c, b);
        }
        return ~c;
    }
}
