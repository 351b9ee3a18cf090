using System.Text;
using Microsoft.Data.Sqlite;
using Periscope.Journal;

namespace Periscope.UnitTests.Journal;

/// <summary>
/// Every tamper kind of the issue on a real SQLite journal file, done the way an attacker with write access to the file
/// would (SQL on the file itself), then `JournalVerifier` must name the damage and the first bad record.
/// </summary>
public sealed class JournalTamperTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("periscope-journal-").FullName;
    private string Db => Path.Combine(_dir, "journal.db");
    private string Key => Path.Combine(_dir, "key.pem");
    private string Pub => Path.Combine(_dir, "key.pub");

    public JournalTamperTests() => JournalSigningKey.Generate(Key, Pub);

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_dir, recursive: true);
    }

    /// <summary>100 records; heads signed after records 50 and 100 (as watch does periodically and at a clean stop).</summary>
    private void Write(int records = 100, params int[] signAfter)
    {
        if (signAfter.Length == 0) signAfter = [50, 100];
        using var key = JournalSigningKey.Load(Key, Periscope.Memory.IntrospectionLimits.Default);
        using var journal = JournalStore.Open(Db, JournalOpenMode.Append);
        for (int i = 1; i <= records; i++)
        {
            journal.Append(JournalRecordKind.Note, Encoding.UTF8.GetBytes($"{{\"note\":\"record {i}\"}}"));
            if (signAfter.Contains(i)) Assert.NotNull(journal.SignHead(key));
        }
    }

    private JournalVerification Verify(bool withKey = true)
    {
        using var journal = JournalStore.Open(Db, JournalOpenMode.ReadOnly);
        using var pub = withKey ? JournalPublicKey.Load(Pub, Periscope.Memory.IntrospectionLimits.Default) : null;
        return JournalVerifier.Verify(journal, pub);
    }

    /// <summary>SQL straight on the file, as someone with write access to it would.</summary>
    /// <summary>Inserts a Note record at <paramref name="seq"/> that links to record <paramref name="linkedTo"/>'s hash
    /// and hashes correctly itself: a forgery only the chain's later links (or a signed head) can expose.</summary>
    private void InsertForged(long seq, long linkedTo, string note)
    {
        byte[] prev;
        using (var journal = JournalStore.Open(Db, JournalOpenMode.ReadOnly))
            prev = journal.Records(linkedTo, 1).Single().Hash;
        var payload = Encoding.UTF8.GetBytes($"{{\"note\":\"{note}\"}}");
        long time = JournalStore.ToMicros(DateTimeOffset.UtcNow);
        Tamper("INSERT INTO records(seq, time, kind, payload, prev, hash) VALUES($s, $t, 1, $p, $v, $h)",
            ("$s", seq), ("$t", time), ("$p", payload), ("$v", prev), ("$h", JournalEncoding.RecordHash(seq, time, JournalRecordKind.Note, payload, prev)));
    }

    private void Tamper(string sql, params (string, object)[] args)
    {
        using var db = new SqliteConnection($"Data Source={Db};Pooling=False");
        db.Open();
        using var cmd = db.CreateCommand();
        cmd.CommandText = sql;
        foreach (var (n, v) in args) cmd.Parameters.AddWithValue(n, v);
        cmd.ExecuteNonQuery();
    }

    /// <summary>Recomputes every hash and link from record 1 on, as an attacker who knows the format would.</summary>
    private void RecomputeChain()
    {
        using var db = new SqliteConnection($"Data Source={Db};Pooling=False");
        db.Open();
        byte[] id;
        using (var c = db.CreateCommand()) { c.CommandText = "SELECT value FROM meta WHERE key='journal_id'"; id = Convert.FromHexString((string)c.ExecuteScalar()!); }
        var rows = new List<(long Seq, long Time, long Kind, byte[] Payload)>();
        using (var c = db.CreateCommand())
        {
            c.CommandText = "SELECT seq, time, kind, payload FROM records ORDER BY seq";
            using var rd = c.ExecuteReader();
            while (rd.Read()) rows.Add((rd.GetInt64(0), rd.GetInt64(1), rd.GetInt64(2), (byte[])rd.GetValue(3)));
        }
        var prev = JournalEncoding.Genesis(id);
        using var tx = db.BeginTransaction();
        foreach (var r in rows)
        {
            var hash = JournalEncoding.RecordHash(r.Seq, r.Time, (JournalRecordKind)r.Kind, r.Payload, prev);
            using var u = db.CreateCommand();
            u.CommandText = "UPDATE records SET prev=$p, hash=$h WHERE seq=$s";
            u.Parameters.AddWithValue("$p", prev);
            u.Parameters.AddWithValue("$h", hash);
            u.Parameters.AddWithValue("$s", r.Seq);
            u.ExecuteNonQuery();
            prev = hash;
        }
        tx.Commit();
    }

    [Fact]
    public void UntouchedJournalIsIntactAndProvenToTheLastSignedHead()
    {
        Write();
        var v = Verify();
        Assert.True(v.Damage == JournalDamage.None, v.Problem);
        Assert.Equal(100, v.Records);
        Assert.Equal(2, v.HeadsVerified);
        Assert.Equal(100, v.ProvenThrough);
        Assert.Equal(0, v.Unproven);
    }

    [Fact]
    public void EditedPayloadIsNamed()
    {
        Write();
        Tamper("UPDATE records SET payload=$p WHERE seq=37", ("$p", Encoding.UTF8.GetBytes("{\"note\":\"all quiet\"}")));
        var v = Verify();
        Assert.Equal(JournalDamage.Edited, v.Damage);
        Assert.Equal(37, v.FirstBadSequence);
    }

    [Fact]
    public void EditedTimeIsNamed()
    {
        Write();
        Tamper("UPDATE records SET time=time+1 WHERE seq=12");
        var v = Verify();
        Assert.Equal(JournalDamage.Edited, v.Damage);
        Assert.Equal(12, v.FirstBadSequence);
    }

    [Fact]
    public void DeletedRecordIsNamed()
    {
        Write();
        Tamper("DELETE FROM records WHERE seq=64");
        var v = Verify();
        Assert.Equal(JournalDamage.Deleted, v.Damage);
        Assert.Equal(64, v.FirstBadSequence);
    }

    [Fact]
    public void DeletedRecordWithRenumberingBreaksTheChainThere()
    {
        Write();
        Tamper("DELETE FROM records WHERE seq=64");
        Tamper("UPDATE records SET seq=-(seq-1) WHERE seq>64");
        Tamper("UPDATE records SET seq=-seq WHERE seq<0");
        var v = Verify();
        // Record 65 now sits at 64: its hash was computed with seq 65, which the search for moved records recognises.
        Assert.Equal(JournalDamage.Deleted, v.Damage);
        Assert.Equal(64, v.FirstBadSequence);
    }

    [Fact]
    public void InsertedRecordIsNamed()
    {
        Write();
        // Make room at 21 and insert a record that links correctly to record 20 and hashes correctly itself.
        Tamper("UPDATE records SET seq=-(seq+1) WHERE seq>20");
        Tamper("UPDATE records SET seq=-seq WHERE seq<0");
        InsertForged(21, linkedTo: 20, "nothing happened");
        var v = Verify();
        Assert.Equal(JournalDamage.Inserted, v.Damage);
        Assert.Equal(21, v.FirstBadSequence);
    }

    [Fact]
    public void InsertedRecordAfterTheLastHeadIsNamedAsInserted()
    {
        Write(signAfter: [50]);
        // Records 60.. are moved up one, keeping their own hashes (computed with their old numbers); 60 is forged.
        Tamper("DELETE FROM records WHERE seq>60");
        Tamper("UPDATE records SET seq=61 WHERE seq=60");
        InsertForged(60, linkedTo: 59, "forged");
        var v = Verify();
        Assert.Equal(JournalDamage.Inserted, v.Damage);
        Assert.Equal(60, v.FirstBadSequence);
    }

    [Fact]
    public void SwappedRecordsAreNamedAsReordered()
    {
        Write();
        // Swap the contents (payload, time, links, hash) of 40 and 41, keeping the sequence numbers in order.
        Tamper("UPDATE records SET seq=-1 WHERE seq=40");
        Tamper("UPDATE records SET seq=40 WHERE seq=41");
        Tamper("UPDATE records SET seq=41 WHERE seq=-1");
        var v = Verify();
        Assert.Equal(JournalDamage.Reordered, v.Damage);
        Assert.Equal(40, v.FirstBadSequence);
        Assert.Contains("written as 41", v.Problem);
    }

    [Fact]
    public void TruncationBeforeASignedHeadIsNamed()
    {
        Write();
        Tamper("DELETE FROM records WHERE seq>80");
        var v = Verify();
        Assert.Equal(JournalDamage.Truncated, v.Damage);
        Assert.Equal(81, v.FirstBadSequence);
    }

    [Fact]
    public void WholesaleRewriteWithRecomputedChainIsCaughtByTheSignedHead()
    {
        Write();
        Tamper("UPDATE records SET payload=$p WHERE seq=70", ("$p", Encoding.UTF8.GetBytes("{\"note\":\"all quiet\"}")));
        RecomputeChain();
        var v = Verify();
        Assert.Equal(JournalDamage.Rewritten, v.Damage);
        Assert.Equal(51, v.FirstBadSequence); // after the last head that still matches
    }

    [Fact]
    public void RewriteWithForgedHeadsFailsTheSignatureCheck()
    {
        Write();
        Tamper("UPDATE records SET payload=$p WHERE seq=10", ("$p", Encoding.UTF8.GetBytes("{\"note\":\"all quiet\"}")));
        RecomputeChain();
        // The attacker re-signs the heads with a key of their own.
        Tamper("DELETE FROM heads");
        string otherKey = Path.Combine(_dir, "other.pem");
        JournalSigningKey.Generate(otherKey, Path.Combine(_dir, "other.pub"));
        using (var key = JournalSigningKey.Load(otherKey, Periscope.Memory.IntrospectionLimits.Default))
        using (var journal = JournalStore.Open(Db, JournalOpenMode.Append))
            Assert.NotNull(journal.SignHead(key));
        Assert.Equal(JournalDamage.None, Verify(withKey: false).Damage); // without the public key a consistent rewrite is undetectable
        var v = Verify();
        Assert.Equal(JournalDamage.BadSignature, v.Damage);
        Assert.Equal(1, v.FirstBadSequence);
    }

    [Fact]
    public void RecordsAfterTheLastHeadAreIntactButUnproven()
    {
        Write(signAfter: [50]);
        var v = Verify();
        Assert.Equal(JournalDamage.None, v.Damage);
        Assert.Equal(50, v.ProvenThrough);
        Assert.Equal(50, v.Unproven);
    }

    [Fact]
    public void ReopenedJournalContinuesTheChain()
    {
        Write(records: 10, signAfter: [10]);
        using (var journal = JournalStore.Open(Db, JournalOpenMode.Append))
        {
            Assert.Equal(10, journal.LastSequence);
            var r = journal.Append(JournalRecordKind.Note, "{}"u8);
            Assert.Equal(11, r.Sequence);
        }
        var v = Verify();
        Assert.Equal(JournalDamage.None, v.Damage);
        Assert.Equal(11, v.Records);
    }

    [Fact]
    public void AppendingToAnEditedTailIsRefused()
    {
        Write(records: 10);
        Tamper("UPDATE records SET payload=x'00' WHERE seq=10");
        var e = Assert.Throws<JournalFormatException>(() => JournalStore.Open(Db, JournalOpenMode.Append));
        Assert.Contains("last record (10)", e.Message);
        Assert.Contains(Db, e.Message);
    }

    [Fact]
    public void ForeignSqliteFileIsRejectedWithItsName()
    {
        using (var db = new SqliteConnection($"Data Source={Db};Pooling=False"))
        {
            db.Open();
            using var c = db.CreateCommand();
            c.CommandText = "CREATE TABLE records(x); CREATE TABLE meta(key, value); CREATE TABLE heads(y); CREATE TRIGGER t AFTER INSERT ON records BEGIN DELETE FROM meta; END;";
            c.ExecuteNonQuery();
        }
        var e = Assert.Throws<JournalFormatException>(() => JournalStore.Open(Db, JournalOpenMode.ReadOnly));
        Assert.Contains(Db, e.Message);
        Assert.Contains("not created by Periscope", e.Message);
    }

    [Fact]
    public void NonSqliteFileIsRejectedAtOffsetZero()
    {
        File.WriteAllBytes(Db, Encoding.ASCII.GetBytes(new string('x', 4096)));
        var e = Assert.Throws<JournalFormatException>(() => JournalStore.Open(Db, JournalOpenMode.ReadOnly));
        Assert.Contains("at offset 0", e.Message);
    }

    [Fact]
    public void OversizedPayloadColumnIsRejectedNotAllocated()
    {
        Write(records: 3, signAfter: [3]);
        Tamper("UPDATE records SET payload=zeroblob(3000000) WHERE seq=2");
        var e = Assert.Throws<JournalFormatException>(() => Verify());
        Assert.Contains(Db, e.Message);
    }

    [Theory]
    [InlineData("time", "'yesterday'", "time is not an integer")]
    [InlineData("kind", "1.5", "kind is not an integer")]
    [InlineData("payload", "'text, not a blob'", "payload is not a blob")]
    [InlineData("hash", "'not a blob'", "hash is not a blob")]
    public void WronglyTypedColumnIsNamedWithItsRecord(string column, string value, string expected)
    {
        Write(records: 5, signAfter: [5]);
        Tamper($"UPDATE records SET {column}={value} WHERE seq=3");
        var e = Assert.Throws<JournalFormatException>(() => Verify());
        Assert.Contains(Db, e.Message);
        Assert.Contains($"{expected} (table records, seq 3)", e.Message);
    }

    /// <summary>Verification reads and hashes in batches of 4,096 records: damage in a later batch, and a swap across
    /// two batches, are named exactly as in a small journal.</summary>
    [Theory]
    [InlineData("UPDATE records SET payload=x'00' WHERE seq=9000", JournalDamage.Edited, 9000)]
    [InlineData("UPDATE records SET seq=-1 WHERE seq=4096; UPDATE records SET seq=4096 WHERE seq=4097; UPDATE records SET seq=4097 WHERE seq=-1", JournalDamage.Reordered, 4096)]
    [InlineData("DELETE FROM records WHERE seq=8193", JournalDamage.Deleted, 8193)]
    [InlineData("", JournalDamage.None, 0)]
    public void DamageBeyondTheFirstBatchIsNamed(string sql, JournalDamage damage, long firstBad)
    {
        AppendSignedTamperVerify(Enumerable.Range(1, 10_000).Select(i => Encoding.UTF8.GetBytes($"{{\"note\":\"record {i}\"}}")), sql, damage, firstBad);
    }

    /// <summary>Large payloads end a batch by its bytes, not its record count (a batch never holds more than about a
    /// MiB plus one record): twelve 300 KB records make several batches, and damage in a later one is named exactly.</summary>
    [Theory]
    [InlineData("UPDATE records SET payload=zeroblob(300001) WHERE seq=10", JournalDamage.Edited, 10)]
    [InlineData("", JournalDamage.None, 0)]
    public void LargeRecordsAreVerifiedAcrossBatchesEndedByTheirSize(string sql, JournalDamage damage, long firstBad)
    {
        AppendSignedTamperVerify(Enumerable.Range(1, 12).Select(i => Enumerable.Repeat((byte)('a' + i), 300_000).ToArray()), sql, damage, firstBad);
    }

    /// <summary>Appends the payloads as Note records in one batch and signs the head, applies <paramref name="sql"/>
    /// (none when empty), and checks that verification names exactly that damage at that record; an untouched journal
    /// must be proven through its last record.</summary>
    private void AppendSignedTamperVerify(IEnumerable<byte[]> payloads, string sql, JournalDamage damage, long firstBad)
    {
        var items = payloads.Select(p => (JournalRecordKind.Note, p)).ToList();
        using (var key = JournalSigningKey.Load(Key, Periscope.Memory.IntrospectionLimits.Default))
        using (var journal = JournalStore.Open(Db, JournalOpenMode.Append))
        {
            journal.AppendBatch(items);
            Assert.NotNull(journal.SignHead(key));
        }
        if (sql.Length > 0) Tamper(sql);
        var v = Verify();
        Assert.True(v.Damage == damage, v.Problem);
        Assert.Equal(firstBad, v.FirstBadSequence);
        if (damage == JournalDamage.None) Assert.Equal(items.Count, v.ProvenThrough);
    }
}
