using System.Globalization;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Data.Sqlite;
using Periscope.Integrity.Measurement;
using Periscope.Integrity.Regions;
using Periscope.Memory;
using Periscope.Storage;

namespace Periscope.Integrity.Baselines;

public sealed record BaselineInfo(long Id, string BuildId, string Banner, ulong TextVa, DateTime Created, string Target, int Regions, int Pages);

public sealed record StoredBaseline(BaselineInfo Info, IReadOnlyList<RegionMeasurement> Regions);

/// <summary>The outcome of saving a baseline: its id, and whether an identical one was already stored (and kept instead).</summary>
public sealed record SavedBaseline(long Id, bool AlreadyStored);

/// <summary>Anonymous executable memory seen at baseline time, keyed by what survives a re-read of the same boot:
/// the process (executable and comm), the mapping's size and permissions, and its content.</summary>
public sealed record AnonymousCodeKey(string Exe, string Comm, string Permissions, ulong Length, string ContentSha256);

public enum BaselineOpenMode
{
    /// <summary>Reading commands (verify, list): the database must exist.</summary>
    Existing,
    /// <summary>Recording commands (baseline create, import-files): a missing file becomes a new database.</summary>
    CreateIfMissing,
}

/// <summary>
/// The trusted-state database: SQLite, schema-versioned, one file for baselines of many guests keyed by kernel build
/// id and KASLR text base (kernel text holds relocated addresses, so a baseline belongs to one boot's layout). Page
/// contents are kept (Brotli-compressed) so a finding can show the bytes that were expected.
/// The file is hostile input like a dump: it is checked before use (regular file, SQLite header, quick_check, exactly
/// our schema so no view or trigger from the file ever runs, schema version), every query runs under an instruction
/// budget and a value-length limit, and every value is read typed and validated. Anything wrong is one
/// <see cref="BaselineFormatException"/> naming the file (and table and row).
/// </summary>
public sealed class BaselineStore : IDisposable
{
    public const int SchemaVersion = 3;

    private const int SqliteTooBig = 18;
    private const int PageBytes = 4096, Sha256Bytes = 32;

    /// <summary>Every object of the schema, in creation order, with the version that introduced it. The file must hold
    /// exactly these (plus the automatic indexes of their keys): to extend the schema, bump <see cref="SchemaVersion"/>
    /// and append objects with the new version; opening an older file creates them.</summary>
    private static readonly SchemaObject[] Schema =
    [
        new(1, "table", "meta", "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)"),
        new(1, "table", "kernels", "CREATE TABLE kernels(id INTEGER PRIMARY KEY, build_id TEXT NOT NULL UNIQUE, banner TEXT NOT NULL)"),
        new(1, "table", "baselines", """
            CREATE TABLE baselines(id INTEGER PRIMARY KEY, kernel_id INTEGER NOT NULL REFERENCES kernels(id),
                text_va INTEGER NOT NULL, created TEXT NOT NULL, target TEXT NOT NULL)
            """),
        new(1, "table", "regions", """
            CREATE TABLE regions(id INTEGER PRIMARY KEY, baseline_id INTEGER NOT NULL REFERENCES baselines(id) ON DELETE CASCADE,
                name TEXT NOT NULL, kind TEXT NOT NULL, owner TEXT, start INTEGER NOT NULL, length INTEGER NOT NULL)
            """),
        new(1, "table", "pages", """
            CREATE TABLE pages(region_id INTEGER NOT NULL REFERENCES regions(id) ON DELETE CASCADE, idx INTEGER NOT NULL,
                va INTEGER NOT NULL, pa INTEGER, length INTEGER NOT NULL, xxh3 INTEGER NOT NULL, sha256 BLOB, content BLOB,
                PRIMARY KEY(region_id, idx))
            """),
        new(1, "index", "baselines_by_kernel", "CREATE INDEX baselines_by_kernel ON baselines(kernel_id, text_va)"),
        new(1, "table", "code_pages", """
            CREATE TABLE code_pages(file TEXT NOT NULL, offset INTEGER NOT NULL, sha256 BLOB NOT NULL, source TEXT NOT NULL,
                first_seen TEXT NOT NULL, PRIMARY KEY(file, offset))
            """),
        new(2, "table", "anonymous_code", """
            CREATE TABLE anonymous_code(baseline_id INTEGER NOT NULL REFERENCES baselines(id) ON DELETE CASCADE,
                exe TEXT NOT NULL, comm TEXT NOT NULL, permissions TEXT NOT NULL, length INTEGER NOT NULL, sha256 BLOB NOT NULL,
                PRIMARY KEY(baseline_id, exe, comm, permissions, length, sha256))
            """),
        // The judge's evidence (allow-lists, module extents and symbols) as one compressed blob per baseline: EvidenceStore.
        new(2, "table", "evidence", "CREATE TABLE evidence(baseline_id INTEGER PRIMARY KEY REFERENCES baselines(id) ON DELETE CASCADE, blob BLOB NOT NULL)"),
        // Page contents in compressed blocks of consecutive pages (ContentBlocks); from version 3 pages.content stays NULL.
        new(3, "table", "content_blocks", """
            CREATE TABLE content_blocks(region_id INTEGER NOT NULL REFERENCES regions(id) ON DELETE CASCADE, first_idx INTEGER NOT NULL,
                data BLOB NOT NULL, PRIMARY KEY(region_id, first_idx))
            """),
    ];

