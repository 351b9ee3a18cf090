using System.CommandLine;
using Periscope.Integrity.Baselines;
using Periscope.Integrity.ProcessCode;
using Periscope.Integrity.Verification;
using Periscope.Linux;

namespace Periscope.Cli.Commands;

/// <summary>
/// `--stats` of `verify`, `baseline create` and `dump process`: where the command's time went, one `periscope: stats:` line per stage
/// on stderr (stdout and --json stay as they are), as `stage=NAME ms=N` with `bytes=N` where the stage hashes. Hashing
/// stages give their own time (the process-code sweep times SHA-256 apart from its walk), so a benchmark can set a
/// stage's bytes per second against a single-core SHA-256 of as many bytes measured in the same run.
/// </summary>
internal static class StageStats
{
    public static Option<bool> Option() => new("--stats") { Description = "Print where the time went (attach stages, hashing, walk, compression, store) on stderr" };

    public static void WriteAttach(TextWriter error, LinuxKernel kernel)
    {
        foreach (var (stage, ms) in kernel.Log.Timings) Line(error, "attach " + stage, ms);
    }

    public static void WriteVerify(TextWriter error, VerificationResult result, ProcessCodeResult code)
    {
        Line(error, "kernel regions hash", result.RegionHashTime.TotalMilliseconds, result.BytesChecked - code.Bytes, "XxHash3, all cores");
        Line(error, "evidence", result.EvidenceTime.TotalMilliseconds);
        Line(error, "kernel regions", result.Milliseconds);
        WriteSweep(error, code.SweepTime, code.HashTime, code.Bytes, code.ResidentMappings);
    }

    public static void WriteCreate(TextWriter error, BaselineSummary summary, ProcessCodeSweep sweep)
    {
        Line(error, "kernel regions hash", summary.RegionHashTime.TotalMilliseconds, summary.Bytes, "SHA-256 and XxHash3, all cores");
        Line(error, "compress", summary.CompressTime.TotalMilliseconds);
        Line(error, "save", summary.SaveTime.TotalMilliseconds);
        Line(error, "baseline", summary.Milliseconds);
        WriteSweep(error, sweep.Elapsed, sweep.HashTime, sweep.Bytes, sweep.Mappings.Count);
    }

    private static void WriteSweep(TextWriter error, TimeSpan sweep, TimeSpan hash, long bytes, int residentMappings)
    {
        Line(error, "process code sweep", sweep.TotalMilliseconds, residentBytes: (long)residentMappings * 4096);
        Line(error, "process code hash", hash.TotalMilliseconds, bytes, "SHA-256, one thread");
    }

    internal static void Line(TextWriter error, string stage, double ms, long? bytes = null, string? how = null, long? residentBytes = null)
    {
        string rate = bytes is { } b && ms > 0 ? $" gb_per_s={b / (ms / 1000) / 1e9:0.000}" : "";
        error.WriteLine($"periscope: stats: stage={stage.Replace(' ', '-')} ms={ms:0.000}{(bytes is { } n ? $" bytes={n}" : "")}{rate}"
            + $"{(residentBytes is { } r ? $" resident_code_bytes={r}" : "")}{(how is null ? "" : $" ({how})")}");
    }
}
