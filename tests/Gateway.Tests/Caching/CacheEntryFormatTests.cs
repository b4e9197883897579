using System.Buffers.Binary;
using System.Text;
using Gateway.Caching;
using Microsoft.Extensions.Primitives;

namespace Gateway.Tests.Caching;

/// <summary>The on-disk format, byte by byte, and the pure parsers (Cache-Control, Range).</summary>
public sealed class CacheEntryFormatTests
{
    private static EntryMeta Meta() => new()
    {
        Key = "k", Url = "http://h/", VaryNames = "", VaryKey = "", Location = "", ArchivePeriod = "", AdaptationTags = "",
        RequestTime = 0x0102030405060708, ResponseTime = 0x1112131415161718, Status = 200,
    };

    [Fact]
    public void Head_GoldenBytes()
    {
        var head = CacheEntryFormat.BuildHead(Meta(), [new("A", "b")]);
        var expected = new List<byte>();
        expected.AddRange("GWCE"u8.ToArray());                 // 0: magic
        expected.AddRange([1, 0]);                              // 4: version 1
        expected.AddRange([0, 0]);                              // 6: flags
        // metadata: 7 strings (length-prefixed) + 2 int64 + int32
        var meta = new List<byte>();
        meta.AddRange([1, (byte)'k']);                          // key
        meta.Add(9); meta.AddRange("http://h/"u8.ToArray());    // url
        meta.AddRange([0, 0, 0, 0, 0]);                         // varyNames, varyKey, location, archivePeriod, adaptationTags
        meta.AddRange([8, 7, 6, 5, 4, 3, 2, 1]);                // requestTime LE
        meta.AddRange([0x18, 0x17, 0x16, 0x15, 0x14, 0x13, 0x12, 0x11]); // responseTime LE
        meta.AddRange([200, 0, 0, 0]);                          // status
        var headers = new List<byte> { 1, 0, 0, 0, 1, (byte)'A', 1, (byte)'b' }; // count=1, "A", "b"
        expected.AddRange(BitConverter.GetBytes(meta.Count));   // 8: M
        expected.AddRange(BitConverter.GetBytes(headers.Count)); // 12: H
        expected.AddRange(new byte[8]);                         // 16: body length (patched at commit)
        var crc = Crc32C.Compute([.. meta, .. headers]);
        expected.AddRange(BitConverter.GetBytes(crc));          // 24: CRC-32C of metadata+headers
        expected.AddRange(new byte[4]);                         // 28: body CRC (patched at commit)
        expected.AddRange(meta);
        expected.AddRange(headers);
        Assert.Equal(expected.ToArray(), head);
    }

