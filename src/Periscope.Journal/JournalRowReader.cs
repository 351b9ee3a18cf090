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
    private const int ColumnInteger = 1, ColumnBlob = 4, TypesColumn = 6;
    private readonly JournalStore _store;
    private readonly sqlite3 _db;
    private readonly sqlite3_stmt _statement;
    private readonly int _maxPayload;
    private bool _done;

    internal JournalRowReader(JournalStore store, sqlite3 db, long fromSequence, long max, int maxPayload)
    {
        _store = store;
        _db = db;
        _maxPayload = maxPayload;
        // SQLite checks the column types itself (one value read per row instead of one call per column): each call
        // through the provider costs about as much as hashing a record.
        int rc = raw.sqlite3_prepare_v2(db, "SELECT seq, time, kind, payload, prev, hash, " +
            "typeof(seq) = 'integer' AND typeof(time) = 'integer' AND typeof(kind) = 'integer' AND typeof(payload) = 'blob' AND typeof(prev) = 'blob' AND typeof(hash) = 'blob' " +
            "FROM records WHERE seq >= ?1 ORDER BY seq LIMIT ?2", out _statement);
        if (rc != raw.SQLITE_OK) throw _store.Corrupt($"SQLite: {raw.sqlite3_errmsg(db).utf8_to_string()}");
        raw.sqlite3_bind_int64(_statement, 1, fromSequence);
        raw.sqlite3_bind_int64(_statement, 2, max);
    }

    /// <summary>The next record, or false at the end. The row's spans are valid until the next call.</summary>
    public bool Next(out JournalRow row)
    {
        // Stepping a statement that is done starts it again from the first row (SQLite's auto-reset): stay at the end.
        if (_done) { row = default; return false; }
        int rc = raw.sqlite3_step(_statement);
        if (rc == raw.SQLITE_DONE) { _done = true; row = default; return false; }
        if (rc != raw.SQLITE_ROW) throw _store.StepFailed(raw.sqlite3_errmsg(_db).utf8_to_string());
        if (raw.sqlite3_column_int(_statement, TypesColumn) != 1) throw WrongTypes();
        long seq = raw.sqlite3_column_int64(_statement, 0);
        long time = raw.sqlite3_column_int64(_statement, 1);
        long kind = raw.sqlite3_column_int64(_statement, 2);
        if (kind is < 0 or > uint.MaxValue) throw _store.Corrupt($"kind {kind} out of range (table records, seq {seq})");
        var payload = Blob(3, seq, "payload", _maxPayload);
        var prev = Blob(4, seq, "prev", JournalEncoding.HashBytes);
        var hash = Blob(5, seq, "hash", JournalEncoding.HashBytes);
        if (prev.Length != JournalEncoding.HashBytes || hash.Length != JournalEncoding.HashBytes)
            throw _store.Corrupt($"prev/hash of {prev.Length}/{hash.Length} bytes, expected {JournalEncoding.HashBytes} (table records, seq {seq})");
        row = new JournalRow { Sequence = seq, TimeMicros = time, Kind = (JournalRecordKind)kind, Payload = payload, Previous = prev, Hash = hash };
        return true;
    }

    /// <summary>Names the first column of the current row whose type is wrong.</summary>
    private JournalFormatException WrongTypes()
    {
        if (raw.sqlite3_column_type(_statement, 0) != ColumnInteger) return _store.Corrupt("a record's seq is not an integer (table records)");
        long seq = raw.sqlite3_column_int64(_statement, 0);
        string[] names = ["seq", "time", "kind", "payload", "prev", "hash"];
        for (int c = 1; c < names.Length; c++)
        {
            int expected = c < 3 ? ColumnInteger : ColumnBlob;
            if (raw.sqlite3_column_type(_statement, c) != expected)
                return _store.Corrupt($"{names[c]} is not {(c < 3 ? "an integer" : "a blob")} (table records, seq {seq})");
        }
        return _store.Corrupt($"a column of record {seq} has the wrong type (table records)");
    }

    private ReadOnlySpan<byte> Blob(int column, long seq, string name, int max)
    {
        // The span is SQLite's own buffer: nothing is allocated or copied before its length is checked.
        var blob = raw.sqlite3_column_blob(_statement, column);
        if (blob.Length > max) throw _store.Corrupt($"{name} of {blob.Length} bytes, more than {max} (table records, seq {seq})");
        return blob;
    }

    public void Dispose() => _statement.Dispose();
}
