using System.Security.Cryptography;
using System.Diagnostics;

namespace Periscope.Journal;

/// <summary>How a journal was found damaged. The first one found is reported, with the first bad record.</summary>
public enum JournalDamage
{
    None,
    /// <summary>A record's content no longer matches its own hash.</summary>
    Edited,
    /// <summary>A record sits at another place than the one it was written at (its hash matches a nearby sequence number).</summary>
    Reordered,
    /// <summary>Sequence numbers jump: records were removed.</summary>
    Deleted,
    /// <summary>A record does not follow its predecessor, but its successor links over it to the record before.</summary>
    Inserted,
    /// <summary>A record does not link to its predecessor (removed, inserted or moved records with renumbering).</summary>
    ChainBroken,
    /// <summary>The journal ends before a record that a signed head covers.</summary>
    Truncated,
    /// <summary>A consistent chain that differs from what a head signed: the file was rewritten with a recomputed chain.</summary>
    Rewritten,
    /// <summary>A head whose signature does not verify with the given public key (forged, or another key).</summary>
    BadSignature,
}

/// <param name="FirstBadSequence">The first record that cannot be trusted (0 when intact).</param>
/// <param name="ProvenThrough">With a public key: the last record covered by a valid signed head (0: none).</param>
public sealed record JournalVerification(
    long Records, long LastSequence, JournalDamage Damage, long FirstBadSequence, string Problem,
    int Heads, int HeadsVerified, bool SignaturesChecked, long ProvenThrough, bool Complete, double Seconds)
{
    public bool Intact => Damage == JournalDamage.None;
    /// <summary>Records after the last valid signed head: intact as a chain, but not proven against a rewrite.</summary>
    public long Unproven => SignaturesChecked ? LastSequence - ProvenThrough : LastSequence;
}

/// <summary>
/// Walks the chain once, in sequence order, recomputing every record's hash, and checks the signed heads against it.
/// Bounded: at most MaxJournalRecordsRead records and MaxJournalHeads heads are read.
/// </summary>
public static class JournalVerifier
{
    /// <summary>Sequence numbers tried when a record's hash does not match, to tell a moved record from an edited one.</summary>
    private const int ReorderSearchDistance = 16;

