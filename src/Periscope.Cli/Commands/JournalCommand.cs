using System.CommandLine;
using System.Diagnostics;
using System.Text;
using System.Text.Json;
using Periscope.Cli.Output;
using Periscope.Journal;
using Periscope.Memory;

namespace Periscope.Cli.Commands;

/// <summary>
/// `periscope journal keygen|show|export|verify|append|bench`: the tamper-evident journal that `watch` writes.
/// verify exit codes: 0 intact (and, with --pubkey, proven to the last record), 1 damaged (the first bad record is
/// named), 2 error, 3 intact but records after the last signed head are not proven (e.g. after a kill -9).
/// </summary>
public sealed class JournalCommand : ICliCommand
{
    public static Option<string> DbOption() => new("--db") { Description = "Journal file (SQLite)", Required = true };

    public Command Build(CommandContext context)
    {
        var limits = IntrospectionLimits.Default;

        var outKey = new Option<string>("--out") { Description = "Private key file to create (PEM, mode 0600); the public half goes to FILE.pub", Required = true };
        var keygen = new Command("keygen", "Create an ECDSA P-256 key pair for signing journal heads; keep the private file outside the journal") { outKey };
        keygen.SetAction(r =>
        {
            string path = r.GetValue(outKey)!;
            if (File.Exists(path) || File.Exists(path + ".pub")) throw new CliUsageException($"{path} or {path}.pub already exists: not overwritten");
            var id = JournalSigningKey.Generate(path, path + ".pub");
            if (context.Json(r)) Json.Write(context.Output, w => { w.WriteStartObject(); w.WriteString("private", path); w.WriteString("public", path + ".pub"); w.WriteString("keyId", Convert.ToHexStringLower(id)); w.WriteEndObject(); });
            else context.Output.WriteLine($"private key {path} (keep it outside the journal's reach), public key {path}.pub, key id {Convert.ToHexStringLower(id)[..16]}");
            return 0;
        });

        var showDb = DbOption();
        var from = new Option<long>("--from") { Description = "First record to show", DefaultValueFactory = _ => 1 };
        var limit = new Option<long>("--limit") { Description = "Records to show at most", DefaultValueFactory = _ => 1000 };
        var show = new Command("show", "List journal records") { showDb, from, limit };
        show.SetAction(r =>
        {
            using var journal = JournalStore.Open(r.GetValue(showDb)!, JournalOpenMode.ReadOnly, limits);
            var records = journal.Records(r.GetValue(from), Math.Max(1, r.GetValue(limit)));
            if (context.Json(r)) { Export(context.Output, records); return 0; }
            var table = TableWriter.Plain("SEQ", "TIME", "KIND", "RECORD");
            foreach (var rec in records)
                table.AddRow(rec.Sequence.ToString(), rec.Time.ToString("yyyy-MM-dd HH:mm:ss.fff"), rec.Kind.ToString(), TableWriter.Esc(Shorten(rec.PayloadText, 160)));
            TableWriter.Write(context.Output, table);
            return 0;
        });

        var exportDb = DbOption();
        var export = new Command("export", "Write every record as JSON (with its hashes), for archiving or other tools") { exportDb };
        export.SetAction(r =>
        {
            using var journal = JournalStore.Open(r.GetValue(exportDb)!, JournalOpenMode.ReadOnly, limits);
            Export(context.Output, journal.Records());
            return 0;
        });

        var verifyDb = DbOption();
        var pubkey = new Option<string?>("--pubkey") { Description = "Public key (from journal keygen): also prove the chain up to the last signed head" };
        var verify = new Command("verify", "Check the hash chain and signed heads; name the first bad record") { verifyDb, pubkey };
        verify.SetAction(r =>
        {
            using var journal = JournalStore.Open(r.GetValue(verifyDb)!, JournalOpenMode.ReadOnly, limits);
            using var key = r.GetValue(pubkey) is { } p ? JournalPublicKey.Load(p, limits) : null;
            var v = JournalVerifier.Verify(journal, key);
            int exit = !v.Intact ? 1 : !v.Complete || (v.SignaturesChecked && v.Unproven > 0) ? 3 : 0;
            if (context.Json(r))
            {
                Json.Write(context.Output, w =>
                {
                    w.WriteStartObject();
                    w.WriteNumber("exitCode", exit);
                    w.WriteBoolean("intact", v.Intact);
                    w.WriteString("damage", v.Damage.ToString().ToLowerInvariant());
                    w.WriteNumber("firstBadRecord", v.FirstBadSequence);
                    w.WriteString("problem", v.Problem);
                    w.WriteNumber("records", v.Records);
                    w.WriteNumber("lastRecord", v.LastSequence);
                    w.WriteNumber("heads", v.Heads);
                    w.WriteBoolean("signaturesChecked", v.SignaturesChecked);
                    w.WriteNumber("headsVerified", v.HeadsVerified);
                    w.WriteNumber("provenThrough", v.ProvenThrough);
                    w.WriteNumber("unproven", v.Unproven);
                    w.WriteBoolean("complete", v.Complete);
                    w.WriteEndObject();
                });
                return exit;
            }
            if (!v.Intact) context.Output.WriteLine($"DAMAGED ({v.Damage.ToString().ToLowerInvariant()}): first bad record {v.FirstBadSequence}: {v.Problem}");
            else context.Output.WriteLine($"chain intact: {v.Records} records (1..{v.LastSequence}), {v.Heads} signed heads");
            if (v.SignaturesChecked)
                context.Output.WriteLine(v.Intact
                    ? $"signatures: {v.HeadsVerified} heads verified with {key!.Path}; proven through record {v.ProvenThrough}{(v.Unproven > 0 ? $", {v.Unproven} record(s) after the last signed head not proven" : "")}"
                    : $"signatures: {v.HeadsVerified} heads verified before the damage");
            else context.Output.WriteLine("signatures not checked (give --pubkey to prove the chain against a rewrite)");
            if (!v.Complete) context.Output.WriteLine($"incomplete: stopped after {limits.MaxJournalRecordsRead} records (IntrospectionLimits.MaxJournalRecordsRead)");
            context.Output.WriteLine($"{v.Records} records verified in {v.Seconds:0.000} s");
            return exit;
        });

        var appendDb = DbOption();
        var note = new Option<string>("--note") { Description = "Text of the operator's note", Required = true };
        var count = new Option<int>("--count") { Description = "Append the note this many times, one committed record each (a burst)", DefaultValueFactory = _ => 1 };
        var appendKey = new Option<string?>("--key") { Description = "Private key: sign the head after appending" };
        var append = new Command("append", "Append an operator's note; prints each record's number once it is committed (fsynced)") { appendDb, note, count, appendKey };
        append.SetAction(r =>
        {
            using var key = r.GetValue(appendKey) is { } k ? JournalSigningKey.Load(k, limits) : null;
            using var journal = JournalStore.Open(r.GetValue(appendDb)!, JournalOpenMode.Append, limits);
            int n = Math.Max(1, r.GetValue(count));
            for (int i = 0; i < n; i++)
            {
                var rec = journal.Append(JournalRecordKind.Note, Payload(w => w.WriteString("note", r.GetValue(note))));
                // Printed only after the commit returned: what is printed is what a crash must not lose.
                context.Output.WriteLine($"committed {rec.Sequence}");
                context.Output.Flush();
            }
            if (key is not null && journal.SignHead(key) is { } head) context.Output.WriteLine($"signed head at record {head.Sequence}");
            return 0;
        });

        var benchDb = DbOption();
        var records = new Option<int>("--records") { Description = "Records to append", DefaultValueFactory = _ => 200_000 };
        var batch = new Option<int>("--batch") { Description = "Records per committed (fsynced) transaction", DefaultValueFactory = _ => 1_000 };
        var benchKey = new Option<string>("--key") { Description = "Private key for the signed head at the end", Required = true };
        var bench = new Command("bench", "Measure appending (chained, fsynced per batch) and verifying into a new journal file") { benchDb, records, batch, benchKey };
        bench.SetAction(r =>
        {
            string path = r.GetValue(benchDb)!;
            if (File.Exists(path)) throw new CliUsageException($"{path} exists: the benchmark writes a new journal");
            using var key = JournalSigningKey.Load(r.GetValue(benchKey)!, limits);
            using var pub = JournalPublicKey.Load(r.GetValue(benchKey)! + ".pub", limits);
            int total = Math.Max(1, r.GetValue(records)), per = Math.Clamp(r.GetValue(batch), 1, 1_000_000);
            var payload = Payload(w => { w.WriteString("kind", "finding"); w.WriteString("severity", "critical"); w.WriteString("region", "sys_call_table"); w.WriteString("location", "entry 59 (execve)"); w.WriteString("found", "ffffffffc0a01000"); });
            var clock = Stopwatch.StartNew();
            using (var journal = JournalStore.Open(path, JournalOpenMode.Append, limits))
            {
                var items = new List<(JournalRecordKind, byte[])>(per);
                for (int done = 0; done < total; done += items.Count)
                {
                    items.Clear();
                    for (int i = 0; i < Math.Min(per, total - done); i++) items.Add((JournalRecordKind.Finding, payload));
                    journal.AppendBatch(items);
                }
                journal.SignHead(key);
            }
            double appendSeconds = clock.Elapsed.TotalSeconds;
            JournalVerification v;
            double scanSeconds;
            long scanned;
            using (var journal = JournalStore.Open(path, JournalOpenMode.ReadOnly, limits))
            {
                // The floor: a plain scan of the same table in the same process and run, so the ratio holds under load.
                journal.ScanRows(); // warm: page cache and JIT
                var scanClock = Stopwatch.StartNew();
                scanned = journal.ScanRows();
                scanSeconds = scanClock.Elapsed.TotalSeconds;
                v = JournalVerifier.Verify(journal, pub);
            }
            if (!v.Intact || v.Unproven != 0) throw new InvalidOperationException($"benchmark journal did not verify: {v.Problem}");
            context.Output.WriteLine($"append: {total} records ({payload.Length}-byte payloads) in batches of {per}, synchronous=FULL: {appendSeconds:0.000} s = {total / appendSeconds:0} records/s");
            context.Output.WriteLine($"scan:   {scanned} rows, every column read, nothing checked: {scanSeconds:0.000} s = {scanned / scanSeconds:0} rows/s");
            context.Output.WriteLine($"verify: {v.Records} records and {v.Heads} signed head in {v.Seconds:0.000} s = {v.Records / v.Seconds:0} records/s ({scanSeconds / v.Seconds:0.00}x the plain scan's rate)");
            return 0;
        });

        return new Command("journal", "The tamper-evident journal of `watch`: keys, listing, export and verification") { keygen, show, export, verify, append, bench };
    }

