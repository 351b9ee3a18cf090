using System.Diagnostics;
using System.Security.Cryptography;
using Periscope.Integrity.Baselines;
using Periscope.Integrity.Measurement;
using Periscope.Integrity.ProcessCode;
using Periscope.Integrity.Regions;
using Periscope.Integrity.Verification;
using Periscope.Linux;

namespace Periscope.Targets.Benchmarks;

/// <summary>
/// Integrity sweep speed, measured in one run against this machine's own single-core SHA-256 speed: a full sweep
/// (kernel, modules and every resident process code page, SHA-256 + XxHash3) and an incremental re-verify (XxHash3,
/// SHA-256 only for changed pages).
/// </summary>
public static class IntegrityBenchmarks
{
    public static IEnumerable<BenchResult> Run(LinuxKernel kernel, int repetitions = 5, string label = "")
    {
        var data = new byte[64 << 20];
        new Random(3).NextBytes(data);
        SHA256.HashData(data);
        double shaBest = Best(repetitions, () => SHA256.HashData(data));
        double shaRate = data.Length / shaBest;
        yield return new BenchResult("SHA-256, one core, 64 MiB buffer", shaRate / 1e9, "GB/s", "reference for the sweep ratio");

        var regions = RegionCatalog.Kernel(kernel);
        long sweepBytes = 0;
        List<RegionMeasurement> measured = [];
        double sweepBest = Best(repetitions, () =>
        {
            measured = RegionMeasurer.MeasureAll(kernel.KernelSpace, regions, sha256: true, keepContent: false).ToList();
            var code = ProcessCodeMeasurer.Sweep(kernel);
            sweepBytes = measured.Sum(m => m.Pages.Where(p => p.Present).Sum(p => (long)p.Length)) + code.Bytes;
        });
        double sweepRate = sweepBytes / sweepBest;
        yield return new BenchResult(label + "full sweep: kernel + modules + resident process code (SHA-256 + XxHash3)", sweepBest * 1000, "ms",
            $"{sweepBytes / 1024} KiB, {sweepRate / 1e9:0.00} GB/s on {Environment.ProcessorCount} cores (kernel regions in parallel chunks)");
        yield return new BenchResult("full sweep throughput as a share of single-core SHA-256 speed", sweepRate / shaRate * 100, "%", "target ≥ 80%");

        double singleBest = Best(repetitions, () =>
        {
            RegionMeasurer.MeasureAll(kernel.KernelSpace, regions, sha256: true, keepContent: false, parallelism: 1);
            ProcessCodeMeasurer.Sweep(kernel);
        });
        yield return new BenchResult("full sweep on one core, as a share of single-core SHA-256 speed", sweepBytes / singleBest / shaRate * 100, "%",
            $"{singleBest * 1000:0.0} ms; per-page SHA-256 calls cost ~15% against one bulk hash");

        foreach (var stage in ProcessCodeStages(kernel, repetitions, label)) yield return stage;

        var withContent = RegionMeasurer.MeasureAll(kernel.KernelSpace, regions, sha256: true, keepContent: true);
        var baseline = new StoredBaseline(new BaselineInfo(0, "bench", kernel.Banner, kernel.Layout.TextVa, DateTime.UtcNow, "bench", withContent.Count, 0), withContent);
        long verifyBytes = 0;
        double hashBest = double.MaxValue, evidenceBest = double.MaxValue;
        double verifyBest = Best(repetitions, () =>
        {
            var result = Verifier.Verify(kernel, baseline);
            verifyBytes = result.BytesChecked;
            hashBest = Math.Min(hashBest, result.RegionHashTime.TotalSeconds);
            evidenceBest = Math.Min(evidenceBest, result.EvidenceTime.TotalSeconds);
        });
        // The target is the re-hash of the kernel regions; a whole verification also collects the current evidence
        // (allow-lists, ftrace, bpf trampolines, hidden-module scan), timed apart.
        yield return new BenchResult(label + "incremental re-verify of the kernel regions (XxHash3; SHA-256 only on change)", verifyBytes / hashBest / 1e9, "GB/s",
            $"{verifyBytes / 1024} KiB in {hashBest * 1000:0.0} ms, target ≥ 5 GB/s");
        yield return new BenchResult(label + "whole verification: re-hash + current evidence + judge", verifyBest * 1000, "ms",
            $"of which evidence collection {evidenceBest * 1000:0.0} ms (best of {repetitions})");
    }

    /// <summary>
    /// Where a process-code pass spends its time, stage by stage (each includes the ones before it): the task and VMA
    /// walks, the page-table enumeration of every executable mapping, the whole sweep (one hash per distinct page), and
    /// the comparison with references by (file, offset).
    /// </summary>
    public static IEnumerable<BenchResult> ProcessCodeStages(LinuxKernel kernel, int repetitions = 5, string label = "")
    {
        var processes = ProcessCodeMeasurer.Processes(kernel).ToList();
        int vmaCount = 0;
        double walk = Best(repetitions, () => vmaCount = ProcessCodeMeasurer.Processes(kernel).Sum(p => p.Vmas.Count));
        long leaves = 0;
        double tables = Best(repetitions, () =>
        {
            leaves = 0;
            foreach (var p in ProcessCodeMeasurer.Processes(kernel))
                foreach (var v in p.Vmas)
                    if (v.IsExecutable && v.End > v.Start)
                        foreach (var m in p.Space.EnumerateMappings(v.Start, v.End, maxLeaves: kernel.Limits.MaxProcessCodePagesPerPass)) leaves += (long)((m.VirtualEnd - m.VirtualAddress) / 4096);
        });
        ProcessCodeSweep sweep = null!;
        double full = Best(repetitions, () => sweep = ProcessCodeMeasurer.Sweep(kernel));
        var references = sweep.Pages.GroupBy(p => (p.File, p.FileOffset)).ToDictionary(g => g.Key, g => (g.First().Sha256, "bench"));
        double compare = Best(repetitions, () => ProcessCodeVerifier.Compare(sweep, new(references), new HashSet<AnonymousCodeKey>(), null));
        yield return new BenchResult(label + "process code: task and VMA walks of every user process", walk * 1000, "ms",
            $"{processes.Count} processes, {vmaCount} VMAs, {walk * 1e6 / Math.Max(1, processes.Count):0.0} µs per process");
        yield return new BenchResult(label + "process code: + page tables of every executable mapping", tables * 1000, "ms", $"{leaves} resident pages");
        yield return new BenchResult(label + "process code: + read and hash (one SHA-256 per distinct page)", full * 1000, "ms",
            $"{sweep.Mappings.Count} mappings, {sweep.Measured} distinct pages hashed, {full * 1e6 / Math.Max(1, processes.Count):0.0} µs per process");
        yield return new BenchResult(label + "process code: compare with references by (file, offset)", compare * 1000, "ms", $"{sweep.Measured} distinct pages compared");
    }

    private static double Best(int repetitions, Action work)
    {
        work();
        double best = double.MaxValue;
        for (int i = 0; i < repetitions; i++)
        {
            long t0 = Stopwatch.GetTimestamp();
            work();
            best = Math.Min(best, Stopwatch.GetElapsedTime(t0).TotalSeconds);
        }
        return best;
    }
}
