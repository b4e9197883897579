using System.Collections.Concurrent;
using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Win32.SafeHandles;

namespace Gateway.Caching;

/// <summary>
/// The disk store: entry files under the cache directory, the in-memory index of every entry (rebuilt from the
/// files at start), the memory cache of hot headers and small bodies, size-bounded LRU eviction, and the
/// maintenance operations. Never throws to a request: store failures are logged, counted and become misses.
/// <para>Layout: <c>&lt;dir&gt;/[location/]xx/&lt;hash&gt;.gwc</c> where hash = SHA-256 of key and Vary key
/// (never URL text); temporary files in <c>&lt;dir&gt;/.tmp</c>; archived copies in
/// <c>&lt;dir&gt;/[location/].archive/&lt;period&gt;/&lt;hash&gt;.gwc</c>; the running gateway holds <c>&lt;dir&gt;/.lock</c>.</para>
/// </summary>
internal sealed class CacheStore : IDisposable
{
    public const string TempDirName = ".tmp";
    public const string ArchiveDirName = ".archive";
    public const string LockFileName = ".lock";

    private readonly ConcurrentDictionary<string, CacheEntry[]> _index = new(StringComparer.Ordinal);
    private readonly object _writeLock = new();
    private readonly MemoryCache _hot;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly string _tempDir;
    private long _totalBytes;
    private int _count;
    private FileStream? _lockFile;
    private Task? _loadTask;
    private string? _unusable;

    public CacheStore(CacheSettings settings, ILogger logger, TimeProvider time)
    {
        Settings = settings;
        _logger = logger;
        _time = time;
        _tempDir = Path.Combine(settings.Directory, TempDirName);
        _hot = new MemoryCache(new MemoryCacheOptions { SizeLimit = Math.Max(1, settings.MaxMemorySize), CompactionPercentage = 0.25 });
        Stats = new CacheStats(() => Volatile.Read(ref _count), () => Interlocked.Read(ref _totalBytes));
    }

    public CacheSettings Settings { get; }
    public CacheStats Stats { get; }
    public long TotalBytes => Interlocked.Read(ref _totalBytes);
    public int Count => Volatile.Read(ref _count);
    public TimeSpan LoadTime { get; private set; }

    /// <summary>Null when the directory is usable, else why not (readiness reports it).</summary>
    public string? Unusable => _unusable;

    public long NowMs => _time.GetUtcNow().ToUnixTimeMilliseconds();

    /// <summary>Starts rebuilding the index from the files (once). Lookups await it.</summary>
    public Task EnsureLoadedAsync() => _loadTask ??= Task.Run(() => Load(takeLock: true));

    public bool IsLoaded => _loadTask is { IsCompleted: true };