    private static readonly Dictionary<string, RegionKind> RegionKinds = Enum.GetValues<RegionKind>().ToDictionary(k => k.ToString(), StringComparer.Ordinal);

    private readonly SqliteConnection _db;
    private readonly IntrospectionLimits _limits;
    // One budget for the connection's whole life: a store's operations belong to one command.
    private readonly SqliteHardening _hardening;

    private BaselineStore(SqliteConnection db, string path, IntrospectionLimits limits)
    {
        _db = db;
        Path = path;
        _limits = limits;
        _hardening = new SqliteHardening(limits.MaxBaselineQuerySteps);
    }

    public string Path { get; }

    /// <summary>For stores of related data in the same file (see EvidenceStore); opened and checked by this store.</summary>
    internal SqliteConnection Connection => _db;

    public static BaselineStore Open(string path, BaselineOpenMode mode = BaselineOpenMode.CreateIfMissing, IntrospectionLimits? limits = null)
    {
        limits ??= IntrospectionLimits.Default;
        bool create = CheckFile(path, mode, limits);
        var db = new SqliteConnection(new SqliteConnectionStringBuilder
        {
            DataSource = path, Pooling = false, Mode = create ? SqliteOpenMode.ReadWriteCreate : SqliteOpenMode.ReadWrite,
        }.ToString());
        var store = new BaselineStore(db, path, limits);
        try
        {
            store.Guard(() =>
            {
                db.Open();
                store.Harden();
                if (create) store.CreateSchema(fromVersion: 0);
                else store.CheckDatabase(mode);
                // WAL with synchronous=NORMAL: a commit appends to the log without an fsync of its own (checkpoints
                // still sync), so the database stays consistent on a crash and a power cut can lose at most the last
                // baseline written; with FULL, the fsyncs of `baseline create`'s commits took longer than its hashing.
                store.Exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; PRAGMA foreign_keys=ON;");
            });
            return store;
        }
        catch
        {
            db.Dispose();
            throw;
        }
    }

    /// <summary>Checks the path before SQLite sees it; true when a new database is to be created.</summary>
    private static bool CheckFile(string path, BaselineOpenMode mode, IntrospectionLimits limits)
    {
        var (kind, size) = HostFile.Stat(path);
        switch (kind)
        {
            case HostFileKind.Missing when mode == BaselineOpenMode.CreateIfMissing:
                return true;
            case HostFileKind.Missing:
                throw new FileNotFoundException($"{path}: no such baseline database (record one with `periscope baseline create --db {path}`)", path);
            case HostFileKind.Directory:
                throw new BaselineFormatException($"{path}: is a directory, not a baseline database");
            case HostFileKind.Special or HostFileKind.Symlink:
                throw new BaselineFormatException($"{path}: not a regular file (FIFO, socket or device), not a baseline database");
        }
        // An empty file (e.g. from mktemp) is a new database when recording; reading commands have nothing to read.
        if (size == 0)
            return mode == BaselineOpenMode.CreateIfMissing ? true : throw new BaselineFormatException($"{path}: empty file, not a baseline database");
        if (size > limits.MaxBaselineDatabaseBytes)
            throw new BaselineFormatException($"{path}: {size} bytes, more than the limit of {limits.MaxBaselineDatabaseBytes} bytes for a baseline database");
        var header = HostFile.TryReadPrefix(path, HostileSqlite.HeaderBytes, out string? why) ?? throw new BaselineFormatException(why!);
        if (HostileSqlite.HeaderProblem(header) is { } problem)
            throw new BaselineFormatException($"{path}: not a baseline database: {problem}");
        return false;
    }

    /// <summary>Settings that make a hostile file inert: nothing in its schema executes, values and SQL are length
    /// limited, and the connection's total work is bounded.</summary>
    private void Harden() => _hardening.Apply(_db, _limits.MaxBaselineValueBytes);

