using System.Diagnostics;
using Periscope.Linux;
using Periscope.Linux.Discovery;
using Periscope.Memory.Formats;

namespace Periscope.Targets.Benchmarks;

/// <summary>
/// Attach time (LinuxKernel.Open: discovery, kallsyms, BTF, up to the model) with the dump's CR3, without CR3 and
/// VMCOREINFO (the low-memory search), and with the full RAM scan forced, on several dumps in one run, rounds
/// interleaved so that load on the machine hits every variant alike. Warm page cache: the dumps were just written or read.
/// </summary>
public static class DiscoveryBenchmarks
{
    private sealed record Variant(string Name, bool Notes, DiscoveryMethods Methods);

    private static readonly Variant[] Variants =
    [
        new("CR3", true, DiscoveryMethods.All),
        new("no CR3/VMCOREINFO", false, DiscoveryMethods.All),
        new("full scan", true, DiscoveryMethods.FullScan),
    ];

    /// <summary>Each timed run maps the dump afresh (as every command does), so page faults and resident memory count:
    /// the page cache is warm, the mapping is not. Resident memory is the growth of this process's file-backed RSS.</summary>
    public static IReadOnlyList<BenchResult> Run(IReadOnlyList<string> dumps, int iterations)
    {
        var times = new List<double>[dumps.Count, Variants.Length];
        var stage = new List<double>[dumps.Count, Variants.Length];
        var rss = new List<long>[dumps.Count, Variants.Length];
        var pages = new long[dumps.Count, Variants.Length];
        var found = new DiscoveryMethod[dumps.Count, Variants.Length];
        var ram = new ulong[dumps.Count];
        for (int round = -1; round < iterations; round++) // round -1 warms the JIT and the page cache
        {
            for (int d = 0; d < dumps.Count; d++)
            {
                for (int v = 0; v < Variants.Length; v++)
                {
                    var variant = Variants[v];
                    long rss0 = FileRssKiB();
                    long t0 = Stopwatch.GetTimestamp();
                    using var image = MemoryImage.Open(dumps[d]);
                    var k = LinuxKernel.Open(image, variant.Notes ? image.Cpus : [], null, variant.Notes ? image.VmcoreInfo : null, new KernelOpenOptions { Discovery = variant.Methods });
                    double ms = Stopwatch.GetElapsedTime(t0).TotalMilliseconds;
                    long grown = FileRssKiB() - rss0;
                    if (round < 0)
                    {
                        (times[d, v], stage[d, v], rss[d, v]) = ([], [], []);
                        (pages[d, v], found[d, v], ram[d]) = (k.Layout.DiscoveryPagesRead, k.Layout.FoundBy, image.Map.RamBytes);
                        continue;
                    }
                    times[d, v].Add(ms);
                    stage[d, v].Add(k.Log.Timings.Where(t => t.Stage is "kernel PGD" or "direct-map search").Sum(t => t.Milliseconds));
                    rss[d, v].Add(grown);
                }
            }
        }
        var results = new List<BenchResult>();
        var medians = new double[dumps.Count, Variants.Length];
        for (int d = 0; d < dumps.Count; d++)
        {
            for (int v = 0; v < Variants.Length; v++)
            {
                var sorted = times[d, v].Order().ToArray();
                medians[d, v] = sorted[sorted.Length / 2];
                double discovery = Median(stage[d, v]);
                long rssMiB = (long)Median(rss[d, v].Select(x => (double)x).ToList()) >> 10;
                results.Add(new BenchResult($"attach, {ram[d] >> 20} MiB RAM, {Variants[v].Name}: median", medians[d, v], "ms",
                    $"{found[d, v].Describe()}: {pages[d, v]} pages read, discovery {discovery:0.00} ms, +{rssMiB} MiB resident; ×{medians[d, v] / medians[d, 0]:0.00} of CR3; min {sorted[0]:0.00} ms, {iterations} rounds"));
            }
        }
        for (int d = 1; d < dumps.Count; d++)
        {
            string ratios = string.Join(", ", Enumerable.Range(0, Variants.Length).Select(v => $"{Variants[v].Name} ×{medians[d, v] / medians[0, v]:0.00}"));
            results.Add(new BenchResult($"attach on {ram[d] >> 20} MiB vs {ram[0] >> 20} MiB (RAM ×{(double)ram[d] / ram[0]:0.0})",
                medians[d, 0] / medians[0, 0], "ratio", ratios));
        }
        return results;
    }

    private static double Median(List<double> xs)
    {
        var s = xs.Order().ToArray();
        return s.Length == 0 ? 0 : s[s.Length / 2];
    }

    /// <summary>RssFile of this process in KiB (Linux), 0 elsewhere: file pages mapped and touched.</summary>
    private static long FileRssKiB()
    {
        if (!OperatingSystem.IsLinux()) return 0;
        foreach (var line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith("RssFile:", StringComparison.Ordinal)
                && long.TryParse(line.AsSpan(8).Trim().TrimEnd("kB").Trim(), out long kib)) return kib;
        }
        return 0;
    }
}
