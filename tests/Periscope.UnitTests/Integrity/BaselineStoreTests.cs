using System.Runtime.InteropServices;
using System.Security.Cryptography;
using Microsoft.Data.Sqlite;
using Periscope.Integrity.Baselines;
using Periscope.Integrity.Measurement;
using Periscope.Integrity.Regions;
using Periscope.Memory;
using Periscope.Tests.Shared;
using Periscope.UnitTests.Support;

namespace Periscope.UnitTests.Integrity;

/// <summary>
/// Baseline databases are hostile input: every corruption below (issue 6 #4, #10, #11 and the Files bullet) must give
/// one line naming the file and exit 2 through the CLI, or one BaselineFormatException from the store, never another
/// exception, a hang or a huge allocation. Each database is made in the test with the store itself, then damaged.
/// </summary>
public sealed class BaselineStoreTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("periscope-store-").FullName;

    private string NewPath(string name = "b.db") => Path.Combine(_dir, name);

    /// <summary>A valid database with one baseline of <paramref name="regions"/> regions of 4 pages each.</summary>
    private string ValidDatabase(int regions = 3, string name = "b.db")
    {
        string path = NewPath(name);
        using (var store = BaselineStore.Open(path)) store.Save("build-1", "Linux version test", 0xffffffff81000000, "test", Measurements(regions));
        using (var db = Raw(path)) Exec(db, "PRAGMA journal_mode=DELETE");
        return path;
    }

    private static IReadOnlyList<RegionMeasurement> Measurements(int regions, byte salt = 0)
    {
        var list = new List<RegionMeasurement>();
        for (int r = 0; r < regions; r++)
        {
            ulong start = 0xffffffff81000000 + (ulong)r * 0x10000;
            var pages = new List<PageMeasurement>();
            for (int i = 0; i < 4; i++)
            {
                var content = new byte[4096];
                RandomNumberGenerator.Fill(content.AsSpan(0, 64)); // some entropy so the file has several pages
                content[100] = salt;
                pages.Add(new PageMeasurement(i, start + (ulong)i * 4096, 0x1000000 + (ulong)(r * 4 + i) * 4096, 4096, (ulong)(r * 4 + i + salt), SHA256.HashData(content), content));
            }
            list.Add(new RegionMeasurement(new MeasuredRegion($"region{r}", RegionKind.KernelText, start, 4 * 4096), pages));
        }
        return list;
    }

    private static SqliteConnection Raw(string path)
    {
        var db = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString());
        db.Open();
        return db;
    }

    private static void Exec(SqliteConnection db, string sql)
    {
        using var cmd = db.CreateCommand();
        cmd.CommandText = sql;
        cmd.ExecuteNonQuery();
    }

    private static void Edit(string path, string sql)
    {
        using var db = Raw(path);
        Exec(db, sql);
    }

    /// <summary>Runs the CLI and asserts exit 2 with exactly one line that names the file.</summary>
    private static string AssertOneLineError(string path, params string[] args)
    {
        var (code, _, err) = CliRun.Run(args);
        Assert.Equal(2, code);
        var lines = err.Trim().Split('\n');
        Assert.Single(lines);
        Assert.StartsWith($"periscope: {path}: ", lines[0]);
        Assert.True(lines[0].Length < 400, $"error line of {lines[0].Length} characters");
        return lines[0];
    }

    private static string ListError(string path) => AssertOneLineError(path, "baseline", "list", "--db", path);

    private static BaselineFormatException LoadError(string path, IntrospectionLimits? limits = null)
    {
        return Assert.Throws<BaselineFormatException>(() =>
        {
            using var store = BaselineStore.Open(path, BaselineOpenMode.Existing, limits);
            foreach (var b in store.List()) store.Load(b);
            store.CodePages();
        });
    }

    [Fact]
    public void Valid_database_lists_and_loads()
    {
        string path = ValidDatabase();
        var (code, output, err) = CliRun.Run("baseline", "list", "--db", path);
        Assert.Equal(0, code);
        Assert.Equal("", err);
        Assert.Contains("build-1", output);
        using var store = BaselineStore.Open(path, BaselineOpenMode.Existing);
        var loaded = store.Load(Assert.Single(store.List()));
        Assert.Equal(3, loaded.Regions.Count);
        Assert.All(loaded.Regions, r => Assert.All(r.Pages, p => Assert.Equal(4096, p.Content!.Length)));
    }

    [Fact]
    public void Random_bytes_are_not_a_database()
    {
        var bytes = new byte[64 * 1024];
        new Random(6).NextBytes(bytes);
        using var f = new TempFile(bytes, ".db");
        Assert.Contains("not a baseline database: at offset 0: no SQLite header", ListError(f.Path));
    }

    [Fact]
    public void Zeros_are_not_a_database()
    {
        using var f = new TempFile(new byte[64 * 1024], ".db");
        Assert.Contains("no SQLite header", ListError(f.Path));
    }

    [Fact]
    public void Truncated_database_is_one_line()
    {
        string path = ValidDatabase(regions: 12);
        var bytes = File.ReadAllBytes(path);
        Assert.True(bytes.Length >= 8 * 4096, $"database of only {bytes.Length} bytes");
        File.WriteAllBytes(path, bytes[..(bytes.Length / 2)]);
        Assert.Contains("baseline database is", ListError(path));
    }

    [Fact]
    public void Bad_page_size_is_named_with_its_offset()
    {
        string path = ValidDatabase();
        var bytes = File.ReadAllBytes(path);
        bytes[16] = 0x03; bytes[17] = 0xe8; // 1000
        File.WriteAllBytes(path, bytes);
        Assert.Contains("at offset 16: page size 1000 is not a power of two", ListError(path));
    }

    [Fact]
    public void Flipped_bit_in_a_btree_page_header_is_one_line()
    {
        string path = ValidDatabase();
        var bytes = File.ReadAllBytes(path);
        int pageSize = bytes[16] << 8 | bytes[17];
        Assert.Equal(0x0d, bytes[pageSize]); // page 2 is a table leaf (kernels or meta)
        bytes[pageSize] ^= 0x01;
        File.WriteAllBytes(path, bytes);
        Assert.Contains("baseline database is", ListError(path));
    }

    [Fact]
    public void Table_replaced_by_a_recursive_view_is_refused_before_it_runs()
    {
        string path = ValidDatabase();
        Edit(path, """
            DROP TABLE code_pages;
            CREATE VIEW code_pages AS WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT 'f' AS file, i AS offset, x'00' AS sha256, 's' AS source FROM n;
            """);
        Assert.Contains("schema object view 'code_pages' was not created by Periscope (sqlite_master, row", ListError(path));
    }

    [Fact]
    public void Trigger_in_the_file_is_refused()
    {
        string path = ValidDatabase();
        Edit(path, "CREATE TRIGGER t AFTER INSERT ON code_pages BEGIN DELETE FROM baselines; END");
        Assert.Contains("schema object trigger 't' was not created by Periscope", ListError(path));
    }

    [Fact]
    public void Table_with_altered_columns_is_refused()
    {
        string path = ValidDatabase();
        Edit(path, "DROP TABLE code_pages; CREATE TABLE code_pages(file TEXT, offset INTEGER, sha256 TEXT, source TEXT, first_seen TEXT)");
        Assert.Contains("schema object table 'code_pages' was not created by Periscope", ListError(path));
    }

    [Fact]
    public void Huge_string_is_refused_without_reading_it()
    {
        string path = ValidDatabase();
        Edit(path, "UPDATE kernels SET banner = printf('%.*c', 70000000, 'x')");
        string line = ListError(path);
        Assert.EndsWith($"baseline database is corrupt: a value longer than the limit of {IntrospectionLimits.Default.MaxBaselineValueBytes} bytes (MaxBaselineValueBytes)", line);
    }

    [Fact]
    public void Banner_of_the_wrong_type_names_the_kernels_row()
    {
        string path = ValidDatabase();
        Edit(path, "UPDATE kernels SET banner = x'07'"); // a TEXT column keeps a blob as a blob
        Assert.EndsWith("baseline database is corrupt: banner is a blob, expected text (table kernels, row 1)", ListError(path));
    }

    [Fact]
    public void Value_over_the_limit_states_the_limit()
    {
        string path = ValidDatabase();
        Edit(path, "UPDATE baselines SET target = printf('%.*c', 5000, 'y')");
        var e = LoadError(path, IntrospectionLimits.Default with { MaxBaselineValueBytes = 1000 });
        Assert.Equal($"{path}: baseline database is corrupt: a value longer than the limit of 1000 bytes (MaxBaselineValueBytes)", e.Message);
    }

    [Fact]
    public void Query_work_is_bounded_by_the_step_budget()
    {
        string path = ValidDatabase(regions: 40);
        var e = LoadError(path, IntrospectionLimits.Default with { MaxBaselineQuerySteps = 500 });
        Assert.Equal($"{path}: baseline database queries exceeded the limit of 500 SQLite steps (9)", e.Message);
    }

    [Fact]
    public void Created_that_is_not_a_date_names_table_and_row()
    {
        string path = ValidDatabase();
        Edit(path, "UPDATE baselines SET created = 'yesterday'");
        Assert.EndsWith("baseline database is corrupt: created 'yesterday' is not a date (table baselines, row 1)", ListError(path));
    }

    [Fact]
    public void Unknown_region_kind_is_corrupt()
    {
        string path = ValidDatabase();
        Edit(path, "UPDATE regions SET kind = '42' WHERE id = 2");
        Assert.Equal($"{path}: baseline database is corrupt: kind '42' is not a known region kind (table regions, row 2)", LoadError(path).Message);
    }

    [Fact]
    public void Page_index_beyond_int_is_corrupt()
    {
        string path = ValidDatabase();
        Edit(path, "UPDATE pages SET idx = 4294967296 WHERE region_id = 1 AND idx = 3");
        Assert.Contains("idx 4294967296 outside 0..", LoadError(path).Message);
    }

    [Fact]
    public void Sha256_stored_as_text_is_corrupt()
    {
        string path = ValidDatabase();
        Edit(path, "INSERT INTO code_pages(file, offset, sha256, source, first_seen) VALUES('/bin/sh', 0, 'abcd', 'first use', 'now')");
        Assert.Equal($"{path}: baseline database is corrupt: sha256 is text, expected a blob (table code_pages, row 1)", LoadError(path).Message);
    }

    [Fact]
    public void Page_sha256_stored_as_text_is_corrupt()
    {
        string path = ValidDatabase();
        Edit(path, "UPDATE pages SET sha256 = hex(sha256) WHERE region_id = 1 AND idx = 0");
        Assert.Contains("sha256 is text, expected a blob (table pages, row", LoadError(path).Message);
    }

    [Fact]
    public void Duplicate_region_row_is_corrupt()
    {
        string path = ValidDatabase();
        Edit(path, "INSERT INTO regions(baseline_id, name, kind, owner, start, length) SELECT baseline_id, name, kind, owner, start, length FROM regions WHERE id = 1");
        Assert.Contains("duplicate region 'region0' at 0xffffffff81000000 (table regions, row 4)", LoadError(path).Message);
    }

    [Fact]
    public void Stored_page_length_over_a_page_is_corrupt()
    {
        string path = ValidDatabase();
        Edit(path, "UPDATE pages SET length = 100000 WHERE region_id = 1 AND idx = 0");
        Assert.Contains("length 100000 outside 1..4096 (table pages, row", LoadError(path).Message);
    }

    [Fact]
    public void Content_that_does_not_decompress_to_the_stored_length_is_corrupt()
    {
        string path = ValidDatabase();
        Edit(path, "UPDATE pages SET length = 100 WHERE region_id = 1 AND idx = 0");
        Assert.Contains("block at idx 0 does not decompress to the 12388 bytes of its 4 present pages (table content_blocks, row 1)", LoadError(path).Message);
    }

    /// <summary>Issue 9: page contents are stored as compressed blocks of consecutive pages (one Brotli call per 64 KiB,
    /// not per 4 KiB page), and come back byte for byte.</summary>
    [Fact]
    public void Page_contents_are_stored_in_blocks_and_round_trip()
    {
        string path = NewPath();
        var measured = Measurements(3);
        using (var store = BaselineStore.Open(path)) store.Save("build-1", "banner", 0xffffffff81000000, "test", measured);
        using (var db = Raw(path))
        {
            Assert.Equal(0L, Scalar(db, "SELECT count(*) FROM pages WHERE content IS NOT NULL"));
            Assert.Equal(3L, Scalar(db, "SELECT count(*) FROM content_blocks"));
        }
        using var again = BaselineStore.Open(path, BaselineOpenMode.Existing);
        var loaded = again.Load(Assert.Single(again.List()));
        for (int r = 0; r < 3; r++)
            for (int i = 0; i < 4; i++) Assert.Equal(measured[r].Pages[i].Content, loaded.Regions[r].Pages[i].Content);
    }

    /// <summary>Pages kept in the pages table itself (schema version 2 and before) still load, next to new blocks.</summary>
    [Fact]
    public void Content_stored_per_page_by_version_2_still_loads()
    {
        string path = ValidDatabase();
        var page = new byte[4096];
        page[7] = 0x42;
        var compressed = new byte[System.IO.Compression.BrotliEncoder.GetMaxCompressedLength(page.Length)];
        Assert.True(System.IO.Compression.BrotliEncoder.TryCompress(page, compressed, out int written, 1, 22));
        using (var db = Raw(path))
        {
            Exec(db, "DELETE FROM content_blocks WHERE region_id = 2");
            using var cmd = db.CreateCommand();
            cmd.CommandText = "UPDATE pages SET content = $c WHERE region_id = 2 AND idx = 1";
            cmd.Parameters.AddWithValue("$c", compressed[..written]);
            Assert.Equal(1, cmd.ExecuteNonQuery());
        }
        using var store = BaselineStore.Open(path, BaselineOpenMode.Existing);
        var loaded = store.Load(Assert.Single(store.List()));
        Assert.Equal(page, loaded.Regions[1].Pages[1].Content);
        Assert.Null(loaded.Regions[1].Pages[0].Content); // no block and no row content: no expected bytes
        Assert.NotNull(loaded.Regions[0].Pages[0].Content);
    }

    [Fact]
    public void Content_block_at_an_unaligned_index_is_corrupt()
    {
        string path = ValidDatabase();
        Edit(path, "UPDATE content_blocks SET first_idx = 3 WHERE region_id = 2");
        Assert.Contains("first_idx 3 is not a multiple of 16", LoadError(path).Message);
    }

    [Fact]
    public void Content_block_without_a_present_page_is_corrupt()
    {
        string path = ValidDatabase();
        Edit(path, "UPDATE content_blocks SET first_idx = 32 WHERE region_id = 2");
        Assert.Contains("block at idx 32 holds no present page of its region (table content_blocks, row 2)", LoadError(path).Message);
    }

    /// <summary>A block is stored only when every present page of its range has content: a page measured without
    /// content gets no block, so no other page's bytes are ever attributed to it.</summary>
    [Fact]
    public void Pages_without_content_get_no_block()
    {
        var measured = Measurements(2);
        var pages = measured[1].Pages.ToList();
        pages[2] = pages[2] with { Content = null };
        measured = [measured[0], measured[1] with { Pages = pages }];
        var blocks = ContentBlocks.Compress(measured);
        Assert.Equal(1, blocks.Count);
        string path = NewPath();
        using var store = BaselineStore.Open(path);
        store.Save("b", "banner", 0x1000, "t", measured, blocks);
        var loaded = store.Load(Assert.Single(store.List()));
        Assert.All(loaded.Regions[1].Pages, p => Assert.Null(p.Content));
        Assert.All(loaded.Regions[0].Pages, p => Assert.Equal(4096, p.Content!.Length));
        // Blocks of other measurements are refused, not stored against the wrong pages.
        Assert.Throws<ArgumentException>(() => store.Save("c", "banner", 0x2000, "t", Measurements(2), blocks));
    }

    /// <summary>Compression reuses one input and one output buffer per worker: a short block (a region's partial last
    /// page) after a full one must not carry the full block's tail bytes, on one worker or several.</summary>
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    public void Blocks_compressed_with_reused_buffers_hold_exactly_their_pages(int workers)
    {
        var pages = new List<PageMeasurement>();
        const ulong start = 0xffffffff81000000;
        const int fullPages = ContentBlocks.PagesPerBlock + 2, lastLength = 100;
        for (int i = 0; i <= fullPages; i++)
        {
            int length = i == fullPages ? lastLength : 4096;
            var content = new byte[length];
            RandomNumberGenerator.Fill(content);
            pages.Add(new PageMeasurement(i, start + (ulong)i * 4096, 0x1000000 + (ulong)i * 4096, length, (ulong)i, SHA256.HashData(content), content));
        }
        IReadOnlyList<RegionMeasurement> measured =
            [new RegionMeasurement(new MeasuredRegion("text", RegionKind.KernelText, start, (ulong)fullPages * 4096 + lastLength), pages)];
        var blocks = ContentBlocks.Compress(measured, workers);
        Assert.Equal(2, blocks.Count);
        string path = NewPath();
        using var store = BaselineStore.Open(path);
        store.Save("b", "banner", 0x1000, "t", measured, blocks);
        var loaded = store.Load(Assert.Single(store.List()));
        Assert.Equal(pages.Count, loaded.Regions[0].Pages.Count);
        for (int i = 0; i < pages.Count; i++) Assert.Equal(pages[i].Content, loaded.Regions[0].Pages[i].Content);
    }

    private static object? Scalar(SqliteConnection db, string sql)
    {
        using var cmd = db.CreateCommand();
        cmd.CommandText = sql;
        return cmd.ExecuteScalar();
    }

    [Fact]
    public void Lazily_loaded_content_is_decompressed_on_first_use_and_checked_then()
    {
        string path = ValidDatabase();
        Edit(path, "UPDATE pages SET length = 100 WHERE region_id = 1 AND idx = 0");
        using var store = BaselineStore.Open(path, BaselineOpenMode.Existing);
        // Verify's way: nothing is decompressed at load, so the bad page loads...
        var loaded = store.Load(Assert.Single(store.List()), lazyContent: true);
        var bad = loaded.Regions[0].Pages[0];
        Assert.True(bad.ContentPending);
        Assert.Null(bad.ContentIfLoaded);
        // ...and is refused, with the same message, the moment its content is needed.
        var e = Assert.Throws<BaselineFormatException>(() => bad.Content);
        Assert.Contains("block at idx 0 does not decompress to the 12388 bytes of its 4 present pages (table content_blocks, row 1)", e.Message);
        // A good page decompresses to the bytes that were measured.
        var good = loaded.Regions[1].Pages[0];
        Assert.True(good.ContentPending);
        Assert.Equal(good.Sha256, SHA256.HashData(good.Content!));
        Assert.False(good.ContentPending);
    }

    [Fact]
    public void Newer_schema_version_is_refused()
    {
        string path = ValidDatabase();
        Edit(path, "UPDATE meta SET value = '99' WHERE key = 'schema_version'");
        Assert.Contains($"schema version 99, this Periscope reads versions 1 to {BaselineStore.SchemaVersion}", ListError(path));
    }

    [Fact]
    public void Version_1_database_is_upgraded_in_place()
    {
        string path = NewPath();
        using (var db = Raw(path))
        {
            // The schema exactly as Periscope's first version wrote it.
            Exec(db, """
                CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
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
                INSERT INTO meta(key, value) VALUES('schema_version', '1');
                """);
        }
        using (var store = BaselineStore.Open(path, BaselineOpenMode.Existing))
        {
            var saved = store.Save("b", "banner", 0x1000, "t", Measurements(1));
            Assert.Equal(1, store.AddAnonymousCode(saved.Id, [new AnonymousCodeKey("/bin/x", "x", "rwxp", 4096, new string('a', 64))]));
        }
        using var again = Raw(path);
        using var cmd = again.CreateCommand();
        cmd.CommandText = "SELECT value FROM meta WHERE key='schema_version'";
        Assert.Equal(BaselineStore.SchemaVersion.ToString(), cmd.ExecuteScalar());
    }

    [Fact]
    public void Verify_on_a_missing_database_says_so_and_creates_nothing()
    {
        using var dump = new TempFile(new byte[2 << 20]);
        string path = NewPath("missing.db");
        var line = AssertOneLineError(path, "verify", "--dump", dump.Path, "--db", path);
        Assert.Contains("no such baseline database", line);
        Assert.False(File.Exists(path));
    }

    [Fact]
    public void Verify_on_a_non_database_is_one_line_before_the_guest_is_read()
    {
        using var dump = new TempFile(new byte[2 << 20]);
        string path = ValidDatabase();
        Edit(path, "CREATE VIEW v AS SELECT 1");
        Assert.Equal($"periscope: {path}: baseline database is corrupt: schema object view 'v' was not created by Periscope (sqlite_master, row 17)",
            AssertOneLineError(path, "verify", "--dump", dump.Path, "--db", path));
    }

    [Fact]
    public void Baseline_create_on_a_directory_is_one_line()
    {
        var line = AssertOneLineError(_dir, "baseline", "create", "--dump", "/nonexistent.core", "--db", _dir);
        Assert.Equal($"periscope: {_dir}: is a directory, not a baseline database", line);
    }

    [Fact]
    public void Fifo_as_database_is_refused_without_blocking()
    {
        string path = NewPath("fifo.db");
        Assert.Equal(0, MkFifo(path, 0x180));
        Assert.Contains("not a regular file", ListError(path));
    }

    [Fact]
    public void Second_identical_baseline_is_not_stored_again()
    {
        string path = NewPath();
        var measurements = Measurements(2);
        using var store = BaselineStore.Open(path);
        var first = store.Save("b", "banner", 0x1000, "t", measurements);
        var second = store.Save("b", "banner", 0x1000, "t", measurements);
        Assert.False(first.AlreadyStored);
        Assert.True(second.AlreadyStored);
        Assert.Equal(first.Id, second.Id);
        Assert.Single(store.List());
        var changed = store.Save("b", "banner", 0x1000, "t", Measurements(2, salt: 1));
        Assert.False(changed.AlreadyStored);
        Assert.Equal(2, store.List().Count);
    }

    [Fact]
    public void Baseline_list_speaks_json()
    {
        string path = ValidDatabase();
        var (code, output, _) = CliRun.Run("baseline", "list", "--db", path, "--json");
        Assert.Equal(0, code);
        using var doc = System.Text.Json.JsonDocument.Parse(output);
        var b = Assert.Single(doc.RootElement.EnumerateArray().ToArray());
        Assert.Equal("build-1", b.GetProperty("buildId").GetString());
        Assert.Equal("0xffffffff81000000", b.GetProperty("textVa").GetString());
        Assert.Equal(12, b.GetProperty("pages").GetInt32());
    }

    [Fact]
    public void Anonymous_code_keys_round_trip()
    {
        string path = ValidDatabase();
        var key = new AnonymousCodeKey("/bin/workload", "workload", "rwxp", 4096, Convert.ToHexStringLower(SHA256.HashData([1, 2, 3])));
        using var store = BaselineStore.Open(path, BaselineOpenMode.Existing);
        long id = Assert.Single(store.List()).Id;
        Assert.Equal(1, store.AddAnonymousCode(id, [key]));
        Assert.Equal(0, store.AddAnonymousCode(id, [key]));
        Assert.Contains(key, store.AnonymousCode(id));
    }

    [DllImport("libc", EntryPoint = "mkfifo", SetLastError = true)]
    private static extern int MkFifo([MarshalAs(UnmanagedType.LPUTF8Str)] string path, uint mode);

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }
}
