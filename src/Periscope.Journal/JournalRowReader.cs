using SQLitePCL;

namespace Periscope.Journal;

/// <summary>
/// One stored record as spans into SQLite's row buffer, valid until the reader moves on: what verification reads a
/// million times without allocating. Values are type- and length-checked exactly as <see cref="JournalStore.Records"/>
/// checks them.
/// </summary>
public readonly ref struct JournalRow
{
    public long Sequence { get; init; }
    public long TimeMicros { get; init; }
    public JournalRecordKind Kind { get; init; }
    public ReadOnlySpan<byte> Payload { get; init; }
    public ReadOnlySpan<byte> Previous { get; init; }
    public ReadOnlySpan<byte> Hash { get; init; }

    public JournalRecord ToRecord() => new(Sequence, TimeMicros, Kind, Payload.ToArray(), Previous.ToArray(), Hash.ToArray());
}

/// <summary>
/// Records in sequence order through SQLite's own statement API (prepare, step, column spans), without
/// Microsoft.Data.Sqlite's per-row reader objects and copies. The connection's hardening (limits, progress budget)
/// still applies: it is the same connection.
/// </summary>
public sealed class JournalRowReader : IDisposable
{
    private const int ColumnInteger = 1, ColumnBlob = 4;
    private readonly JournalStore _store;
    private readonly sqlite3 _db;
    private readonly sqlite3_stmt _statement;
    private readonly int _maxPayload;

    internal JournalRowReader(JournalStore store, sqlite3 db, long fromSequence, long max, int maxPayload)
    {
        _store = store;
        _db = db;
        _maxPayload = maxPayload;
        int rc = raw.sqlite3_prepare_v2(db, "SELECT seq, time, kind, payload, prev, hash FROM records WHERE seq >= ?1 ORDER BY seq LIMIT ?2", out _statement);
        if (rc != raw.SQLITE_OK) throw _store.Corrupt($"SQLite: {raw.sqlite3_errmsg(db).utf8_to_string()}");
        raw.sqlite3_bind_int64(_statement, 1, fromSequence);
        raw.sqlite3_bind_int64(_statement, 2, max);
    }

    /// <summary>The next record, or false at the end. The row's spans are valid until the next call.</summary>
    public bool Next(out JournalRow row)
    {
        int rc = raw.sqlite3_step(_statement);
        if (rc == raw.SQLITE_DONE) { row = default; return false; }
        if (rc != raw.SQLITE_ROW) throw _store.StepFailed(raw.sqlite3_errmsg(_db).utf8_to_string());
        if (raw.sqlite3_column_type(_statement, 0) != ColumnInteger) throw _store.Corrupt("a record's seq is not an integer (table records)");
        long seq = raw.sqlite3_column_int64(_statement, 0);
        long time = Integer(1, seq, "time");
        long kind = Integer(2, seq, "kind");
        if (kind is < 0 or > uint.MaxValue) throw _store.Corrupt($"kind {kind} out of range (table records, seq {seq})");
        var payload = Blob(3, seq, "payload", _maxPayload);
        var prev = Blob(4, seq, "prev", JournalEncoding.HashBytes);
        var hash = Blob(5, seq, "hash", JournalEncoding.HashBytes);
        if (prev.Length != JournalEncoding.HashBytes || hash.Length != JournalEncoding.HashBytes)
            throw _store.Corrupt($"prev/hash of {prev.Length}/{hash.Length} bytes, expected {JournalEncoding.HashBytes} (table records, seq {seq})");
        row = new JournalRow { Sequence = seq, TimeMicros = time, Kind = (JournalRecordKind)kind, Payload = payload, Previous = prev, Hash = hash };
        return true;
    }

    private long Integer(int column, long seq, string name) => raw.sqlite3_column_type(_statement, column) == ColumnInteger
        ? raw.sqlite3_column_int64(_statement, column)
        : throw _store.Corrupt($"{name} is not an integer (table records, seq {seq})");

    private ReadOnlySpan<byte> Blob(int column, long seq, string name, int max)
    {
        if (raw.sqlite3_column_type(_statement, column) != ColumnBlob) throw _store.Corrupt($"{name} is not a blob (table records, seq {seq})");
        int length = raw.sqlite3_column_bytes(_statement, column);
        if (length > max) throw _store.Corrupt($"{name} of {length} bytes, more than {max} (table records, seq {seq})");
        return length == 0 ? [] : raw.sqlite3_column_blob(_statement, column);
    }

    public void Dispose() => _statement.Dispose();
}
