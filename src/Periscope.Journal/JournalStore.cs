using System.Diagnostics.CodeAnalysis;
using System.Globalization;
using System.Security.Cryptography;
using Microsoft.Data.Sqlite;
using Periscope.Memory;
using Periscope.Memory.Files;
using Periscope.Storage;
using SQLitePCL;

namespace Periscope.Journal;

public enum JournalOpenMode
{
    /// <summary>show, export, verify: the journal must exist; nothing is written.</summary>
    ReadOnly,
    /// <summary>watch, append: a missing file becomes a new journal.</summary>
    Append,
}

/// <summary>
/// The append-only, hash-chained journal: one SQLite file (WAL). Durability: every <see cref="Append"/> and
/// <see cref="AppendBatch"/> is one transaction committed with synchronous=FULL, i.e. the WAL is fsynced before the
/// call returns; a record is "committed" exactly when the call that wrote it has returned. A process killed at any
/// point (kill -9) loses only records whose call had not returned; a power cut loses nothing fsynced either.
/// Throughput comes from batching (one fsync per batch), not from weaker syncing.
/// The file is hostile input when read: checked before SQLite opens it, exactly our schema (no trigger or view from the
/// file ever runs), value lengths and total work bounded, every value read typed; a bad file is one
/// <see cref="JournalFormatException"/> naming the file, table and row.
/// </summary>
public sealed class JournalStore : IDisposable
{
    public const int SchemaVersion = 1;
    private const int JournalIdBytes = 16;

    private static readonly (string Type, string Name, string Sql)[] Schema =
    [
        ("table", "meta", "CREATE TABLE meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)"),
        ("table", "records", "CREATE TABLE records(seq INTEGER PRIMARY KEY, time INTEGER NOT NULL, kind INTEGER NOT NULL, payload BLOB NOT NULL, prev BLOB NOT NULL, hash BLOB NOT NULL)"),
        ("table", "heads", "CREATE TABLE heads(seq INTEGER PRIMARY KEY, time INTEGER NOT NULL, hash BLOB NOT NULL, key_id BLOB NOT NULL, signature BLOB NOT NULL)"),
    ];

    private readonly SqliteConnection _db;
    private readonly IntrospectionLimits _limits;
    private readonly object _lock = new();
    private readonly SqliteHardening _hardening;
    private byte[] _scratch = new byte[256];
    private readonly IncrementalHash _sha256 = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private SqliteCommand? _insert;

    private JournalStore(SqliteConnection db, string path, IntrospectionLimits limits)
    {
        _db = db;
        Path = path;
        _limits = limits;
        _hardening = new SqliteHardening(limits.MaxJournalQuerySteps);
    }

    public string Path { get; }
    /// <summary>Random id of this journal, bound into the genesis hash and every head signature.</summary>
    public byte[] JournalId { get; private set; } = [];
    public byte[] Genesis { get; private set; } = [];
    /// <summary>Sequence number of the last committed record (0: empty).</summary>
    public long LastSequence { get; private set; }
    public byte[] LastHash { get; private set; } = [];
    public IntrospectionLimits Limits => _limits;

    public static JournalStore Open(string path, JournalOpenMode mode, IntrospectionLimits? limits = null)
    {
        limits ??= IntrospectionLimits.Default;
        bool create = CheckFile(path, mode, limits);
        var db = new SqliteConnection(new SqliteConnectionStringBuilder
        {
            DataSource = path, Pooling = false,
            Mode = mode == JournalOpenMode.ReadOnly ? SqliteOpenMode.ReadOnly : create ? SqliteOpenMode.ReadWriteCreate : SqliteOpenMode.ReadWrite,
        }.ToString());
        var store = new JournalStore(db, path, limits);
        try
        {
            store.Guard(() =>
            {
                db.Open();
                store.Harden();
                if (mode == JournalOpenMode.Append)
                    store.Exec("PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;");
                if (create || store.IsEmptyDatabase()) store.CreateSchema();
                else store.CheckSchema();
                store.LoadTail(mode);
                return 0;
            });
            return store;
        }
        catch
        {
            db.Dispose();
            throw;
        }
    }

