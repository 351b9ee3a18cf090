using System.Diagnostics;
using Microsoft.Data.Sqlite;
using Periscope.Journal;

namespace Periscope.UnitTests.Journal;

/// <summary>
/// Durability as the README states it: a journal writer killed with SIGKILL in the middle of a burst loses no record it
/// reported as committed, the file verifies, and the chain continues when the journal is opened again.
/// </summary>
public sealed class JournalCrashTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("periscope-journal-crash-").FullName;

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        Directory.Delete(_dir, recursive: true);
    }

    [Fact]
    public void SigkillMidBurstLosesNoCommittedRecordAndTheChainContinues()
    {
        string db = Path.Combine(_dir, "journal.db");
        string cli = Path.Combine(AppContext.BaseDirectory, "periscope.dll");
        Assert.True(File.Exists(cli), $"{cli} missing");
        var psi = new ProcessStartInfo("dotnet", [cli, "journal", "append", "--db", db, "--note", "burst", "--count", "1000000"])
        {
            RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false,
        };
        long lastReported = 0;
        using (var child = Process.Start(psi)!)
        {
            try
            {
                // Wait for a few hundred commits, then kill without warning while the burst goes on.
                while (lastReported < 300 && child.StandardOutput.ReadLine() is { } line)
                    if (line.StartsWith("committed ", StringComparison.Ordinal)) lastReported = long.Parse(line["committed ".Length..]);
                if (lastReported < 300) Assert.Fail($"writer stopped early: {child.StandardError.ReadToEnd()}"); // only then: it blocks until the child exits
            }
            finally
            {
                child.Kill(); // SIGKILL on Linux
                child.WaitForExit();
            }
            // Lines the writer printed after our last read were committed too; read what is left in the pipe.
            while (child.StandardOutput.ReadLine() is { } line)
                if (line.StartsWith("committed ", StringComparison.Ordinal)) lastReported = long.Parse(line["committed ".Length..]);
        }

        using (var journal = JournalStore.Open(db, JournalOpenMode.ReadOnly))
        {
            Assert.True(journal.LastSequence >= lastReported, $"record {lastReported} was reported committed but the journal ends at {journal.LastSequence}");
            var v = JournalVerifier.Verify(journal);
            Assert.Equal(JournalDamage.None, v.Damage);
            Assert.Equal(journal.LastSequence, v.Records);
        }
        long afterCrash;
        using (var journal = JournalStore.Open(db, JournalOpenMode.Append))
        {
            afterCrash = journal.LastSequence;
            Assert.Equal(afterCrash + 1, journal.Append(JournalRecordKind.Note, "{\"note\":\"after the crash\"}"u8).Sequence);
        }
        using (var journal = JournalStore.Open(db, JournalOpenMode.ReadOnly))
        {
            var v = JournalVerifier.Verify(journal);
            Assert.Equal(JournalDamage.None, v.Damage);
            Assert.Equal(afterCrash + 1, v.LastSequence);
        }
    }
}