    private void CheckDatabase(BaselineOpenMode mode)
    {
        using (var cmd = Command("PRAGMA quick_check(1)"))
        using (var rd = cmd.ExecuteReader())
        {
            string result = rd.Read() ? Text(rd, 0, "quick_check", "pragma", 0) : "no result";
            if (result != "ok") throw Corrupt($"quick_check: {HostileSqlite.OneLine(result)}");
        }
        var expected = Schema.ToDictionary(o => o.Name, StringComparer.Ordinal);
        var tables = new HashSet<string>(StringComparer.Ordinal);
        int objects = 0;
        using (var cmd = Command("SELECT rowid, type, name, tbl_name, sql FROM sqlite_master"))
        using (var rd = cmd.ExecuteReader())
        {
            while (rd.Read())
            {
                long row = Int64(rd, 0, "sqlite_master", 0);
                string type = Text(rd, 1, "sqlite_master", "type", row), name = Text(rd, 2, "sqlite_master", "name", row);
                string table = Text(rd, 3, "sqlite_master", "tbl_name", row);
                string? sql = rd.IsDBNull(4) ? null : Text(rd, 4, "sqlite_master", "sql", row);
                if (sql is null && type == "index" && name.StartsWith("sqlite_autoindex_", StringComparison.Ordinal) && expected.ContainsKey(table))
                {
                    objects++;
                    continue; // the index SQLite makes for a PRIMARY KEY or UNIQUE constraint of one of our tables
                }
                if (!expected.TryGetValue(name, out var ours) || ours.Type != type || sql is null || HostileSqlite.NormalizeSql(sql) != HostileSqlite.NormalizeSql(ours.Sql))
                    throw Corrupt($"schema object {type} '{HostileSqlite.OneLine(name)}' was not created by Periscope (sqlite_master, row {row})");
                objects++;
                if (type == "table") tables.Add(name);
            }
        }
        // An empty SQLite file (no schema at all) is as good as a missing one when recording.
        if (objects == 0 && mode == BaselineOpenMode.CreateIfMissing) { CreateSchema(fromVersion: 0); return; }
        if (!tables.Contains("meta")) throw Corrupt("no meta table (not a baseline database?)");
        int version = ReadSchemaVersionOrZero();
        if (version < 1 || version > SchemaVersion)
            throw Corrupt(version > SchemaVersion ? $"schema version {version}, this Periscope reads versions 1 to {SchemaVersion}" : "no valid schema version (table meta)");
        if (Schema.FirstOrDefault(o => o.Since <= version && o.Type == "table" && !tables.Contains(o.Name)) is { } missing)
            throw Corrupt($"table {missing.Name} of schema version {version} is missing");
        if (version < SchemaVersion) CreateSchema(version);
    }

    private int ReadSchemaVersionOrZero()
    {
        using var cmd = Command("SELECT rowid, value FROM meta WHERE key='schema_version'");
        using var rd = cmd.ExecuteReader();
        if (!rd.Read()) return 0;
        long row = Int64(rd, 0, "meta", 0);
        string value = Text(rd, 1, "meta", "value", row);
        return int.TryParse(value, NumberStyles.None, CultureInfo.InvariantCulture, out int v) ? v
            : throw Corrupt($"schema version '{HostileSqlite.OneLine(value)}' is not a number (table meta, row {row})");
    }

    /// <summary>Creates the objects introduced after <paramref name="fromVersion"/> and records the current version.</summary>
    private void CreateSchema(int fromVersion)
    {
        using var tx = _db.BeginTransaction();
        foreach (var o in Schema.Where(o => o.Since > fromVersion)) Exec(o.Sql);
        Exec("INSERT INTO meta(key, value) VALUES('schema_version', $v) ON CONFLICT(key) DO UPDATE SET value=excluded.value",
            ("$v", SchemaVersion.ToString(CultureInfo.InvariantCulture)));
        tx.Commit();
    }