    /// <summary>Checks the path before SQLite sees it; true when a new journal is to be created.</summary>
    private static bool CheckFile(string path, JournalOpenMode mode, IntrospectionLimits limits)
    {
        var kind = DumpFile.KindOf(path);
        if (kind is null)
            return mode == JournalOpenMode.Append ? true : throw new FileNotFoundException($"{path}: no such journal", path);
        using var handle = DumpFile.OpenRegular(path, out var info); // FIFOs, devices, directories: one clear line
        if (info.Length == 0)
            return mode == JournalOpenMode.Append ? true : throw new JournalFormatException($"{path}: empty file, not a journal");
        if (info.Length > (ulong)limits.MaxJournalDatabaseBytes)
            throw new JournalFormatException($"{path}: {info.Length} bytes, more than the limit of {limits.MaxJournalDatabaseBytes} bytes for a journal");
        Span<byte> header = stackalloc byte[HostileSqlite.HeaderBytes];
        int n = RandomAccess.Read(handle, header, 0);
        if (HostileSqlite.HeaderProblem(header[..n]) is { } problem)
            throw new JournalFormatException($"{path}: {problem}, not a journal");
        return false;
    }

    private void Harden() => _hardening.Apply(_db, Math.Max(_limits.MaxJournalPayloadBytes, 4096));

    private bool IsEmptyDatabase() => (long)Scalar("SELECT count(*) FROM sqlite_master")! == 0;

