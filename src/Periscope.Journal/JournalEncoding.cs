using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Periscope.Journal;

/// <summary>
/// The canonical byte encodings that the chain and the signatures cover. A record's hash is
/// SHA-256("periscope-journal-record-v1" || seq:u64le || time:i64le || kind:u32le || length:u32le || payload || previous[32]),
/// so changing any field, or moving a record to another place in the chain, changes its hash and breaks the link the
/// next record holds. Record 1 links to a genesis hash derived from the journal's random id, so records cannot be
/// carried from one journal to another either.
/// </summary>
public static class JournalEncoding
{
    public const int HashBytes = 32;
    private static ReadOnlySpan<byte> RecordDomain => "periscope-journal-record-v1"u8;
    private static ReadOnlySpan<byte> GenesisDomain => "periscope-journal-genesis-v1"u8;
    private static ReadOnlySpan<byte> HeadDomain => "periscope-journal-head-v1"u8;
    private const int FixedRecordBytes = 8 + 8 + 4 + 4 + HashBytes;

    public static byte[] Genesis(ReadOnlySpan<byte> journalId)
    {
        Span<byte> buffer = stackalloc byte[64];
        GenesisDomain.CopyTo(buffer);
        journalId.CopyTo(buffer[GenesisDomain.Length..]);
        return SHA256.HashData(buffer[..(GenesisDomain.Length + journalId.Length)]);
    }

    /// <summary>The record's hash into <paramref name="hash"/>, through a reused <see cref="IncrementalHash"/> (a
    /// one-shot SHA-256 creates and frees a digest context per call, which costs more than hashing a record's few
    /// hundred bytes); <paramref name="scratch"/> is reused between calls (grown when a payload needs it) so that hashing
    /// a million records allocates nothing per record.</summary>
    public static void RecordHash(IncrementalHash sha256, long sequence, long timeMicros, JournalRecordKind kind,
        ReadOnlySpan<byte> payload, ReadOnlySpan<byte> previous, ref byte[] scratch, Span<byte> hash)
    {
        int length = RecordDomain.Length + FixedRecordBytes + payload.Length;
        if (scratch.Length < length) scratch = new byte[Math.Max(length, scratch.Length * 2)];
        var b = scratch.AsSpan(0, length);
        RecordDomain.CopyTo(b);
        int o = RecordDomain.Length;
        BinaryPrimitives.WriteInt64LittleEndian(b[o..], sequence);
        BinaryPrimitives.WriteInt64LittleEndian(b[(o + 8)..], timeMicros);
        BinaryPrimitives.WriteUInt32LittleEndian(b[(o + 16)..], (uint)kind);
        BinaryPrimitives.WriteUInt32LittleEndian(b[(o + 20)..], (uint)payload.Length);
        payload.CopyTo(b[(o + 24)..]);
        previous.CopyTo(b[(o + 24 + payload.Length)..]);
        sha256.AppendData(b);
        sha256.GetHashAndReset(hash);
    }

    public static byte[] RecordHash(long sequence, long timeMicros, JournalRecordKind kind, ReadOnlySpan<byte> payload, ReadOnlySpan<byte> previous)
    {
        using var sha256 = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);
        var scratch = Array.Empty<byte>();
        var hash = new byte[HashBytes];
        RecordHash(sha256, sequence, timeMicros, kind, payload, previous, ref scratch, hash);
        return hash;
    }

    /// <summary>What a head signature covers: the journal, the record's place, the time of signing and the chain hash.</summary>
    public static byte[] HeadMessage(ReadOnlySpan<byte> journalId, long sequence, long timeMicros, ReadOnlySpan<byte> hash)
    {
        var b = new byte[HeadDomain.Length + journalId.Length + 16 + hash.Length];
        HeadDomain.CopyTo(b);
        int o = HeadDomain.Length;
        journalId.CopyTo(b.AsSpan(o));
        o += journalId.Length;
        BinaryPrimitives.WriteInt64LittleEndian(b.AsSpan(o), sequence);
        BinaryPrimitives.WriteInt64LittleEndian(b.AsSpan(o + 8), timeMicros);
        hash.CopyTo(b.AsSpan(o + 16));
        return b;
    }
}