    /// <summary>Saves a baseline, unless the newest one for this kernel and layout holds identical measurements:
    /// then that one is kept and returned (a second `baseline create` of an unchanged guest adds nothing).</summary>
    /// <param name="contents">The regions' page contents, compressed by <see cref="ContentBlocks.Compress"/> from these
    /// same <paramref name="regions"/> (a caller compresses while it does other work); compressed here when null.</param>
    public SavedBaseline Save(string buildId, string banner, ulong textVa, string target, IReadOnlyList<RegionMeasurement> regions, ContentBlocks? contents = null) => Guard(() =>
    {
        if (contents is not null && !ReferenceEquals(contents.Source, regions)) throw new ArgumentException("content blocks of other measurements", nameof(contents));
        if (LatestInfo(buildId, textVa) is { } latest && StoredDigest(latest.Id).AsSpan().SequenceEqual(Digest(regions)))
            return new SavedBaseline(latest.Id, AlreadyStored: true);
        using var tx = _db.BeginTransaction();
        Exec("INSERT INTO kernels(build_id, banner) VALUES($b, $n) ON CONFLICT(build_id) DO NOTHING", ("$b", buildId), ("$n", banner));
        long kernelId = (long)Scalar("SELECT id FROM kernels WHERE build_id=$b", ("$b", buildId))!;
        Exec("INSERT INTO baselines(kernel_id, text_va, created, target) VALUES($k, $t, $c, $g)",
            ("$k", kernelId), ("$t", unchecked((long)textVa)), ("$c", DateTime.UtcNow.ToString("O", CultureInfo.InvariantCulture)), ("$g", target));
        long baselineId = (long)Scalar("SELECT last_insert_rowid()")!;
        contents ??= ContentBlocks.Compress(regions);
        var blocksOf = contents.Blocks.ToLookup(b => b.Region);
        using var regionCmd = Command("INSERT INTO regions(baseline_id, name, kind, owner, start, length) VALUES($b, $n, $k, $o, $s, $l)");
        using var pageCmd = Command("INSERT INTO pages(region_id, idx, va, pa, length, xxh3, sha256, content) VALUES($r, $i, $v, $p, $l, $x, $h, NULL)");
        using var blockCmd = Command("INSERT INTO content_blocks(region_id, first_idx, data) VALUES($r, $f, $d)");
        for (int regionNumber = 0; regionNumber < regions.Count; regionNumber++)
        {
            var rm = regions[regionNumber];
            var r = rm.Region;
            Bind(regionCmd, ("$b", baselineId), ("$n", r.Name), ("$k", r.Kind.ToString()), ("$o", (object?)r.Owner ?? DBNull.Value),
                ("$s", unchecked((long)r.Start)), ("$l", unchecked((long)r.Length)));
            regionCmd.ExecuteNonQuery();
            long regionId = (long)Scalar("SELECT last_insert_rowid()")!;
            foreach (var p in rm.Pages)
            {
                Bind(pageCmd, ("$r", regionId), ("$i", p.Index), ("$v", unchecked((long)p.VirtualAddress)),
                    ("$p", p.PhysicalAddress is { } pa ? unchecked((long)pa) : DBNull.Value), ("$l", p.Length),
                    ("$x", unchecked((long)p.XxHash3)), ("$h", (object?)p.Sha256 ?? DBNull.Value));
                pageCmd.ExecuteNonQuery();
            }
            foreach (var block in blocksOf[regionNumber])
            {
                Bind(blockCmd, ("$r", regionId), ("$f", block.FirstIndex), ("$d", block.Data));
                blockCmd.ExecuteNonQuery();
            }
        }
        tx.Commit();
        return new SavedBaseline(baselineId, AlreadyStored: false);
    });

