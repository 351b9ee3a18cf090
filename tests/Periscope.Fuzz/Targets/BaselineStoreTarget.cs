using Periscope.Fuzz.Engine;
using Periscope.Integrity.Baselines;
using Periscope.Integrity.Measurement;
using Periscope.Integrity.Regions;

namespace Periscope.Fuzz.Targets;

/// <summary>
/// The trusted-state store opened on a mutated SQLite file: open (schema check), list, load every baseline, read code
/// pages. The seed is a real store written by BaselineStore itself. Every exception counts as a finding except the
/// store's own declared one-line error, <see cref="BaselineFormatException"/>.
/// </summary>
public sealed class BaselineStoreTarget : FuzzTarget
{
    private ScratchFile? _scratch;
    public override string Name => "baseline-store";
    public override string Description => "SQLite trusted-state store on mutated database files (header, page headers, records)";
    public override int SmokeIterations => 300;

    public override IReadOnlyList<Seed> Seeds()
    {
        using var scratch = new ScratchFile("baseline-seed");
        using (var store = BaselineStore.Open(scratch.Path))
        {
            var page = new PageMeasurement(0, 0xffffffff81000000, 0x1000000, 4096, 0x1234, new byte[32], new byte[4096]);
            var text = new RegionMeasurement(new MeasuredRegion("kernel text", RegionKind.KernelText, 0xffffffff81000000, 0x2000), [page, page with { Index = 1, VirtualAddress = 0xffffffff81001000 }]);
            var table = new RegionMeasurement(new MeasuredRegion("sys_call_table", RegionKind.SyscallTable, 0xffffffff82000000, 0x1000), [page with { VirtualAddress = 0xffffffff82000000, Content = null }]);
            store.Save("build-id-0123", "Linux version 6.1.0-fuzz", 0xffffffff81000000, "fuzz", [text, table]);
            store.AddCodePages([("/bin/busybox", 0, new byte[32]), ("/bin/busybox", 4096, new byte[32])], "fuzz");
        }
        // Fold the WAL into the main file so the seed is one self-contained database.
        using (var c = new Microsoft.Data.Sqlite.SqliteConnection($"Data Source={scratch.Path};Pooling=False"))
        {
            c.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = "PRAGMA wal_checkpoint(TRUNCATE); PRAGMA journal_mode=DELETE;";
            cmd.ExecuteNonQuery();
        }
        return [new Seed("store", File.ReadAllBytes(scratch.Path))];
    }

    // The 100-byte database header, then the first pages' b-tree headers and cells.
    public override IReadOnlyList<(int Offset, int Length)>? Focus(Seed seed) => [(0, 100), (100, Math.Min(seed.Data.Length - 100, 4096 * 8))];

    public override Verdict Run(byte[] input)
    {
        _scratch ??= new ScratchFile(Name);
        _scratch.Dispose();
        string path = _scratch.Write(input);
        try
        {
            using var store = BaselineStore.Open(path, BaselineOpenMode.Existing);
            foreach (var info in store.List()) _ = store.Load(info).Regions.Count;
            _ = store.CodePages().Count;
            return Verdict.Accepted;
        }
        catch (BaselineFormatException)
        {
            return Verdict.Rejected;
        }
    }

    public override void Dispose()
    {
        _scratch?.Dispose();
        base.Dispose();
    }
}
