using System.Security.Cryptography;

namespace Periscope.Journal;

/// <summary>
/// Records copied out of SQLite's row buffer, so that a batch can be hashed on other threads while this one reads the
/// next: per record, reading through SQLite and hashing through OpenSSL each cost about a microsecond, and verification
/// would otherwise pay both in series. A batch holds at most <see cref="MaxRecords"/> records and about
/// <see cref="TargetBytes"/> of their bytes: it ends with the record that reaches that size, so its store never holds
/// more than that plus one record (whose payload the row reader has capped before it is copied), whatever the journal.
/// </summary>
internal sealed class JournalRecordBatch : IDisposable
{
    public const int MaxRecords = 4096;
    public const int TargetBytes = 1 << 20;

    private readonly record struct Entry(long Sequence, long TimeMicros, JournalRecordKind Kind, int PayloadAt, int PayloadLength, int PreviousAt, int HashAt);

    private readonly Entry[] _entries = new Entry[MaxRecords];
    private readonly byte[] _computed = new byte[MaxRecords * JournalEncoding.HashBytes];
    // Two hashers, each with its own scratch: through OpenSSL a record's hash costs more than reading it from SQLite,
    // so the two halves of a batch are hashed on two threads while the reader fills the next batch.
    private readonly IncrementalHash _firstHalf = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private readonly IncrementalHash _secondHalf = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
    private byte[] _firstScratch = new byte[512], _secondScratch = new byte[512];
    private byte[] _bytes = new byte[TargetBytes];
    private int _used;

    public int Count { get; private set; }

    /// <summary>Reads the next records, up to <see cref="MaxRecords"/> or <see cref="TargetBytes"/>; none only at the
    /// end of the table.</summary>
    public void Fill(JournalRowReader rows)
    {
        Count = 0;
        _used = 0;
        while (Count < MaxRecords && _used < TargetBytes && rows.Next(out var r))
        {
            int need = r.Payload.Length + 2 * JournalEncoding.HashBytes;
            // Only the record that crosses TargetBytes can need more room: grown once, then reused by later batches.
            if (_used + need > _bytes.Length) Array.Resize(ref _bytes, _used + need);
            int payloadAt = Append(r.Payload), previousAt = Append(r.Previous), hashAt = Append(r.Hash);
            _entries[Count++] = new Entry(r.Sequence, r.TimeMicros, r.Kind, payloadAt, r.Payload.Length, previousAt, hashAt);
        }
    }

    private int Append(ReadOnlySpan<byte> value)
    {
        int at = _used;
        value.CopyTo(_bytes.AsSpan(at));
        _used += value.Length;
        return at;
    }

    /// <summary>Starts working out each record's hash as its content says it should be (what <see cref="Computed"/>
    /// returns once the task has completed).</summary>
    public Task HashAsync()
    {
        int half = Count / 2;
        return Task.WhenAll(
            Task.Run(() => Hash(0, half, _firstHalf, ref _firstScratch)),
            Task.Run(() => Hash(half, Count, _secondHalf, ref _secondScratch)));
    }

    private void Hash(int from, int to, IncrementalHash sha256, ref byte[] scratch)
    {
        for (int i = from; i < to; i++)
        {
            var e = _entries[i];
            JournalEncoding.RecordHash(sha256, e.Sequence, e.TimeMicros, e.Kind, _bytes.AsSpan(e.PayloadAt, e.PayloadLength),
                _bytes.AsSpan(e.PreviousAt, JournalEncoding.HashBytes), ref scratch, _computed.AsSpan(i * JournalEncoding.HashBytes, JournalEncoding.HashBytes));
        }
    }

    public JournalRow Row(int i)
    {
        var e = _entries[i];
        return new JournalRow
        {
            Sequence = e.Sequence, TimeMicros = e.TimeMicros, Kind = e.Kind, Payload = _bytes.AsSpan(e.PayloadAt, e.PayloadLength),
            Previous = _bytes.AsSpan(e.PreviousAt, JournalEncoding.HashBytes), Hash = _bytes.AsSpan(e.HashAt, JournalEncoding.HashBytes),
        };
    }

    public ReadOnlySpan<byte> Computed(int i) => _computed.AsSpan(i * JournalEncoding.HashBytes, JournalEncoding.HashBytes);

    public void Dispose()
    {
        _firstHalf.Dispose();
        _secondHalf.Dispose();
    }
}