    private void CreateSchema()
    {
        using var tx = _db.BeginTransaction();
        foreach (var o in Schema) Exec(o.Sql);
        Exec("INSERT INTO meta(key, value) VALUES('schema_version', $v)", ("$v", SchemaVersion.ToString(CultureInfo.InvariantCulture)));
        Exec("INSERT INTO meta(key, value) VALUES('journal_id', $v)", ("$v", Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(JournalIdBytes))));
        tx.Commit();
    }

    /// <summary>The file holds exactly our objects (plus the indexes SQLite makes for primary keys) and our version.</summary>
    private void CheckSchema()
    {
        var expected = Schema.ToDictionary(o => o.Name, StringComparer.Ordinal);
        int found = 0;
        using (var cmd = Command("SELECT rowid, type, name, tbl_name, sql FROM sqlite_master"))
        using (var rd = cmd.ExecuteReader())
        {
            while (rd.Read())
            {
                long row = rd.GetInt64(0);
                string type = Text(rd, 1, "sqlite_master", row), name = Text(rd, 2, "sqlite_master", row), table = Text(rd, 3, "sqlite_master", row);
                string? sql = rd.IsDBNull(4) ? null : Text(rd, 4, "sqlite_master", row);
                if (sql is null && type == "index" && name.StartsWith("sqlite_autoindex_", StringComparison.Ordinal) && expected.ContainsKey(table)) continue;
                if (!expected.TryGetValue(name, out var ours) || ours.Type != type || sql is null || HostileSqlite.NormalizeSql(sql) != HostileSqlite.NormalizeSql(ours.Sql))
                    throw Corrupt($"schema object {type} '{HostileSqlite.OneLine(name)}' was not created by Periscope (sqlite_master, row {row})");
                found++;
            }
        }
        if (found != Schema.Length) throw Corrupt($"{Schema.Length - found} of the journal's tables are missing (not a journal?)");
        string version = MetaValue("schema_version");
        if (version != SchemaVersion.ToString(CultureInfo.InvariantCulture))
            throw Corrupt($"schema version '{HostileSqlite.OneLine(version)}', this Periscope reads version {SchemaVersion} (table meta)");
    }

    private string MetaValue(string key)
    {
        using var cmd = Command("SELECT rowid, value FROM meta WHERE key=$k", ("$k", key));
        using var rd = cmd.ExecuteReader();
        if (!rd.Read()) throw Corrupt($"no {key} in table meta");
        return Text(rd, 1, "meta", rd.GetInt64(0));
    }

    private void LoadTail(JournalOpenMode mode)
    {
        string id = MetaValue("journal_id");
        if (id.Length != JournalIdBytes * 2 || !IsHex(id)) throw Corrupt($"journal_id '{HostileSqlite.OneLine(id)}' is not {JournalIdBytes} bytes of hex (table meta)");
        JournalId = Convert.FromHexString(id);
        Genesis = JournalEncoding.Genesis(JournalId);
        LastSequence = 0;
        LastHash = Genesis;
        using var cmd = Command("SELECT seq, time, kind, payload, prev, hash FROM records ORDER BY seq DESC LIMIT 1");
        using var rd = cmd.ExecuteReader();
        if (!rd.Read()) return;
        var last = ReadRecord(rd);
        if (mode == JournalOpenMode.Append)
        {
            // Appending to a chain whose end was altered would bury the damage under valid-looking links.
            if (!JournalEncoding.RecordHash(last.Sequence, last.TimeMicros, last.Kind, last.Payload, last.Previous).AsSpan().SequenceEqual(last.Hash))
                throw Corrupt($"the last record ({last.Sequence}) does not match its hash; run `periscope journal verify --db {Path}` before appending");
        }
        LastSequence = last.Sequence;
        LastHash = last.Hash;
    }

    /// <summary>Appends one record and commits it (fsync) before returning.</summary>
    public JournalRecord Append(JournalRecordKind kind, ReadOnlySpan<byte> payload, DateTimeOffset? time = null)
    {
        var copy = payload.ToArray();
        return AppendBatch([(kind, copy)], time)[0];
    }

    /// <summary>Appends records as one transaction: all of them are committed (fsync) when this returns, or none.</summary>
    public IReadOnlyList<JournalRecord> AppendBatch(IReadOnlyList<(JournalRecordKind Kind, byte[] Payload)> items, DateTimeOffset? time = null)
    {
        lock (_lock)
        {
            foreach (var (_, payload) in items)
                if (payload.Length > _limits.MaxJournalPayloadBytes)
                    throw new ArgumentException($"journal payload of {payload.Length} bytes is more than the limit of {_limits.MaxJournalPayloadBytes}");
            return Guard(() =>
            {
                long micros = ToMicros(time ?? DateTimeOffset.UtcNow);
                var written = new JournalRecord[items.Count];
                long seq = LastSequence;
                var previous = LastHash;
                using var tx = _db.BeginTransaction();
                var insert = InsertCommand(tx);
                for (int i = 0; i < items.Count; i++)
                {
                    var (kind, payload) = items[i];
                    seq++;
                    var hash = new byte[JournalEncoding.HashBytes];
                    JournalEncoding.RecordHash(_sha256, seq, micros, kind, payload, previous, ref _scratch, hash);
                    insert.Parameters[0].Value = seq;
                    insert.Parameters[1].Value = micros;
                    insert.Parameters[2].Value = (long)kind;
                    insert.Parameters[3].Value = payload;
                    insert.Parameters[4].Value = previous;
                    insert.Parameters[5].Value = hash;
                    insert.ExecuteNonQuery();
                    written[i] = new JournalRecord(seq, micros, kind, payload, previous, hash);
                    previous = hash;
                }
                tx.Commit();
                LastSequence = seq;
                LastHash = previous;
                return (IReadOnlyList<JournalRecord>)written;
            });
        }
    }

    private SqliteCommand InsertCommand(SqliteTransaction tx)
    {
        if (_insert is null)
        {
            _insert = _db.CreateCommand();
            _insert.CommandText = "INSERT INTO records(seq, time, kind, payload, prev, hash) VALUES($s, $t, $k, $p, $v, $h)";
            foreach (var name in new[] { "$s", "$t", "$k", "$p", "$v", "$h" }) _insert.Parameters.Add(new SqliteParameter { ParameterName = name });
        }
        _insert.Transaction = tx;
        return _insert;
    }

    /// <summary>Signs the current chain head (unless it is already signed) and commits the signature. Null on an empty journal.</summary>
    public SignedHead? SignHead(JournalSigningKey key, DateTimeOffset? time = null)
    {
        lock (_lock)
        {
            if (LastSequence == 0) return null;
            return Guard(() =>
            {
                if (Scalar("SELECT count(*) FROM heads WHERE seq=$s", ("$s", LastSequence)) is long n && n > 0) return null;
                long micros = ToMicros(time ?? DateTimeOffset.UtcNow);
                var signature = key.Sign(JournalEncoding.HeadMessage(JournalId, LastSequence, micros, LastHash));
                Exec("INSERT INTO heads(seq, time, hash, key_id, signature) VALUES($s, $t, $h, $k, $g)",
                    ("$s", LastSequence), ("$t", micros), ("$h", LastHash), ("$k", key.KeyId), ("$g", signature));
                return new SignedHead(LastSequence, micros, LastHash, key.KeyId, signature);
            });
        }
    }

    /// <summary>Records in sequence order from <paramref name="fromSequence"/>, at most <paramref name="max"/>; each
    /// value typed and bounded. The reader must be enumerated to the end or disposed.</summary>
    public IEnumerable<JournalRecord> Records(long fromSequence = 1, long max = long.MaxValue)
    {
        _hardening.ResetBudget();
        using var cmd = Command("SELECT seq, time, kind, payload, prev, hash FROM records WHERE seq >= $f ORDER BY seq LIMIT $m",
            ("$f", fromSequence), ("$m", Math.Min(max, _limits.MaxJournalRecordsRead)));
        SqliteDataReader rd;
        try { rd = cmd.ExecuteReader(); }
        catch (SqliteException e) { throw Wrap(e); }
        using (rd)
        {
            while (true)
            {
                bool more;
                try { more = rd.Read(); }
                catch (SqliteException e) { throw Wrap(e); }
                if (!more) yield break;
                yield return ReadRecord(rd);
            }
        }
    }

    /// <summary>All records in sequence order as spans (no copies): what verification walks. At most
    /// MaxJournalRecordsRead; the query-step budget of this connection applies.</summary>
    public JournalRowReader OpenRowReader(long fromSequence = 1)
    {
        _hardening.ResetBudget();
        return new JournalRowReader(this, _db.Handle!, fromSequence, _limits.MaxJournalRecordsRead, _limits.MaxJournalPayloadBytes);
    }

    /// <summary>A plain scan of the records table (every column of every row read, nothing checked or hashed): the
    /// floor that `journal bench` compares verification with, in the same run.</summary>
    public long ScanRows()
    {
        _hardening.ResetBudget();
        var db = _db.Handle!;
        if (raw.sqlite3_prepare_v2(db, "SELECT seq, time, kind, payload, prev, hash FROM records ORDER BY seq", out sqlite3_stmt statement) != raw.SQLITE_OK)
            throw StepFailed(raw.sqlite3_errmsg(db).utf8_to_string());
        using (statement)
        {
            long n = 0, touched = 0;
            int rc;
            while ((rc = raw.sqlite3_step(statement)) == raw.SQLITE_ROW)
            {
                touched += raw.sqlite3_column_int64(statement, 0) + raw.sqlite3_column_int64(statement, 1) + raw.sqlite3_column_int64(statement, 2);
                for (int c = 3; c < 6; c++) touched += raw.sqlite3_column_blob(statement, c).Length;
                n++;
            }
            if (rc != raw.SQLITE_DONE) throw StepFailed(raw.sqlite3_errmsg(db).utf8_to_string());
            GC.KeepAlive(touched);
            return n;
        }
    }

    internal JournalFormatException StepFailed(string message) => _hardening.BudgetExceeded
        ? Corrupt($"a query ran past the budget of {_limits.MaxJournalQuerySteps} SQLite steps (IntrospectionLimits.MaxJournalQuerySteps)")
        : Corrupt($"SQLite: {HostileSqlite.OneLine(message)}");

    /// <summary>The raw rows, for verification: values checked for type and size but not for their hashes.</summary>
    internal JournalRecord ReadRecord(SqliteDataReader rd)
    {
        if (rd.GetFieldType(0) != typeof(long)) throw Corrupt("a record's seq is not an integer (table records)");
        long seq = rd.GetInt64(0);
        long time = Int64(rd, 1, seq, "time");
        long kind = Int64(rd, 2, seq, "kind");
        if (kind is < 0 or > uint.MaxValue) throw Corrupt($"kind {kind} out of range (table records, seq {seq})");
        var payload = Blob(rd, 3, seq, "payload", _limits.MaxJournalPayloadBytes);
        var prev = Blob(rd, 4, seq, "prev", JournalEncoding.HashBytes);
        var hash = Blob(rd, 5, seq, "hash", JournalEncoding.HashBytes);
        if (prev.Length != JournalEncoding.HashBytes || hash.Length != JournalEncoding.HashBytes)
            throw Corrupt($"prev/hash of {prev.Length}/{hash.Length} bytes, expected {JournalEncoding.HashBytes} (table records, seq {seq})");
        return new JournalRecord(seq, time, (JournalRecordKind)kind, payload, prev, hash);
    }

    public IReadOnlyList<SignedHead> Heads()
    {
        _hardening.ResetBudget();
        return Guard(() =>
        {
            var heads = new List<SignedHead>();
            using var cmd = Command("SELECT seq, time, hash, key_id, signature FROM heads ORDER BY seq LIMIT $m", ("$m", _limits.MaxJournalHeads + 1L));
            using var rd = cmd.ExecuteReader();
            while (rd.Read())
            {
                if (heads.Count == _limits.MaxJournalHeads)
                    throw Corrupt($"more than {_limits.MaxJournalHeads} signed heads (IntrospectionLimits.MaxJournalHeads)");
                if (rd.GetFieldType(0) != typeof(long)) throw Corrupt("a head's seq is not an integer (table heads)");
                long seq = rd.GetInt64(0);
                heads.Add(new SignedHead(seq, Int64(rd, 1, seq, "time", "heads"), Blob(rd, 2, seq, "hash", 64, "heads"),
                    Blob(rd, 3, seq, "key_id", 64, "heads"), Blob(rd, 4, seq, "signature", 256, "heads")));
            }
            return (IReadOnlyList<SignedHead>)heads;
        });
    }

    public long Count() => Guard(() => (long)Scalar("SELECT count(*) FROM records")!);

    public static long ToMicros(DateTimeOffset t) => (t.UtcTicks - DateTimeOffset.UnixEpoch.UtcTicks) / 10;

    private long Int64(SqliteDataReader rd, int i, long seq, string column, string table = "records") =>
        rd.GetFieldType(i) == typeof(long) ? rd.GetInt64(i) : throw Corrupt($"{column} is not an integer (table {table}, seq {seq})");

    private byte[] Blob(SqliteDataReader rd, int i, long seq, string column, int max, string table = "records")
    {
        if (rd.IsDBNull(i) || rd.GetFieldType(i) != typeof(byte[])) throw Corrupt($"{column} is not a blob (table {table}, seq {seq})");
        long length = rd.GetBytes(i, 0, null, 0, 0);
        if (length > max) throw Corrupt($"{column} of {length} bytes, more than {max} (table {table}, seq {seq})");
        var bytes = new byte[length];
        rd.GetBytes(i, 0, bytes, 0, (int)length);
        return bytes;
    }

    private string Text(SqliteDataReader rd, int i, string table, long row) =>
        rd.GetFieldType(i) == typeof(string) ? rd.GetString(i) : throw Corrupt($"column {i} is not text ({table}, row {row})");

    private T Guard<T>(Func<T> work)
    {
        _hardening.ResetBudget();
        try { return work(); }
        catch (SqliteException e) { throw Wrap(e); }
    }

    private JournalFormatException Wrap(SqliteException e) => _hardening.BudgetExceeded
        ? Corrupt($"a query ran past the budget of {_limits.MaxJournalQuerySteps} SQLite steps (IntrospectionLimits.MaxJournalQuerySteps)")
        : Corrupt($"SQLite: {HostileSqlite.OneLine(e.Message)}", e);

    internal JournalFormatException Corrupt(string what, Exception? inner = null) => new($"{Path}: journal: {what}", inner);

    private SqliteCommand Command(string sql, params (string Name, object Value)[] args)
    {
        var cmd = _db.CreateCommand();
        cmd.CommandText = sql;
        foreach (var (name, value) in args) cmd.Parameters.AddWithValue(name, value);
        return cmd;
    }

    private void Exec(string sql, params (string Name, object Value)[] args)
    {
        using var cmd = Command(sql, args);
        cmd.ExecuteNonQuery();
    }

    private object? Scalar(string sql, params (string Name, object Value)[] args)
    {
        using var cmd = Command(sql, args);
        return cmd.ExecuteScalar();
    }

    private static bool IsHex(string s) => s.AsSpan().IndexOfAnyExcept("0123456789abcdef") < 0;

    public void Dispose()
    {
        _insert?.Dispose();
        _sha256.Dispose();
        _db.Dispose();
    }
}