    /// <summary>Loads synchronously (maintenance commands). With <paramref name="takeLock"/>, fails when a running gateway holds the directory.</summary>
    public void Load(bool takeLock)
    {
        ReadOnly = !takeLock;
        var sw = Stopwatch.StartNew();
        try
        {
            Directory.CreateDirectory(Settings.Directory);
            Directory.CreateDirectory(_tempDir);
            if (takeLock)
            {
                _lockFile = new FileStream(Path.Combine(Settings.Directory, LockFileName), FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            _unusable = ex.Message;
            Stats.StoreError("directory");
            CacheLog.DirectoryUnusable(_logger, Settings.Directory, ex.Message);
            return;
        }

        var removedTemps = 0;
        foreach (var temp in ReadOnly ? [] : SafeEnumerate(_tempDir, "*", SearchOption.TopDirectoryOnly))
        {
            TryDelete(temp);
            removedTemps++;
        }
        if (removedTemps > 0)
        {
            CacheLog.TempFilesRemoved(_logger, removedTemps, _tempDir);
        }

        var removed = 0;
        var files = EnumerateEntryFiles(Settings.Directory).ToArray();
        Parallel.ForEach(files, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(4, Environment.ProcessorCount * 2) }, file =>
        {
            var entry = ReadEntry(file, out var error, out var archived);
            if (entry is null)
            {
                if (!archived)
                {
                    Interlocked.Increment(ref removed);
                    Corrupt(file, error ?? "unreadable");
                }
                return;
            }
            AddLoaded(entry);
        });
        LoadTime = sw.Elapsed;
        CacheLog.Loaded(_logger, Settings.Directory, Count, TotalBytes, sw.ElapsedMilliseconds, removed);
        if (!ReadOnly && TotalBytes > Settings.MaxSize)
        {
            Evict();
        }
    }

    /// <summary>Loaded without the lock (maintenance commands that only read): nothing is deleted.</summary>
    public bool ReadOnly { get; private set; }

    private void AddLoaded(CacheEntry entry)
    {
        lock (_writeLock)
        {
            var variants = _index.TryGetValue(entry.Key, out var existing) ? existing : [];
            for (var i = 0; i < variants.Length; i++)
            {
                if (variants[i].VaryKey == entry.VaryKey)
                {
                    // The same key stored under two locations: keep the newer.
                    var (keep, drop) = variants[i].ResponseTime >= entry.ResponseTime ? (variants[i], entry) : (entry, variants[i]);
                    var copy = (CacheEntry[])variants.Clone();
                    copy[i] = keep;
                    _index[entry.Key] = copy;
                    if (!ReferenceEquals(drop, entry))
                    {
                        Interlocked.Add(ref _totalBytes, entry.FileLength - drop.FileLength);
                    }
                    if (!ReadOnly)
                    {
                        TryDelete(drop.FilePath);
                    }
                    return;
                }
            }
            _index[entry.Key] = [.. variants, entry];
            Interlocked.Add(ref _totalBytes, entry.FileLength);
            Interlocked.Increment(ref _count);
        }
    }

    /// <summary>Every live entry file below <paramref name="root"/>: skips temporary and archive directories.</summary>
    private static IEnumerable<string> EnumerateEntryFiles(string root)
    {
        var options = new EnumerationOptions { RecurseSubdirectories = false, IgnoreInaccessible = true, AttributesToSkip = 0 };
        var pending = new Stack<string>();
        pending.Push(root);
        while (pending.Count > 0)
        {
            var dir = pending.Pop();
            IEnumerable<string> subdirs, files;
            try
            {
                subdirs = Directory.EnumerateDirectories(dir, "*", options).ToArray();
                files = Directory.EnumerateFiles(dir, "*" + CacheEntryFormat.Extension, options).ToArray();
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                continue;
            }
            foreach (var sub in subdirs)
            {
                var name = Path.GetFileName(sub);
                if (name != TempDirName && name != ArchiveDirName)
                {
                    pending.Push(sub);
                }
            }
            foreach (var f in files)
            {
                yield return f;
            }
        }
    }

    private CacheEntry? ReadEntry(string file, out string? error, out bool archived)
    {
        archived = false;
        try
        {
            using var handle = File.OpenHandle(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            var head = CacheEntryFormat.TryReadHead(handle, out error, indexOnly: true);
            if (head is null)
            {
                return null;
            }
            if ((head.Flags & CacheEntryFormat.FlagArchived) != 0)
            {
                archived = true;
                return null;
            }
            var expected = EntryPath(head.Meta.Key, head.Meta.VaryKey, head.Meta.Location);
            if (expected is null || !string.Equals(file, expected, StringComparison.Ordinal))
            {
                error = "file name does not match its key";
                return null;
            }
            return CacheEntry.FromHead(head, file, Settings);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            error = ex.Message;
            return null;
        }
    }

    private void Corrupt(string file, string reason)
    {
        Stats.CorruptFound();
        CacheLog.CorruptEntry(_logger, file, reason);
        if (!ReadOnly)
        {
            TryDelete(file);
        }
    }

    // ---- keys and paths ----

    public static string Hash(string key, string varyKey)
    {
        Span<byte> hash = stackalloc byte[32];
        var bytes = Encoding.UTF8.GetBytes(key + "\n" + varyKey);
        SHA256.HashData(bytes, hash);
        return Convert.ToHexStringLower(hash[..20]);
    }

    /// <summary>Checks a logical relative path (location, archive period): segments of letters, digits, '-', '_', '.',
    /// none empty or starting with '.'. Null when it is not acceptable.</summary>
    public static string? SafeRelative(string? path)
    {
        if (string.IsNullOrEmpty(path))
        {
            return "";
        }
        var segments = path.Replace('\\', '/').Trim('/').Split('/');
        foreach (var s in segments)
        {
            if (s.Length == 0 || s.Length > 100 || s[0] == '.')
            {
                return null;
            }
            foreach (var c in s)
            {
                if (!(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.'))
                {
                    return null;
                }
            }
        }
        return string.Join('/', segments);
    }

    /// <summary>Full path of an entry file, or null if the location would escape the cache directory.</summary>
    public string? EntryPath(string key, string varyKey, string location)
    {
        var safe = SafeRelative(location);
        if (safe is null)
        {
            return null;
        }
        var hash = Hash(key, varyKey);
        var full = Path.GetFullPath(Path.Combine(Settings.Directory, safe, hash[..2], hash + CacheEntryFormat.Extension));
        return full.StartsWith(Settings.Directory + Path.DirectorySeparatorChar, StringComparison.Ordinal) ? full : null;
    }

    public string? ArchivePath(string key, string varyKey, string location, string period)
    {
        var safeLocation = SafeRelative(location);
        var safePeriod = SafeRelative(period);
        if (safeLocation is null || safePeriod is null || safePeriod.Length == 0)
        {
            return null;
        }
        var hash = Hash(key, varyKey);
        var full = Path.GetFullPath(Path.Combine(Settings.Directory, safeLocation, ArchiveDirName, safePeriod, hash + CacheEntryFormat.Extension));
        return full.StartsWith(Settings.Directory + Path.DirectorySeparatorChar, StringComparison.Ordinal) ? full : null;
    }

    // ---- lookups ----

    /// <summary>The stored variant matching the request's Vary fields; <paramref name="varyMiss"/> when the key has variants but none matches.</summary>
    public CacheEntry? Lookup(string key, IHeaderDictionary requestHeaders, out bool varyMiss)
    {
        varyMiss = false;
        if (!_index.TryGetValue(key, out var variants))
        {
            return null;
        }
        string? lastNames = null, lastKey = null;
        foreach (var v in variants)
        {
            if (v.VaryNames.Length == 0)
            {
                if (v.VaryKey.Length == 0)
                {
                    return v;
                }
                continue;
            }
            if (!ReferenceEquals(lastNames, v.VaryNamesText))
            {
                lastNames = v.VaryNamesText;
                lastKey = CachePolicy.VaryKey(v.VaryNames, requestHeaders);
            }
            if (lastKey == v.VaryKey)
            {
                return v;
            }
        }
        varyMiss = true;
        return null;
    }

    public CacheEntry[] Variants(string key) => _index.TryGetValue(key, out var v) ? v : [];

    public IEnumerable<CacheEntry> All()
    {
        foreach (var kv in _index)
        {
            foreach (var e in kv.Value)
            {
                yield return e;
            }
        }
    }

    public bool IsCurrent(CacheEntry entry)
        => _index.TryGetValue(entry.Key, out var variants) && Array.IndexOf(variants, entry) >= 0;

    public void Touch(CacheEntry entry) => entry.LastAccess = NowMs;

    /// <summary>Headers (and the body when small) of an entry, from memory or from its file. Null when the file is gone or bad (the entry is then removed).</summary>
    public HotEntry? GetHot(CacheEntry entry)
    {
        if (_hot.TryGetValue(entry, out HotEntry? hot) && hot is not null)
        {
            return hot;
        }
        try
        {
            using var handle = File.OpenHandle(entry.FilePath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            var head = CacheEntryFormat.TryReadHead(handle, out var error);
            if (head is null)
            {
                Remove(entry);
                Corrupt(entry.FilePath, error ?? "unreadable");
                return null;
            }
            if (!Matches(entry, head))
            {
                // Replaced on disk by a newer version since this index entry was made.
                return null;
            }
            byte[]? body = null;
            if (entry.BodyLength <= Settings.MemoryBodyLimit)
            {
                body = new byte[entry.BodyLength];
                var read = 0;
                while (read < body.Length)
                {
                    var n = RandomAccess.Read(handle, body.AsSpan(read), entry.BodyOffset + read);
                    if (n <= 0)
                    {
                        break;
                    }
                    read += n;
                }
                if (read != body.Length || Crc32C.Compute(body) != entry.BodyCrc)
                {
                    Remove(entry);
                    Corrupt(entry.FilePath, "body checksum mismatch");
                    return null;
                }
                entry.BodyVerified = true;
            }
            else if (!entry.BodyVerified)
            {
                if (!CacheEntryFormat.VerifyBody(handle, head))
                {
                    Remove(entry);
                    Corrupt(entry.FilePath, "body checksum mismatch");
                    return null;
                }
                entry.BodyVerified = true;
            }
            hot = new HotEntry(HotEntry.Group(head.Headers), body);
            _hot.Set(entry, hot, new MemoryCacheEntryOptions { Size = (body?.Length ?? 0) + 64 + head.BodyOffset });
            return hot;
        }
        catch (FileNotFoundException)
        {
            Remove(entry);
            return null;
        }
        catch (DirectoryNotFoundException)
        {
            Remove(entry);
            return null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            Stats.StoreError("read");
            CacheLog.StoreError(_logger, "read", entry.Url, ex.Message);
            return null;
        }
    }

    /// <summary>Full stored headers of an entry (maintenance, 304 merge).</summary>
    public EntryHead? ReadHead(CacheEntry entry)
    {
        try
        {
            using var handle = File.OpenHandle(entry.FilePath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
            var head = CacheEntryFormat.TryReadHead(handle, out _);
            return head is not null && Matches(entry, head) ? head : null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    /// <summary>Opens the entry's file for reading its body; null if it was replaced or removed meanwhile.</summary>
    public SafeFileHandle? OpenBody(CacheEntry entry)
    {
        try
        {
            var handle = File.OpenHandle(entry.FilePath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, FileOptions.SequentialScan);
            Span<byte> fixedPart = stackalloc byte[CacheEntryFormat.FixedHeaderSize];
            if (RandomAccess.Read(handle, fixedPart, 0) != fixedPart.Length
                || RandomAccess.GetLength(handle) != entry.FileLength
                || System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(fixedPart[28..]) != entry.BodyCrc)
            {
                handle.Dispose();
                return null;
            }
            return handle;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    private static bool Matches(CacheEntry entry, EntryHead head)
        => head.FileLength == entry.FileLength && head.BodyCrc == entry.BodyCrc && head.Meta.Key == entry.Key
           && head.Meta.VaryKey == entry.VaryKey && head.Meta.ResponseTime == entry.ResponseTime;

    // ---- writes ----

    /// <summary>Starts writing an entry to a temporary file. Null (logged, counted) when the store cannot write.</summary>
    public CacheWriter? BeginWrite(EntryMeta meta, List<KeyValuePair<string, string>> headers)
    {
        if (_unusable is not null)
        {
            Stats.StoreError("directory");
            return null;
        }
        var final = EntryPath(meta.Key, meta.VaryKey, meta.Location);
        if (final is null)
        {
            CacheLog.BadLocation(_logger, meta.Location, meta.Url);
            return null;
        }
        var head = CacheEntryFormat.BuildHead(meta, headers);
        if (head.Length > Settings.MaxEntrySize)
        {
            return null;
        }
        var temp = Path.Combine(_tempDir, Guid.NewGuid().ToString("N") + ".tmp");
        try
        {
            var stream = new FileStream(temp, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.None, 64 * 1024, FileOptions.None);
            stream.Write(head);
            return new CacheWriter(this, meta, headers, stream, temp, final, head.Length);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            TryDelete(temp);
            WriteFailed(meta.Url, ex);
            return null;
        }
    }

    internal void WriteFailed(string url, Exception ex)
    {
        Stats.StoreError(ex is IOException io && (io.HResult & 0xFFFF) == 28 ? "disk_full" : "write");
        CacheLog.StoreError(_logger, "write", url, ex.Message);
    }

    /// <summary>Renames a finished temporary file into place and indexes it.</summary>
    internal CacheEntry? Commit(CacheWriter writer, long fileLength, uint bodyCrc, long bodyLength)
    {
        try
        {
            Directory.CreateDirectory(Path.GetDirectoryName(writer.FinalPath)!);
            var head = new EntryHead(writer.Meta, writer.Headers, 0, writer.HeadLength, bodyLength, bodyCrc, fileLength);
            var entry = CacheEntry.FromHead(head, writer.FinalPath, Settings);
            entry.BodyVerified = true;
            entry.LastAccess = NowMs;
            lock (_writeLock)
            {
                File.Move(writer.TempPath, writer.FinalPath, overwrite: true);
                ReplaceInIndex(entry);
            }
            Stats.Committed(fileLength);
            if (writer.Meta.ArchivePeriod.Length > 0)
            {
                Archive(entry);
            }
            if (TotalBytes > Settings.MaxSize)
            {
                Evict();
            }
            return entry;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            TryDelete(writer.TempPath);
            WriteFailed(writer.Meta.Url, ex);
            return null;
        }
    }

    private void ReplaceInIndex(CacheEntry entry)
    {
        var variants = _index.TryGetValue(entry.Key, out var existing) ? existing : [];
        for (var i = 0; i < variants.Length; i++)
        {
            var old = variants[i];
            if (old.VaryKey == entry.VaryKey)
            {
                var copy = (CacheEntry[])variants.Clone();
                copy[i] = entry;
                _index[entry.Key] = copy;
                Interlocked.Add(ref _totalBytes, entry.FileLength - old.FileLength);
                _hot.Remove(old);
                if (old.FilePath != entry.FilePath)
                {
                    TryDelete(old.FilePath);
                }
                return;
            }
        }
        _index[entry.Key] = [.. variants, entry];
        Interlocked.Add(ref _totalBytes, entry.FileLength);
        Interlocked.Increment(ref _count);
    }

    /// <summary>Keeps a dated copy of a committed entry (one per period; the newest of the period wins).</summary>
    private void Archive(CacheEntry entry)
    {
        var period = entry.ArchivePeriod;
        var target = ArchivePath(entry.Key, entry.VaryKey, entry.Location, period);
        if (target is null)
        {
            CacheLog.BadLocation(_logger, period, entry.Url);
            return;
        }
        var temp = Path.Combine(_tempDir, Guid.NewGuid().ToString("N") + ".tmp");
        try
        {
            File.Copy(entry.FilePath, temp, overwrite: true);
            using (var handle = File.OpenHandle(temp, FileMode.Open, FileAccess.ReadWrite))
            {
                Span<byte> flags = stackalloc byte[2];
                System.Buffers.Binary.BinaryPrimitives.WriteUInt16LittleEndian(flags, CacheEntryFormat.FlagArchived);
                RandomAccess.Write(handle, flags, 6);
            }
            Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Move(temp, target, overwrite: true);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            TryDelete(temp);
            WriteFailed(entry.Url, ex);
        }
    }

    /// <summary>RFC 9111 4.3.4: rewrites an entry with headers updated by a 304 and the new exchange's times.</summary>
    public CacheEntry? UpdateHeaders(CacheEntry entry, IHeaderDictionary notModified, long requestTime, long responseTime)
    {
        var head = ReadHead(entry);
        if (head is null)
        {
            return null;
        }
        var merged = CachePolicy.MergeNotModified(head.Headers, notModified);
        var meta = new EntryMeta
        {
            Key = entry.Key, Url = entry.Url, VaryNames = entry.VaryNamesText, VaryKey = entry.VaryKey, Location = entry.Location,
            ArchivePeriod = "", AdaptationTags = entry.AdaptationTags, RequestTime = requestTime, ResponseTime = responseTime, Status = entry.Status,
        };
        var writer = BeginWrite(meta, merged);
        if (writer is null)
        {
            return null;
        }
        try
        {
            using var source = OpenBody(entry);
            if (source is null)
            {
                writer.Abort();
                return null;
            }
            var buffer = System.Buffers.ArrayPool<byte>.Shared.Rent(64 * 1024);
            try
            {
                var offset = entry.BodyOffset;
                var end = entry.BodyOffset + entry.BodyLength;
                while (offset < end)
                {
                    var n = RandomAccess.Read(source, buffer.AsSpan(0, (int)Math.Min(buffer.Length, end - offset)), offset);
                    if (n <= 0)
                    {
                        writer.Abort();
                        return null;
                    }
                    writer.Write(buffer.AsSpan(0, n));
                    offset += n;
                }
            }
            finally
            {
                System.Buffers.ArrayPool<byte>.Shared.Return(buffer);
            }
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            writer.Abort();
            WriteFailed(entry.Url, ex);
            return null;
        }
        return writer.Commit(entry.BodyLength);
    }

    // ---- removal, eviction, maintenance ----

    public bool Remove(CacheEntry entry)
    {
        lock (_writeLock)
        {
            if (!_index.TryGetValue(entry.Key, out var variants) || Array.IndexOf(variants, entry) < 0)
            {
                return false;
            }
            var rest = variants.Where(v => !ReferenceEquals(v, entry)).ToArray();
            if (rest.Length == 0)
            {
                _index.TryRemove(entry.Key, out _);
            }
            else
            {
                _index[entry.Key] = rest;
            }
            Interlocked.Add(ref _totalBytes, -entry.FileLength);
            Interlocked.Decrement(ref _count);
            _hot.Remove(entry);
            TryDelete(entry.FilePath);
            return true;
        }
    }

    /// <summary>Removes every variant of a key; returns how many.</summary>
    public int RemoveKey(string key)
    {
        var n = 0;
        foreach (var v in Variants(key))
        {
            if (Remove(v))
            {
                n++;
            }
        }
        return n;
    }

    /// <summary>Removes every entry whose URL is <paramref name="url"/> (whatever its key).</summary>
    public int RemoveUrl(string url)
    {
        var n = RemoveKey(url);
        foreach (var e in All().Where(e => e.Url == url).ToArray())
        {
            if (Remove(e))
            {
                n++;
            }
        }
        return n;
    }

    /// <summary>Evicts least-recently-used entries until the total is at most 90% of MaxSize.</summary>
    public void Evict()
    {
        if (Interlocked.CompareExchange(ref _evicting, 1, 0) != 0)
        {
            return; // another commit is evicting already
        }
        try
        {
            EvictCore();
        }
        finally
        {
            Volatile.Write(ref _evicting, 0);
        }
    }

    private int _evicting;

    private void EvictCore()
    {
        var lowWater = Settings.MaxSize - Settings.MaxSize / 10;
        CacheEntry[] candidates;
        lock (_writeLock)
        {
            if (TotalBytes <= Settings.MaxSize)
            {
                return;
            }
            candidates = All().ToArray();
        }
        Array.Sort(candidates, static (a, b) => a.LastAccess.CompareTo(b.LastAccess));
        var evicted = 0;
        long bytes = 0;
        foreach (var e in candidates)
        {
            if (TotalBytes <= lowWater)
            {
                break;
            }
            if (Remove(e))
            {
                evicted++;
                bytes += e.FileLength;
            }
        }
        if (evicted > 0)
        {
            Stats.Evicted(evicted);
            CacheLog.Evicted(_logger, evicted, bytes, Settings.MaxSize);
        }
    }

    /// <summary>Checks the body checksum of every entry; removes the bad ones. Returns (checked, removed files).</summary>
    public (int Checked, List<string> Removed) Verify()
    {
        var removed = new List<string>();
        var checkedCount = 0;
        foreach (var entry in All().ToArray())
        {
            checkedCount++;
            string? reason = null;
            try
            {
                using var handle = File.OpenHandle(entry.FilePath, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
                var head = CacheEntryFormat.TryReadHead(handle, out reason);
                if (head is not null && !CacheEntryFormat.VerifyBody(handle, head))
                {
                    reason = "body checksum mismatch";
                }
                else if (head is not null)
                {
                    entry.BodyVerified = true;
                }
            }
            catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
            {
                reason = ex.Message;
            }
            if (reason is not null)
            {
                Remove(entry);
                Stats.CorruptFound();
                CacheLog.CorruptEntry(_logger, entry.FilePath, reason);
                removed.Add(entry.Url);
            }
        }
        return (checkedCount, removed);
    }

    /// <summary>Removes entries that are stale (past freshness plus any stale-while-revalidate), older than
    /// <paramref name="olderThan"/>, or larger than <paramref name="largerThan"/>. Returns the removed entries.</summary>
    public List<CacheEntry> Prune(bool stale, TimeSpan? olderThan, long? largerThan)
    {
        var now = NowMs;
        var removed = new List<CacheEntry>();
        foreach (var e in All().ToArray())
        {
            var isStale = stale && e.TtlMs(now) <= 0;
            var isOld = olderThan is { } age && e.AgeMs(now) > age.TotalMilliseconds;
            var isLarge = largerThan is { } size && e.FileLength > size;
            if ((isStale || isOld || isLarge) && Remove(e))
            {
                removed.Add(e);
            }
        }
        return removed;
    }

    /// <summary>Archived copies of a URL (any location, any period), newest period first.</summary>
    public List<(string Period, string File, EntryHead Head)> ArchivedCopies(string url)
    {
        var result = new List<(string, string, EntryHead)>();
        foreach (var dir in SafeEnumerateDirectories(Settings.Directory, ArchiveDirName))
        {
            foreach (var file in SafeEnumerate(dir, "*" + CacheEntryFormat.Extension, SearchOption.AllDirectories))
            {
                try
                {
                    using var handle = File.OpenHandle(file, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete);
                    var head = CacheEntryFormat.TryReadHead(handle, out _);
                    if (head is not null && (head.Meta.Url == url || head.Meta.Key == url))
                    {
                        result.Add((head.Meta.ArchivePeriod, file, head));
                    }
                }
                catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
                {
                }
            }
        }
        result.Sort((a, b) => string.CompareOrdinal(b.Item1, a.Item1));
        return result;
    }

    private static IEnumerable<string> SafeEnumerateDirectories(string root, string name)
    {
        try
        {
            return Directory.EnumerateDirectories(root, name, new EnumerationOptions { RecurseSubdirectories = true, IgnoreInaccessible = true, AttributesToSkip = 0 }).ToArray();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }

    private static IEnumerable<string> SafeEnumerate(string dir, string pattern, SearchOption option)
    {
        try
        {
            return Directory.EnumerateFiles(dir, pattern, new EnumerationOptions { RecurseSubdirectories = option == SearchOption.AllDirectories, IgnoreInaccessible = true, AttributesToSkip = 0 }).ToArray();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            return [];
        }
    }

    internal static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }
    }

    public void Dispose()
    {
        _hot.Dispose();
        _lockFile?.Dispose();
        _lockFile = null;
    }
}

/// <summary>An entry being written: the head is already in the temporary file; the body is appended as it streams.</summary>
internal sealed class CacheWriter
{
    private readonly CacheStore _store;
    private FileStream? _stream;
    private uint _crc;

    public CacheWriter(CacheStore store, EntryMeta meta, List<KeyValuePair<string, string>> headers, FileStream stream, string tempPath, string finalPath, int headLength)
    {
        _store = store;
        Meta = meta;
        Headers = headers;
        _stream = stream;
        TempPath = tempPath;
        FinalPath = finalPath;
        HeadLength = headLength;
    }

    public EntryMeta Meta { get; }
    public List<KeyValuePair<string, string>> Headers { get; }
    public string TempPath { get; }
    public string FinalPath { get; }
    public int HeadLength { get; }
    public long BodyWritten { get; private set; }

    /// <summary>False once a write failed or the entry grew past MaxEntrySize: the file is gone, the response goes on.</summary>
    public bool Active => _stream is not null;

    public void Write(ReadOnlySpan<byte> data)
    {
        var stream = _stream;
        if (stream is null || data.IsEmpty)
        {
            return;
        }
        if (HeadLength + BodyWritten + data.Length > _store.Settings.MaxEntrySize)
        {
            Abort();
            return;
        }
        try
        {
            stream.Write(data);
            _crc = Crc32C.Append(_crc, data);
            BodyWritten += data.Length;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            Abort();
            _store.WriteFailed(Meta.Url, ex);
        }
    }

    /// <summary>Finishes the file and renames it into place if exactly <paramref name="expectedBodyLength"/> bytes were written.</summary>
    public CacheEntry? Commit(long? expectedBodyLength)
    {
        var stream = _stream;
        if (stream is null)
        {
            return null;
        }
        if (expectedBodyLength is { } expected && expected != BodyWritten)
        {
            Abort();
            return null;
        }
        try
        {
            stream.Flush();
            CacheEntryFormat.PatchBody(stream.SafeFileHandle, BodyWritten, _crc);
            if (_store.Settings.Fsync)
            {
                stream.Flush(flushToDisk: true);
            }
            stream.Dispose();
            _stream = null;
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            Abort();
            _store.WriteFailed(Meta.Url, ex);
            return null;
        }
        return _store.Commit(this, HeadLength + BodyWritten, _crc, BodyWritten);
    }

    public void Abort()
    {
        var stream = Interlocked.Exchange(ref _stream, null);
        if (stream is null)
        {
            return;
        }
        try
        {
            stream.Dispose();
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
        }
        CacheStore.TryDelete(TempPath);
    }
}
