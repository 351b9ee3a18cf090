using System.IO.Compression;
using Microsoft.Data.Sqlite;
using Periscope.Integrity.Measurement;
using Periscope.Integrity.Regions;

namespace Periscope.Integrity.Baselines;

public sealed record BaselineInfo(long Id, string BuildId, string Banner, ulong TextVa, DateTime Created, string Target, int Regions, int Pages);

public sealed record StoredBaseline(BaselineInfo Info, IReadOnlyList<RegionMeasurement> Regions);

/// <summary>
/// The trusted-state database: SQLite, schema-versioned, one file for baselines of many guests keyed by kernel build
/// id and KASLR text base (kernel text holds relocated addresses, so a baseline belongs to one boot's layout). Page
/// contents are kept (Brotli-compressed) so a finding can show the bytes that were expected.
/// </summary>
public sealed class BaselineStore : IDisposable
{
    public const int SchemaVersion = 2;
    private readonly SqliteConnection _db;

    private BaselineStore(SqliteConnection db) => _db = db;

    public string Path { get; private init; } = "";

    /// <summary>For stores of related data in the same file (see EvidenceStore).</summary>
    internal SqliteConnection Connection => _db;

    public static BaselineStore Open(string path)
    {
        var db = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString());
        db.Open();
        var store = new BaselineStore(db) { Path = path };
        store.Migrate();
        return store;
    }

    private void Migrate()
    {
        Exec("PRAGMA journal_mode=WAL; PRAGMA foreign_keys=ON;");
        Exec("CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)");
        string? version = Scalar("SELECT value FROM meta WHERE key='schema_version'") as string;
        if (version is null)
        {
            Exec("""
                CREATE TABLE kernels(id INTEGER PRIMARY KEY, build_id TEXT NOT NULL UNIQUE, banner TEXT NOT NULL);
                CREATE TABLE baselines(id INTEGER PRIMARY KEY, kernel_id INTEGER NOT NULL REFERENCES kernels(id),
                    text_va INTEGER NOT NULL, created TEXT NOT NULL, target TEXT NOT NULL);
                CREATE TABLE regions(id INTEGER PRIMARY KEY, baseline_id INTEGER NOT NULL REFERENCES baselines(id) ON DELETE CASCADE,
                    name TEXT NOT NULL, kind TEXT NOT NULL, owner TEXT, start INTEGER NOT NULL, length INTEGER NOT NULL);
                CREATE TABLE pages(region_id INTEGER NOT NULL REFERENCES regions(id) ON DELETE CASCADE, idx INTEGER NOT NULL,
                    va INTEGER NOT NULL, pa INTEGER, length INTEGER NOT NULL, xxh3 INTEGER NOT NULL, sha256 BLOB, content BLOB,
                    PRIMARY KEY(region_id, idx));
                CREATE INDEX baselines_by_kernel ON baselines(kernel_id, text_va);
                CREATE TABLE code_pages(file TEXT NOT NULL, offset INTEGER NOT NULL, sha256 BLOB NOT NULL, source TEXT NOT NULL,
                    first_seen TEXT NOT NULL, PRIMARY KEY(file, offset));
                CREATE TABLE evidence(baseline_id INTEGER PRIMARY KEY REFERENCES baselines(id) ON DELETE CASCADE, blob BLOB NOT NULL);
                """);
            Exec($"INSERT INTO meta(key, value) VALUES('schema_version', '{SchemaVersion}')");
        }
        else if (version != SchemaVersion.ToString())
            throw new InvalidOperationException($"{Path}: baseline database schema version {version}, this Periscope reads version {SchemaVersion}");
    }

    public long Save(string buildId, string banner, ulong textVa, string target, IEnumerable<RegionMeasurement> regions)
    {
        using var tx = _db.BeginTransaction();
        Exec("INSERT INTO kernels(build_id, banner) VALUES($b, $n) ON CONFLICT(build_id) DO NOTHING", ("$b", buildId), ("$n", banner));
        long kernelId = (long)Scalar("SELECT id FROM kernels WHERE build_id=$b", ("$b", buildId))!;
        Exec("INSERT INTO baselines(kernel_id, text_va, created, target) VALUES($k, $t, $c, $g)",
            ("$k", kernelId), ("$t", unchecked((long)textVa)), ("$c", DateTime.UtcNow.ToString("O")), ("$g", target));
        long baselineId = (long)Scalar("SELECT last_insert_rowid()")!;
        using var regionCmd = Command("INSERT INTO regions(baseline_id, name, kind, owner, start, length) VALUES($b, $n, $k, $o, $s, $l)");
        using var pageCmd = Command("INSERT INTO pages(region_id, idx, va, pa, length, xxh3, sha256, content) VALUES($r, $i, $v, $p, $l, $x, $h, $c)");
        foreach (var rm in regions)
        {
            var r = rm.Region;
            Bind(regionCmd, ("$b", baselineId), ("$n", r.Name), ("$k", r.Kind.ToString()), ("$o", (object?)r.Owner ?? DBNull.Value),
                ("$s", unchecked((long)r.Start)), ("$l", unchecked((long)r.Length)));
            regionCmd.ExecuteNonQuery();
            long regionId = (long)Scalar("SELECT last_insert_rowid()")!;
            foreach (var p in rm.Pages)
            {
                Bind(pageCmd, ("$r", regionId), ("$i", p.Index), ("$v", unchecked((long)p.VirtualAddress)),
                    ("$p", p.PhysicalAddress is { } pa ? unchecked((long)pa) : DBNull.Value), ("$l", p.Length),
                    ("$x", unchecked((long)p.XxHash3)), ("$h", (object?)p.Sha256 ?? DBNull.Value),
                    ("$c", p.Content is { } c ? Compress(c) : DBNull.Value));
                pageCmd.ExecuteNonQuery();
            }
        }
        tx.Commit();
        return baselineId;
    }

    /// <summary>Adds reference hashes of process code pages, keyed by (file path, file offset). A page already known
    /// keeps its first reference (later sightings are compared with it), unless the new one is authoritative.</summary>
    public int AddCodePages(IEnumerable<(string File, ulong Offset, byte[] Sha256)> pages, string source, bool authoritative = false)
    {
        using var tx = _db.BeginTransaction();
        // References computed from the files themselves outrank ones taken on first use.
        using var cmd = Command(authoritative
            ? "INSERT INTO code_pages(file, offset, sha256, source, first_seen) VALUES($f, $o, $h, $s, $t) ON CONFLICT(file, offset) DO UPDATE SET sha256=excluded.sha256, source=excluded.source"
            : "INSERT OR IGNORE INTO code_pages(file, offset, sha256, source, first_seen) VALUES($f, $o, $h, $s, $t)");
        string now = DateTime.UtcNow.ToString("O");
        int added = 0;
        foreach (var (file, offset, sha) in pages)
        {
            Bind(cmd, ("$f", file), ("$o", unchecked((long)offset)), ("$h", sha), ("$s", source), ("$t", now));
            added += cmd.ExecuteNonQuery();
        }
        tx.Commit();
        return added;
    }

    public Dictionary<(string File, ulong Offset), (byte[] Sha256, string Source)> CodePages()
    {
        using var cmd = Command("SELECT file, offset, sha256, source FROM code_pages");
        using var rd = cmd.ExecuteReader();
        var map = new Dictionary<(string, ulong), (byte[], string)>();
        while (rd.Read()) map[(rd.GetString(0), unchecked((ulong)rd.GetInt64(1)))] = ((byte[])rd[2], rd.GetString(3));
        return map;
    }

    public IReadOnlyList<BaselineInfo> List()
    {
        using var cmd = Command("""
            SELECT b.id, k.build_id, k.banner, b.text_va, b.created, b.target,
                   (SELECT count(*) FROM regions r WHERE r.baseline_id=b.id),
                   (SELECT count(*) FROM pages p JOIN regions r ON p.region_id=r.id WHERE r.baseline_id=b.id)
            FROM baselines b JOIN kernels k ON k.id=b.kernel_id ORDER BY b.id
            """);
        using var rd = cmd.ExecuteReader();
        var list = new List<BaselineInfo>();
        while (rd.Read())
            list.Add(new BaselineInfo(rd.GetInt64(0), rd.GetString(1), rd.GetString(2), unchecked((ulong)rd.GetInt64(3)),
                DateTime.Parse(rd.GetString(4), null, System.Globalization.DateTimeStyles.RoundtripKind), rd.GetString(5), rd.GetInt32(6), rd.GetInt32(7)));
        return list;
    }

    /// <summary>The newest baseline for this kernel build and layout, with its pages, or null.</summary>
    public StoredBaseline? Latest(string buildId, ulong textVa)
    {
        var info = List().LastOrDefault(b => b.BuildId == buildId && b.TextVa == textVa);
        return info is null ? null : Load(info);
    }

    public StoredBaseline Load(BaselineInfo info)
    {
        var regions = new List<RegionMeasurement>();
        using var rc = Command("SELECT id, name, kind, owner, start, length FROM regions WHERE baseline_id=$b ORDER BY id");
        Bind(rc, ("$b", info.Id));
        var rows = new List<(long Id, MeasuredRegion Region)>();
        using (var rd = rc.ExecuteReader())
            while (rd.Read())
                rows.Add((rd.GetInt64(0), new MeasuredRegion(rd.GetString(1), Enum.Parse<RegionKind>(rd.GetString(2)), unchecked((ulong)rd.GetInt64(4)),
                    unchecked((ulong)rd.GetInt64(5)), rd.IsDBNull(3) ? null : rd.GetString(3))));
        using var pc = Command("SELECT idx, va, pa, length, xxh3, sha256, content FROM pages WHERE region_id=$r ORDER BY idx");
        foreach (var (id, region) in rows)
        {
            Bind(pc, ("$r", id));
            var pages = new List<PageMeasurement>();
            using var rd = pc.ExecuteReader();
            while (rd.Read())
                pages.Add(new PageMeasurement(rd.GetInt32(0), unchecked((ulong)rd.GetInt64(1)), rd.IsDBNull(2) ? null : unchecked((ulong)rd.GetInt64(2)),
                    rd.GetInt32(3), unchecked((ulong)rd.GetInt64(4)), rd.IsDBNull(5) ? null : (byte[])rd[5], rd.IsDBNull(6) ? null : Decompress((byte[])rd[6])));
            regions.Add(new RegionMeasurement(region, pages));
        }
        return new StoredBaseline(info, regions);
    }

    private static byte[] Compress(byte[] data)
    {
        var output = new byte[BrotliEncoder.GetMaxCompressedLength(data.Length)];
        if (!BrotliEncoder.TryCompress(data, output, out int written, quality: 1, window: 22)) throw new InvalidOperationException("Brotli compression failed");
        return output[..written];
    }

    private static byte[] Decompress(byte[] data)
    {
        var output = new byte[4096];
        if (!BrotliDecoder.TryDecompress(data, output, out int written)) throw new InvalidOperationException("baseline page content is corrupt");
        return output[..written];
    }

    private SqliteCommand Command(string sql)
    {
        var cmd = _db.CreateCommand();
        cmd.CommandText = sql;
        return cmd;
    }

    private static void Bind(SqliteCommand cmd, params (string Name, object Value)[] values)
    {
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
}