    public static JournalVerification Verify(JournalStore journal, JournalPublicKey? publicKey = null)
    {
        var clock = Stopwatch.StartNew();
        var heads = journal.Heads();
        var headAt = new Dictionary<long, SignedHead>(heads.Count);
        foreach (var h in heads) headAt[h.Sequence] = h;

        long count = 0, expected = 1, proven = 0, lastSeq = 0, lastGoodHead = 0;
        int headsVerified = 0;
        // The two last hashes, in reused buffers: a row's spans are valid only until its batch is read again.
        var previous = journal.Genesis.ToArray();
        var beforePrevious = new byte[JournalEncoding.HashBytes];
        bool haveBeforePrevious = false;
        var scratch = new byte[512];
        var hash = new byte[JournalEncoding.HashBytes];
        var damage = JournalDamage.None;
        long firstBad = 0;
        string problem = "";
        bool complete = true;

        void Fail(JournalDamage kind, long seq, string what)
        {
            if (damage != JournalDamage.None) return;
            damage = kind;
            firstBad = seq;
            problem = what;
        }

        (long At, long WrittenAs) moved = default; // a record found at another place, judged with the record after it
        // Rare paths (a moved or inserted record) hash on this thread; the batches hash on their own.
        using var sha256 = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

        // One record, whose hash as its content says (computed) was worked out ahead; false: stop here.
        bool Check(JournalRow r, ReadOnlySpan<byte> computed)
        {
            if (moved.At != 0)
            {
                JournalEncoding.RecordHash(sha256, moved.At, r.TimeMicros, r.Kind, r.Payload, r.Previous, ref scratch, hash);
                bool swapped = hash.SequenceEqual(r.Hash);
                Fail(swapped ? JournalDamage.Reordered : JournalDamage.Deleted, moved.At, swapped
                    ? $"record {moved.At} is the record written as {moved.WrittenAs}, and the record written as {moved.At} follows it (reordered)"
                    : $"records {moved.At}..{moved.WrittenAs - 1} were deleted and the rest renumbered: record {moved.At} is the record written as {moved.WrittenAs}");
                moved = default;
                return false;
            }
            count++;
            if (count > journal.Limits.MaxJournalRecordsRead) { complete = false; return false; }
            lastSeq = r.Sequence;
            if (r.Sequence != expected)
            {
                Fail(r.Sequence > expected ? JournalDamage.Deleted : JournalDamage.ChainBroken, expected,
                    r.Sequence > expected
                        ? $"record {expected} is missing: the journal jumps from {expected - 1} to {r.Sequence} (deleted)"
                        : $"record {r.Sequence} appears after {expected - 1}: sequence numbers out of order");
                return false;
            }
            if (!computed.SequenceEqual(r.Hash))
            {
                long writtenAs = FindOriginalSequence(sha256, r.Sequence, r.TimeMicros, r.Kind, r.Payload, r.Previous, r.Hash, ref scratch);
                if (writtenAs > r.Sequence) { moved = (r.Sequence, writtenAs); return true; }
                Fail(writtenAs != 0 ? JournalDamage.Inserted : JournalDamage.Edited, writtenAs != 0 ? writtenAs : r.Sequence, writtenAs != 0
                    ? $"records {writtenAs}..{r.Sequence - 1} were inserted: record {r.Sequence} is the record written as {writtenAs}"
                    : $"record {r.Sequence} does not match its hash (edited)");
                return false;
            }
            if (!r.Previous.SequenceEqual(previous))
            {
                bool skipsOne = r.Sequence > 2 && haveBeforePrevious && r.Previous.SequenceEqual(beforePrevious);
                Fail(skipsOne ? JournalDamage.Inserted : JournalDamage.ChainBroken, skipsOne ? r.Sequence - 1 : r.Sequence, skipsOne
                    ? $"record {r.Sequence - 1} was inserted: record {r.Sequence} links to record {r.Sequence - 2}"
                    : $"record {r.Sequence} does not link to record {r.Sequence - 1} (records deleted, inserted or moved before it)");
                return false;
            }
            if (headAt.TryGetValue(r.Sequence, out var head))
            {
                if (!r.Hash.SequenceEqual(head.Hash))
                {
                    Fail(JournalDamage.Rewritten, lastGoodHead + 1,
                        $"the signed head at record {r.Sequence} does not match the chain: records {lastGoodHead + 1}..{r.Sequence} were rewritten (chain recomputed)");
                    return false;
                }
                if (publicKey is not null)
                {
                    if (!head.KeyId.AsSpan().SequenceEqual(publicKey.KeyId) ||
                        !publicKey.Verify(JournalEncoding.HeadMessage(journal.JournalId, head.Sequence, head.TimeMicros, head.Hash), head.Signature))
                    {
                        Fail(JournalDamage.BadSignature, lastGoodHead + 1,
                            $"the head at record {r.Sequence} is not signed by {publicKey.Path} (forged head or another key): records {lastGoodHead + 1}..{r.Sequence} are not proven");
                        return false;
                    }
                    headsVerified++;
                    proven = r.Sequence;
                }
                lastGoodHead = r.Sequence;
            }
            (beforePrevious, previous) = (previous, beforePrevious);
            haveBeforePrevious = true;
            r.Hash.CopyTo(previous);
            expected++;
            return true;
        }

        // SQLite is read on this thread while the batch read before is hashed on another.
        using var rows = journal.OpenRowReader();
        using JournalRecordBatch first = new(), second = new();
        var (reading, checking) = (first, second);
        checking.Fill(rows);
        var hashing = checking.HashAsync();
        try
        {
            while (checking.Count > 0)
            {
                reading.Fill(rows);
                hashing.Wait();
                hashing = reading.Count > 0 ? reading.HashAsync() : Task.CompletedTask;
                bool go = true;
                for (int i = 0; i < checking.Count && go; i++) go = Check(checking.Row(i), checking.Computed(i));
                if (!go) break;
                (reading, checking) = (checking, reading);
            }
        }
        finally { hashing.Wait(); }
        if (moved.At != 0)
            Fail(JournalDamage.Deleted, moved.At, $"records {moved.At}..{moved.WrittenAs - 1} were deleted: the last record is the record written as {moved.WrittenAs}");
        if (damage == JournalDamage.None && complete && heads.Count > 0 && heads[^1].Sequence > lastSeq)
            Fail(JournalDamage.Truncated, lastSeq + 1,
                $"the journal ends at record {lastSeq} but a signed head covers record {heads[^1].Sequence} (truncated)");
        return new JournalVerification(count, lastSeq, damage, firstBad, problem, heads.Count, headsVerified,
            publicKey is not null, proven, complete, clock.Elapsed.TotalSeconds);
    }

    /// <summary>The sequence number this record's hash was computed with, if it is a nearby one (0: none).</summary>
    private static long FindOriginalSequence(IncrementalHash sha256, long sequence, long timeMicros, JournalRecordKind kind, ReadOnlySpan<byte> payload,
        ReadOnlySpan<byte> previous, ReadOnlySpan<byte> recorded, ref byte[] scratch)
    {
        Span<byte> hash = stackalloc byte[JournalEncoding.HashBytes];
        for (long d = 1; d <= ReorderSearchDistance; d++)
        {
            foreach (long candidate in (ReadOnlySpan<long>)[sequence - d, sequence + d])
            {
                if (candidate < 1) continue;
                JournalEncoding.RecordHash(sha256, candidate, timeMicros, kind, payload, previous, ref scratch, hash);
                if (hash.SequenceEqual(recorded)) return candidate;
            }
        }
        return 0;
    }
}