    /// <summary>What identifies a baseline's measurements: every region's identity and every page's hashes. Physical
    /// addresses are left out: the same bytes in other frames are the same measurement.</summary>
    private static byte[] Digest(IEnumerable<RegionMeasurement> regions)
    {
        using var h = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var rm in regions)
        {
            var r = rm.Region;
            DigestRegion(h, r.Name, r.Kind.ToString(), r.Owner, r.Start, r.Length);
            foreach (var p in rm.Pages) DigestPage(h, p.Index, p.VirtualAddress, p.Length, p.XxHash3, p.Sha256);
        }
        return h.GetHashAndReset();
    }

    private byte[] StoredDigest(long baselineId)
    {
        using var h = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        foreach (var (regionId, region) in ReadRegions(baselineId))
        {
            DigestRegion(h, region.Name, region.Kind.ToString(), region.Owner, region.Start, region.Length);
            foreach (var p in ReadPages(regionId, withContent: false)) DigestPage(h, p.Index, p.VirtualAddress, p.Length, p.XxHash3, p.Sha256);
        }
        return h.GetHashAndReset();
    }

    private static void DigestRegion(IncrementalHash h, string name, string kind, string? owner, ulong start, ulong length)
    {
        h.AppendData(Encoding.UTF8.GetBytes($"R\0{name}\0{kind}\0{owner}\0{start:x}\0{length:x}\0"));
    }

    private static void DigestPage(IncrementalHash h, int index, ulong va, int length, ulong xxh3, byte[]? sha256)
    {
        h.AppendData(Encoding.UTF8.GetBytes($"P\0{index}\0{va:x}\0{length}\0{xxh3:x}\0"));
        h.AppendData(sha256 ?? []);
    }

    /// <summary>Adds reference hashes of process code pages, keyed by (file path, file offset). A page already known
    /// keeps its first reference (later sightings are compared with it), unless the new one is authoritative.</summary>
    public int AddCodePages(IEnumerable<(string File, ulong Offset, byte[] Sha256)> pages, string source, bool authoritative = false) => Guard(() =>
    {
        using var tx = _db.BeginTransaction();
        // References computed from the files themselves outrank ones taken on first use.
        using var cmd = Command(authoritative
            ? "INSERT INTO code_pages(file, offset, sha256, source, first_seen) VALUES($f, $o, $h, $s, $t) ON CONFLICT(file, offset) DO UPDATE SET sha256=excluded.sha256, source=excluded.source"
            : "INSERT OR IGNORE INTO code_pages(file, offset, sha256, source, first_seen) VALUES($f, $o, $h, $s, $t)");
        string now = DateTime.UtcNow.ToString("O", CultureInfo.InvariantCulture);
        int added = 0;
        foreach (var (file, offset, sha) in pages)
        {
            Bind(cmd, ("$f", file), ("$o", unchecked((long)offset)), ("$h", sha), ("$s", source), ("$t", now));
            added += cmd.ExecuteNonQuery();
        }
        tx.Commit();
        return added;
    });

    public Dictionary<(string File, ulong Offset), (byte[] Sha256, string Source)> CodePages() => Guard(() =>
    {
        using var cmd = Command("SELECT rowid, file, offset, sha256, source FROM code_pages");
        using var rd = cmd.ExecuteReader();
        var map = new Dictionary<(string, ulong), (byte[], string)>();
        while (rd.Read())
        {
            long row = Int64(rd, 0, "code_pages", 0);
            var key = (Text(rd, 1, "code_pages", "file", row), unchecked((ulong)Int64(rd, 2, "code_pages", row, "offset")));
            byte[] sha = Blob(rd, 3, "code_pages", "sha256", row);
            if (sha.Length != Sha256Bytes) throw Corrupt($"sha256 of {sha.Length} bytes, expected {Sha256Bytes}", "code_pages", row);
            if (!map.TryAdd(key, (sha, Text(rd, 4, "code_pages", "source", row)))) throw Corrupt("duplicate (file, offset)", "code_pages", row);
            if (map.Count > _limits.MaxBaselinePages) throw Corrupt($"more than {_limits.MaxBaselinePages} code pages (the limit)", "code_pages", row);
        }
        return map;
    });

    /// <summary>Records anonymous executable memory seen when <paramref name="baselineId"/> was taken, so that the
    /// same memory on an unchanged guest is not reported again. Returns how many were new.</summary>
    public int AddAnonymousCode(long baselineId, IEnumerable<AnonymousCodeKey> keys) => Guard(() =>
    {
        using var tx = _db.BeginTransaction();
        using var cmd = Command("INSERT OR IGNORE INTO anonymous_code(baseline_id, exe, comm, permissions, length, sha256) VALUES($b, $e, $c, $p, $l, $h)");
        int added = 0;
        foreach (var k in keys)
        {
            Bind(cmd, ("$b", baselineId), ("$e", k.Exe), ("$c", k.Comm), ("$p", k.Permissions), ("$l", unchecked((long)k.Length)), ("$h", Convert.FromHexString(k.ContentSha256)));
            added += cmd.ExecuteNonQuery();
        }
        tx.Commit();
        return added;
    });

    public HashSet<AnonymousCodeKey> AnonymousCode(long baselineId) => Guard(() =>
    {
        using var cmd = Command("SELECT rowid, exe, comm, permissions, length, sha256 FROM anonymous_code WHERE baseline_id=$b");
        Bind(cmd, ("$b", baselineId));
        using var rd = cmd.ExecuteReader();
        var set = new HashSet<AnonymousCodeKey>();
        while (rd.Read())
        {
            long row = Int64(rd, 0, "anonymous_code", 0);
            byte[] sha = Blob(rd, 5, "anonymous_code", "sha256", row);
            if (sha.Length != Sha256Bytes) throw Corrupt($"sha256 of {sha.Length} bytes, expected {Sha256Bytes}", "anonymous_code", row);
            set.Add(new AnonymousCodeKey(Text(rd, 1, "anonymous_code", "exe", row), Text(rd, 2, "anonymous_code", "comm", row),
                Text(rd, 3, "anonymous_code", "permissions", row), unchecked((ulong)Int64(rd, 4, "anonymous_code", row, "length")), Convert.ToHexStringLower(sha)));
            if (set.Count > _limits.MaxBaselinePages) throw Corrupt($"more than {_limits.MaxBaselinePages} rows (the limit)", "anonymous_code", row);
        }
        return set;
    });

    public IReadOnlyList<BaselineInfo> List() => Guard(() => ListWhere("", []));

    private List<BaselineInfo> ListWhere(string where, (string, object)[] values)
    {
        using var cmd = Command($"""
            SELECT b.id, k.build_id, k.banner, b.text_va, b.created, b.target,
                   (SELECT count(*) FROM regions r WHERE r.baseline_id=b.id),
                   (SELECT count(*) FROM pages p JOIN regions r ON p.region_id=r.id WHERE r.baseline_id=b.id), k.id
            FROM baselines b JOIN kernels k ON k.id=b.kernel_id {where} ORDER BY b.id
            """);
        Bind(cmd, values);
        using var rd = cmd.ExecuteReader();
        var list = new List<BaselineInfo>();
        while (rd.Read())
        {
            long row = Int64(rd, 0, "baselines", 0);
            string created = Text(rd, 4, "baselines", "created", row);
            if (!DateTime.TryParseExact(created, "O", CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind, out var when))
                throw Corrupt($"created '{HostileSqlite.OneLine(created)}' is not a date", "baselines", row);
            long kernelRow = Int64(rd, 8, "kernels", row, "id");
            list.Add(new BaselineInfo(row, Text(rd, 1, "kernels", "build_id", kernelRow), Text(rd, 2, "kernels", "banner", kernelRow),
                unchecked((ulong)Int64(rd, 3, "baselines", row, "text_va")), when, Text(rd, 5, "baselines", "target", row),
                Count(rd, 6, "regions", row), Count(rd, 7, "pages", row)));
        }
        return list;
    }

    private BaselineInfo? LatestInfo(string buildId, ulong textVa) =>
        ListWhere("WHERE k.build_id=$b AND b.text_va=$t", [("$b", buildId), ("$t", unchecked((long)textVa))]).LastOrDefault();

    /// <summary>The newest baseline for this kernel build and layout, without its pages, or null.</summary>
    public BaselineInfo? FindLatest(string buildId, ulong textVa) => Guard(() => LatestInfo(buildId, textVa));

    /// <summary>The newest baseline for this kernel build and layout, with its pages, or null.</summary>
    public StoredBaseline? Latest(string buildId, ulong textVa, bool lazyContent = false)
    {
        var info = FindLatest(buildId, textVa);
        return info is null ? null : Load(info, lazyContent);
    }

    /// <param name="lazyContent">Keep page contents compressed and decompress each on first use (verification reads the
    /// content of changed pages only); a content that does not decompress to its stored length is then reported, as the
    /// same <see cref="BaselineFormatException"/>, when it is first read.</param>
    public StoredBaseline Load(BaselineInfo info, bool lazyContent = false) => Guard(() =>
    {
        var regions = new List<RegionMeasurement>();
        foreach (var (id, region) in ReadRegions(info.Id))
            regions.Add(new RegionMeasurement(region, ReadPages(id, withContent: true, lazyContent)));
        return new StoredBaseline(info, regions);
    });

    private List<(long Id, MeasuredRegion Region)> ReadRegions(long baselineId)
    {
        using var rc = Command("SELECT id, name, kind, owner, start, length FROM regions WHERE baseline_id=$b ORDER BY id");
        Bind(rc, ("$b", baselineId));
        var rows = new List<(long Id, MeasuredRegion Region)>();
        var identities = new HashSet<(string, ulong)>();
        using var rd = rc.ExecuteReader();
        while (rd.Read())
        {
            long row = Int64(rd, 0, "regions", 0);
            string name = Text(rd, 1, "regions", "name", row), kindName = Text(rd, 2, "regions", "kind", row);
            if (!RegionKinds.TryGetValue(kindName, out var kind)) throw Corrupt($"kind '{HostileSqlite.OneLine(kindName)}' is not a known region kind", "regions", row);
            string? owner = rd.IsDBNull(3) ? null : Text(rd, 3, "regions", "owner", row);
            ulong start = unchecked((ulong)Int64(rd, 4, "regions", row, "start")), length = unchecked((ulong)Int64(rd, 5, "regions", row, "length"));
            if (length == 0 || length > (ulong)_limits.MaxBaselinePages * PageBytes || start + length < start)
                throw Corrupt($"length 0x{length:x} at 0x{start:x} is empty, wraps, or exceeds {_limits.MaxBaselinePages} pages", "regions", row);
            // A region is one (name, start): the same one twice would be measured and reported twice.
            if (!identities.Add((name, start))) throw Corrupt($"duplicate region '{HostileSqlite.OneLine(name)}' at 0x{start:x}", "regions", row);
            rows.Add((row, new MeasuredRegion(name, kind, start, length, owner)));
        }
        return rows;
    }

    private List<PageMeasurement> ReadPages(long regionId, bool withContent, bool lazyContent = false)
    {
        using var pc = Command($"SELECT rowid, idx, va, pa, length, xxh3, sha256, {(withContent ? "content" : "NULL")} FROM pages WHERE region_id=$r ORDER BY idx");
        Bind(pc, ("$r", regionId));
        var pages = new List<PageMeasurement>();
        using var rd = pc.ExecuteReader();
        while (rd.Read())
        {
            long row = Int64(rd, 0, "pages", 0);
            long idx = Int64(rd, 1, "pages", row, "idx");
            if (idx < 0 || idx >= _limits.MaxBaselinePages) throw Corrupt($"idx {idx} outside 0..{_limits.MaxBaselinePages - 1}", "pages", row);
            if (pages.Count > 0 && idx <= pages[^1].Index) throw Corrupt($"duplicate idx {idx}", "pages", row);
            long length = Int64(rd, 4, "pages", row, "length");
            if (length is < 1 or > PageBytes) throw Corrupt($"length {length} outside 1..{PageBytes}", "pages", row);
            byte[]? sha = rd.IsDBNull(6) ? null : Blob(rd, 6, "pages", "sha256", row);
            if (sha is not null && sha.Length != Sha256Bytes) throw Corrupt($"sha256 of {sha.Length} bytes, expected {Sha256Bytes}", "pages", row);
            byte[]? content = null, compressed = null;
            if (withContent && !rd.IsDBNull(7))
            {
                compressed = Blob(rd, 7, "pages", "content", row);
                if (!lazyContent)
                    content = Decompress(compressed, (int)length) ?? throw Corrupt($"content does not decompress to the stored length {length}", "pages", row);
            }
            ulong va = unchecked((ulong)Int64(rd, 2, "pages", row, "va"));
            ulong? pa = rd.IsDBNull(3) ? null : unchecked((ulong)Int64(rd, 3, "pages", row, "pa"));
            ulong xxh3 = unchecked((ulong)Int64(rd, 5, "pages", row, "xxh3"));
            pages.Add(compressed is not null && lazyContent
                ? PageMeasurement.WithLazyContent((int)idx, va, pa, (int)length, xxh3, sha,
                    () => Decompress(compressed, (int)length) ?? throw Corrupt($"content does not decompress to the stored length {length}", "pages", row))
                : new PageMeasurement((int)idx, va, pa, (int)length, xxh3, sha, content));
            if (pages.Count > _limits.MaxBaselinePages) throw Corrupt($"more than {_limits.MaxBaselinePages} pages in one region (the limit)", "pages", row);
        }
        if (withContent) AttachBlocks(regionId, pages, lazyContent);
        return pages;
    }

    /// <summary>Gives the present pages of each stored content block (schema version 3) a loader that decompresses the
    /// block on first use; the block must decompress to exactly the summed lengths of those pages. Only the block keys
    /// are read here: a verify that finds nothing changed reads no content at all.</summary>
    private void AttachBlocks(long regionId, List<PageMeasurement> pages, bool lazyContent)
    {
        using var bc = Command("SELECT rowid, first_idx FROM content_blocks WHERE region_id=$r ORDER BY first_idx");
        Bind(bc, ("$r", regionId));
        var byIndex = new Dictionary<int, int>(pages.Count);
        for (int i = 0; i < pages.Count; i++) byIndex[pages[i].Index] = i;
        using var rd = bc.ExecuteReader();
        while (rd.Read())
        {
            long row = Int64(rd, 0, "content_blocks", 0);
            long first = Int64(rd, 1, "content_blocks", row, "first_idx");
            if (first < 0 || first >= _limits.MaxBaselinePages || first % ContentBlocks.PagesPerBlock != 0)
                throw Corrupt($"first_idx {first} is not a multiple of {ContentBlocks.PagesPerBlock} in 0..{_limits.MaxBaselinePages - 1}", "content_blocks", row);
            var members = new List<int>(ContentBlocks.PagesPerBlock);
            for (int idx = (int)first; idx < first + ContentBlocks.PagesPerBlock; idx++)
                if (byIndex.TryGetValue(idx, out int at) && pages[at].Present && pages[at].ContentIfLoaded is null && !pages[at].ContentPending) members.Add(at);
            if (members.Count == 0) throw Corrupt($"block at idx {first} holds no present page of its region", "content_blocks", row);
            int total = members.Sum(m => pages[m].Length);
            byte[]? block = null;
            byte[] Block() => block ??= Guard(() =>
            {
                using var dc = Command("SELECT data FROM content_blocks WHERE rowid=$id");
                Bind(dc, ("$id", row));
                using var drd = dc.ExecuteReader();
                if (!drd.Read()) throw Corrupt($"block at idx {first} disappeared", "content_blocks", row);
                return ContentBlocks.Decompress(Blob(drd, 0, "content_blocks", "data", row), total)
                    ?? throw Corrupt($"block at idx {first} does not decompress to the {total} bytes of its {members.Count} present pages", "content_blocks", row);
            });
            int offset = 0;
            foreach (int m in members)
            {
                var p = pages[m];
                int from = offset, length = p.Length;
                pages[m] = PageMeasurement.WithLazyContent(p.Index, p.VirtualAddress, p.PhysicalAddress, p.Length, p.XxHash3, p.Sha256, () => Block().AsSpan(from, length).ToArray());
                offset += length;
            }
        }
        if (!lazyContent)
            foreach (var p in pages) _ = p.Content; // decompresses and checks every block now
    }

    /// <summary>The decompressed page, or null unless it is exactly <paramref name="length"/> bytes.</summary>
    private static byte[]? Decompress(byte[] data, int length)
    {
        // One byte of room beyond the page tells "longer than stored" apart from "exactly as long".
        var output = new byte[length + 1];
        using var decoder = new BrotliDecoder();
        var status = decoder.Decompress(data, output, out _, out int written);
        return status == System.Buffers.OperationStatus.Done && written == length ? output[..written] : null;
    }

    // Typed, validated reads: a value of the wrong storage class or over the length cap is corruption, never a cast error.

    private long Int64(SqliteDataReader rd, int column, string table, long row, string? name = null) =>
        rd.GetValue(column) is long v ? v : throw Corrupt($"{name ?? rd.GetName(column)} is {StorageClass(rd, column)}, expected an integer", table, row);

    private int Count(SqliteDataReader rd, int column, string table, long row)
    {
        long n = Int64(rd, column, table, row);
        return n <= _limits.MaxBaselinePages ? (int)n : throw Corrupt($"{n} {table} in one baseline, more than the limit of {_limits.MaxBaselinePages}", "baselines", row);
    }

    private string Text(SqliteDataReader rd, int column, string table, string name, long row)
    {
        if (rd.GetValue(column) is not string s) throw Corrupt($"{name} is {StorageClass(rd, column)}, expected text", table, row);
        return s.Length <= _limits.MaxBaselineValueBytes ? s : throw Corrupt($"{name} of {s.Length} characters, more than the limit of {_limits.MaxBaselineValueBytes}", table, row);
    }

    private byte[] Blob(SqliteDataReader rd, int column, string table, string name, long row)
    {
        if (rd.GetValue(column) is not byte[] b) throw Corrupt($"{name} is {StorageClass(rd, column)}, expected a blob", table, row);
        return b.Length <= _limits.MaxBaselineValueBytes ? b : throw Corrupt($"{name} of {b.Length} bytes, more than the limit of {_limits.MaxBaselineValueBytes}", table, row);
    }

    private static string StorageClass(SqliteDataReader rd, int column) => rd.GetValue(column) switch
    {
        long => "an integer",
        double => "a real",
        string => "text",
        byte[] => "a blob",
        _ => "null",
    };

    private BaselineFormatException Corrupt(string what, string? table = null, long? row = null) =>
        new($"{Path}: baseline database is corrupt: {what}{(table is null ? "" : $" (table {table}, row {row})")}");

    /// <summary>Runs one store operation; SQLite's own complaints about the file become one-line format errors.</summary>
    private T Guard<T>(Func<T> work)
    {
        try { return work(); }
        catch (SqliteException e) when (_hardening.BudgetExceeded)
        {
            throw new BaselineFormatException($"{Path}: baseline database queries exceeded the limit of {_limits.MaxBaselineQuerySteps} SQLite steps ({e.SqliteErrorCode})");
        }
        catch (SqliteException e) when (e.SqliteErrorCode == SqliteTooBig)
        {
            throw new BaselineFormatException($"{Path}: baseline database is corrupt: a value longer than the limit of {_limits.MaxBaselineValueBytes} bytes (MaxBaselineValueBytes)");
        }
        catch (SqliteException e)
        {
            throw new BaselineFormatException($"{Path}: baseline database is unusable: {HostileSqlite.OneLine(e.Message)}");
        }
    }

    private void Guard(Action work) => Guard(() => { work(); return 0; });


    private SqliteCommand Command(string sql)
    {
        var cmd = _db.CreateCommand();
        cmd.CommandText = sql;
        return cmd;
    }

    private static void Bind(SqliteCommand cmd, params (string Name, object Value)[] values)
    {
        // A command bound again with the same names (one row after another in a batch) keeps its parameters and only
        // takes the new values: rebuilding them per row was most of the cost of a 100,000-row insert.
        var bound = cmd.Parameters;
        if (bound.Count == values.Length)
        {
            int same = 0;
            while (same < values.Length && bound[same].ParameterName == values[same].Name) same++;
            if (same == values.Length)
            {
                for (int i = 0; i < values.Length; i++) bound[i].Value = values[i].Value;
                return;
            }
        }
        cmd.Parameters.Clear();
        foreach (var (n, v) in values) cmd.Parameters.AddWithValue(n, v);
    }

    private void Exec(string sql, params (string, object)[] values)
    {
        using var cmd = Command(sql);
        Bind(cmd, values);
        cmd.ExecuteNonQuery();
    }

    private object? Scalar(string sql, params (string, object)[] values)
    {
        using var cmd = Command(sql);
        Bind(cmd, values);
        return cmd.ExecuteScalar();
    }

    public void Dispose() => _db.Dispose();

    private sealed record SchemaObject(int Since, string Type, string Name, string Sql);
}