    [Fact]
    public void RoundTrip_AndEveryTruncationIsRejected()
    {
        var path = Path.GetTempFileName();
        try
        {
            var head = CacheEntryFormat.BuildHead(Meta(), [new("Content-Type", "text/plain"), new("ETag", "\"x\"")]);
            var body = Encoding.ASCII.GetBytes("hello body");
            File.WriteAllBytes(path, [.. head, .. body]);
            using (var h = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite))
            {
                CacheEntryFormat.PatchBody(h, body.Length, Crc32C.Compute(body));
            }
            var full = File.ReadAllBytes(path);
            using (var h = File.OpenHandle(path))
            {
                var read = CacheEntryFormat.TryReadHead(h, out var error);
                Assert.Null(error);
                Assert.NotNull(read);
                Assert.Equal("http://h/", read!.Meta.Url);
                Assert.Equal(2, read.Headers.Count);
                Assert.Equal(head.Length, read.BodyOffset);
                Assert.True(CacheEntryFormat.VerifyBody(h, read));
            }
            for (var cut = 0; cut < full.Length; cut++)
            {
                File.WriteAllBytes(path, full[..cut]);
                using var h = File.OpenHandle(path);
                Assert.Null(CacheEntryFormat.TryReadHead(h, out _));
            }
            full[^1] ^= 1;
            File.WriteAllBytes(path, full);
            using (var h = File.OpenHandle(path))
            {
                var read = CacheEntryFormat.TryReadHead(h, out _);
                Assert.NotNull(read);
                Assert.False(CacheEntryFormat.VerifyBody(h, read!));
            }
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Crc32C_KnownVector()
    {
        // RFC 3720 B.4: CRC-32C of "123456789" is 0xE3069283.
        Assert.Equal(0xE3069283u, Crc32C.Compute("123456789"u8));
        Assert.Equal(Crc32C.Compute("123456789"u8), Crc32C.Append(Crc32C.Compute("1234"u8), "56789"u8));
    }

    [Theory]
    [InlineData("max-age=60, s-maxage=30", 60, 30, -1, false)]
    [InlineData("max-age=\"60\"", 60, -1, -1, false)]
    [InlineData("max-age=abc", 0, -1, -1, false)]
    [InlineData("max-age=10, max-age=5", 5, -1, -1, false)]
    [InlineData("max-stale", -1, -1, int.MaxValue, false)]
    [InlineData("no-cache, max-stale=7", -1, -1, 7, true)]
    [InlineData("No-Cache", -1, -1, -1, true)]
    public void CacheControl_Parses(string header, int maxAge, int sMaxAge, int maxStale, bool noCache)
    {
        var cc = CacheControl.Parse(new StringValues(header));
        Assert.Equal(maxAge, cc.MaxAge);
        Assert.Equal(sMaxAge, cc.SMaxAge);
        Assert.Equal(maxStale, cc.MaxStale);
        Assert.Equal(noCache, cc.NoCache);
    }

    [Fact]
    public void CacheControl_QualifiedNoCacheAndPrivate_NameFieldsToStrip()
    {
        var cc = CacheControl.Parse(new StringValues("private=\"Set-Cookie, X-User\", no-cache=\"X-Debug\", max-age=5"));
        Assert.False(cc.Private);
        Assert.False(cc.NoCache);
        Assert.Equal(["Set-Cookie", "X-User", "X-Debug"], cc.StripFields);
    }

    [Theory]
    [InlineData("bytes=0-4", 10, "Single", 0, 4)]
    [InlineData("bytes=5-", 10, "Single", 5, 9)]
    [InlineData("bytes=-3", 10, "Single", 7, 9)]
    [InlineData("bytes=-30", 10, "Single", 0, 9)]
    [InlineData("bytes=8-100", 10, "Single", 8, 9)]
    [InlineData("bytes=10-", 10, "Unsatisfiable", 0, 0)]
    [InlineData("bytes=-0", 10, "Unsatisfiable", 0, 0)]
    [InlineData("bytes=5-2", 10, "Ignore", 0, 0)]
    [InlineData("bytes=0-1,3-4", 10, "Ignore", 0, 0)]
    [InlineData("items=0-1", 10, "Ignore", 0, 0)]
    public void Range_Parses(string header, long length, string expected, long start, long end)
    {
        var result = CacheStage.TryParseRange(new StringValues(header), length, out var s, out var e);
        Assert.Equal(expected, result.ToString());
        if (result == CacheStage.RangeResult.Single)
        {
            Assert.Equal(start, s);
            Assert.Equal(end, e);
        }
    }

    [Fact]
    public void SafeRelative_RefusesEscapes()
    {
        Assert.Equal("a/b", CacheStore.SafeRelative("a/b"));
        Assert.Equal("2026/11/21", CacheStore.SafeRelative("2026/11/21"));
        Assert.Null(CacheStore.SafeRelative("../x"));
        Assert.Null(CacheStore.SafeRelative("a/../../x"));
        Assert.Null(CacheStore.SafeRelative(".tmp"));
        Assert.Null(CacheStore.SafeRelative("a//b"));
        Assert.Null(CacheStore.SafeRelative("a:b"));
        Assert.Equal("abs", CacheStore.SafeRelative("/abs"));
    }
}