    /// <summary>A small JSON object as UTF-8 bytes (journal payloads are JSON).</summary>
    public static byte[] Payload(Action<Utf8JsonWriter> fields)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream))
        {
            w.WriteStartObject();
            fields(w);
            w.WriteEndObject();
        }
        return stream.ToArray();
    }

    private static string Shorten(string s, int max) => s.Length <= max ? s : s[..max] + "...";

    /// <summary>A JSON array written in pieces, so exporting a large journal does not build it all in memory.</summary>
    private static void Export(TextWriter output, IEnumerable<JournalRecord> records)
    {
        using var stream = new MemoryStream();
        using var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = false });
        void Drain()
        {
            w.Flush();
            output.Write(Encoding.UTF8.GetString(stream.GetBuffer(), 0, (int)stream.Length));
            stream.SetLength(0);
        }
        w.WriteStartArray();
        int n = 0;
        foreach (var r in records)
        {
            w.WriteStartObject();
            w.WriteNumber("seq", r.Sequence);
            w.WriteString("time", r.Time.ToString("O"));
            w.WriteString("kind", r.Kind.ToString());
            w.WriteString("payload", r.PayloadText);
            w.WriteString("prev", Convert.ToHexStringLower(r.Previous));
            w.WriteString("hash", Convert.ToHexStringLower(r.Hash));
            w.WriteEndObject();
            if (++n % 1000 == 0) Drain();
        }
        w.WriteEndArray();
        Drain();
        output.WriteLine();
    }
}
