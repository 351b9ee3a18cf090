using System.Diagnostics;
using Periscope.Linux;
using Periscope.Memory.Formats;

namespace Periscope.Targets.Benchmarks;

/// <summary>
/// Lazy kallsyms against the eager decoding it replaced, in one run with rounds interleaved: attach+ps as it is now
/// (names stay compressed), and attach+ps followed by the work the eager decoder did on every attach (every name
/// expanded into a string, a by-name dictionary of all of them). Then lookups by name and by address.
/// </summary>
public static class KallsymsBenchmarks
{
    private static readonly string[] LookupNames =
        ["init_task", "sys_call_table", "linux_banner", "__start_BTF", "modules", "page_offset_base", "idt_table", "_text"];

    public static IEnumerable<BenchResult> Run(MemoryImage image, int iterations)
    {
        var lazy = new List<double>();
        var eager = new List<double>();
        int tasks = 0;
        for (int i = 0; i < iterations; i++)
        {
            long t0 = Stopwatch.GetTimestamp();
            var k = LinuxKernel.Open(image, image.Cpus, null, image.VmcoreInfo);
            tasks = k.Tasks.Count;
            lazy.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);

            t0 = Stopwatch.GetTimestamp();
            k = LinuxKernel.Open(image, image.Cpus, null, image.VmcoreInfo);
            var byName = new Dictionary<string, int>(k.Symbols.Count, StringComparer.Ordinal);
            int n = 0;
            foreach (var s in k.Symbols.All) byName.TryAdd(s.Name, n++);
            tasks = k.Tasks.Count;
            eager.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
        }
        lazy.Sort();
        eager.Sort();
        double lazyMedian = lazy[lazy.Count / 2], eagerMedian = eager[eager.Count / 2];
        yield return new BenchResult("attach+ps warm, lazy kallsyms (names stay compressed): median", lazyMedian, "ms",
            $"{tasks} tasks, {iterations} runs interleaved with the next line, min {lazy[0]:0.00} ms");
        yield return new BenchResult("attach+ps warm, every name materialised as before: median", eagerMedian, "ms",
            $"min {eager[0]:0.00} ms; lazy/eager = {lazyMedian / eagerMedian:0.00}");

        var kernel = LinuxKernel.Open(image, image.Cpus, null, image.VmcoreInfo);
        var symbols = kernel.Symbols;
        _ = kernel.Tasks.Count;
        yield return new BenchResult("kallsyms names expanded to strings by one attach+ps", symbols.MaterialisedNameCount, "names", $"of {symbols.Count}");
        // An absent name: the binary search misses, and the first miss samples seqs_of_names once to decide whether a
        // miss can be believed (sorted) or must go to a hash index of every name (scrambled: O(n) once).
        long missStart = Stopwatch.GetTimestamp();
        symbols.TryGetAddress("periscope_no_such_symbol", out _);
        double firstMiss = Stopwatch.GetElapsedTime(missStart).TotalMilliseconds;
        missStart = Stopwatch.GetTimestamp();
        symbols.TryGetAddress("periscope_no_such_symbol_2", out _);
        double secondMiss = Stopwatch.GetElapsedTime(missStart).TotalMilliseconds;
        yield return new BenchResult("lookup of an absent name (a believed binary-search miss)", firstMiss, "ms", $"the second costs {secondMiss * 1000:0.0} µs");
        const int Rounds = 20_000;
        ulong sink = 0;
        long start = Stopwatch.GetTimestamp();
        for (int r = 0; r < Rounds; r++)
            foreach (string name in LookupNames)
                if (symbols.TryGetAddress(name, out ulong a)) sink += a;
        double byNameNs = Stopwatch.GetElapsedTime(start).TotalNanoseconds / (Rounds * LookupNames.Length);
        string how = kernel.KallsymsLocation.HasSeqsOfNames ? "binary search over kallsyms_seqs_of_names" : "hash index of all names";
        yield return new BenchResult("symbol lookup by name (TryGetAddress)", byNameNs, "ns", $"{how}, {LookupNames.Length} names × {Rounds:N0}");

        ulong text = symbols.GetAddress("_text");
        var rng = new Random(7);
        var probes = new ulong[100_000];
        for (int i = 0; i < probes.Length; i++) probes[i] = text + (ulong)rng.NextInt64(16 << 20);
        start = Stopwatch.GetTimestamp();
        foreach (ulong p in probes)
            if (symbols.TryFindContaining(p, out var s, out ulong off)) sink += off + s.Address;
        double byAddressNs = Stopwatch.GetElapsedTime(start).TotalNanoseconds / probes.Length;
        yield return new BenchResult("symbol lookup by address (TryFindContaining)", byAddressNs, "ns",
            $"{probes.Length:N0} random addresses in the first 16 MiB of text (names expanded on first hit){(sink == 42 ? "" : "")}");
    }
}
