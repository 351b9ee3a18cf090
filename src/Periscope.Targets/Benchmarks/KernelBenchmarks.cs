using System.Diagnostics;
using Periscope.Linux;
using Periscope.Memory;
using Periscope.Memory.Formats;
using Periscope.X86;

namespace Periscope.Targets.Benchmarks;

public sealed record BenchResult(string Name, double Value, string Unit, string Detail);

/// <summary>
/// The numbers BENCHMARKS.md reports, measured in one process on one image: attach-and-list time, translation rate,
/// and guest page reads against raw mmap copies of the same pages. Single-threaded throughout.
/// </summary>
public static class KernelBenchmarks
{
    public static IReadOnlyList<BenchResult> Run(string dumpPath, int iterations, Action<string>? progress = null)
    {
        var results = new List<BenchResult>();
        var sw = Stopwatch.StartNew();
        using (var first = Target.OpenDump(dumpPath))
        {
            int n = first.Kernel.Tasks.Count;
            results.Add(new BenchResult("attach+ps, first in process (cold JIT, cold page cache possible)", sw.Elapsed.TotalMilliseconds, "ms", $"{n} tasks"));
        }

        using var image = MemoryImage.Open(dumpPath);
        var times = new List<double>();
        int tasks = 0;
        for (int i = 0; i < iterations; i++)
        {
            long t0 = Stopwatch.GetTimestamp();
            var kernel = LinuxKernel.Open(image, image.Cpus, null, image.VmcoreInfo);
            tasks = kernel.Tasks.Count;
            times.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
        }
        times.Sort();
        results.Add(new BenchResult("attach+ps warm (discover kernel from scratch, list tasks): median", times[times.Count / 2], "ms", $"{tasks} tasks, {iterations} runs, min {times[0]:0.00} ms"));
        progress?.Invoke("attach done");
        results.AddRange(NoBtfAttach(image, iterations));

        var k = LinuxKernel.Open(image, image.Cpus);
        var stages = k.Log.Timings.Select(t => $"{t.Stage} {t.Milliseconds:0.00}").ToArray();
        results.Add(new BenchResult("  stages of one warm attach", k.Log.Timings.Sum(t => t.Milliseconds), "ms", string.Join(", ", stages)));
        results.AddRange(KallsymsBenchmarks.Run(image, iterations));

        results.AddRange(Translation(image, k));
        results.AddRange(PageReads(image, k));
        results.AddRange(IntegrityBenchmarks.Run(k));
        return results;
    }

    /// <summary>Attach without BTF (offsets inferred, no cache) against attach with BTF, warm: the inference's own cost.</summary>
    private static IEnumerable<BenchResult> NoBtfAttach(MemoryImage image, int iterations)
    {
        var noBtf = new KernelOpenOptions { NoBtf = true };
        var attach = new List<double>();
        var withBtf = new List<double>();
        var inference = new List<double>();
        int members = 0;
        for (int i = 0; i < Math.Max(iterations, 3); i++)
        {
            // Interleaved with the BTF attach, so both see the same machine load: the ratio is what holds on a busy host.
            long b0 = Stopwatch.GetTimestamp();
            _ = LinuxKernel.Open(image, image.Cpus, null, image.VmcoreInfo).Tasks.Count;
            withBtf.Add(Stopwatch.GetElapsedTime(b0).TotalMilliseconds);
            long t0 = Stopwatch.GetTimestamp();
            var kernel = LinuxKernel.Open(image, image.Cpus, null, image.VmcoreInfo, noBtf);
            _ = kernel.Tasks.Count;
            attach.Add(Stopwatch.GetElapsedTime(t0).TotalMilliseconds);
            inference.Add(kernel.Log.Timings.Where(t => t.Stage == "offset inference").Sum(t => t.Milliseconds));
            members = kernel.Inference?.Members.Count(m => m.IsKnown) ?? 0;
        }
        attach.Sort();
        withBtf.Sort();
        inference.Sort();
        yield return new BenchResult("attach+ps warm with BTF, interleaved: median", withBtf[withBtf.Count / 2], "ms", $"{withBtf.Count} runs, min {withBtf[0]:0.00} ms");
        yield return new BenchResult("  --no-btf / BTF attach ratio (medians)", attach[attach.Count / 2] / withBtf[withBtf.Count / 2], "x", "same process, same runs");
        yield return new BenchResult("attach+ps warm with --no-btf (offsets inferred, no cache): median", attach[attach.Count / 2], "ms", $"{attach.Count} runs, min {attach[0]:0.00} ms");
        yield return new BenchResult("  of which offset inference: median", inference[inference.Count / 2], "ms", $"{members} members inferred, min {inference[0]:0.00} ms");
    }

    private static ulong[] RandomDirectMapPages(MemoryImage image, LinuxKernel k, int count, int seed)
    {
        ulong pob = k.Layout.PageOffsetBase ?? throw new InvalidOperationException("direct map base unknown");
        var ram = image.Map.Ram.Where(r => r.Length >= 4096).ToArray();
        var rng = new Random(seed);
        var vas = new ulong[count];
        for (int i = 0; i < count; i++)
        {
            var r = ram[rng.Next(ram.Length)];
            ulong page = (r.Start + (ulong)rng.NextInt64((long)(r.Length / 4096)) * 4096 + 0xfff) & ~0xfffUL;
            if (page >= r.End) page = r.Start & ~0xfffUL;
            vas[i] = pob + page;
        }
        return vas;
    }

    private static IEnumerable<BenchResult> Translation(MemoryImage image, LinuxKernel k)
    {
        const int N = 2_000_000;
        var vas = RandomDirectMapPages(image, k, N, 1);
        var space = new AddressSpace(image, k.Layout.KernelPgd, k.Layout.Mode);
        ulong sink = 0;
        foreach (var va in vas.AsSpan(0, 100_000)) { space.TryTranslate(va + 8, out ulong pa); sink += pa; }
        double best = double.MaxValue;
        for (int rep = 0; rep < 5; rep++)
        {
            space.FlushCache();
            long t0 = Stopwatch.GetTimestamp();
            foreach (var va in vas) { space.TryTranslate(va + 8, out ulong pa); sink += pa; }
            best = Math.Min(best, Stopwatch.GetElapsedTime(t0).TotalSeconds);
        }
        yield return new BenchResult("VA→PA translation, random pages over all RAM (translation caches on)", N / best / 1e6, "M/s", $"{(int)k.Layout.Mode}-level, {N:N0} random direct-map addresses, best of 5 (checksum {sink & 0xff})");

        best = double.MaxValue;
        for (int rep = 0; rep < 5; rep++)
        {
            long t0 = Stopwatch.GetTimestamp();
            foreach (var va in vas) { space.TranslateWithoutCache(va + 8, out Translation t); sink += t.PhysicalAddress; }
            best = Math.Min(best, Stopwatch.GetElapsedTime(t0).TotalSeconds);
        }
        yield return new BenchResult("VA→PA full page walks, no translation cache", N / best / 1e6, "M/s", $"{(int)k.Layout.Mode} table reads per walk, same addresses");

        var hot = vas.AsSpan(0, 512).ToArray();
        long hits = 0;
        best = double.MaxValue;
        for (int rep = 0; rep < 5; rep++)
        {
            long t0 = Stopwatch.GetTimestamp();
            for (int i = 0; i < N; i++) { space.TryTranslate(hot[i & 511] + (ulong)(i & 0xff8), out ulong pa); hits += (long)(pa & 1); }
            best = Math.Min(best, Stopwatch.GetElapsedTime(t0).TotalSeconds);
        }
        yield return new BenchResult("VA→PA translation, 512-page working set (software-TLB hits)", N / best / 1e6, "M/s", $"{N:N0} lookups, best of 5 ({hits & 1})");
    }

    private static IEnumerable<BenchResult> PageReads(MemoryImage image, LinuxKernel k)
    {
        const int N = 400_000;
        var vas = RandomDirectMapPages(image, k, N, 2);
        ulong pob = k.Layout.PageOffsetBase!.Value;
        var space = new AddressSpace(image, k.Layout.KernelPgd, k.Layout.Mode);
        var buffer = new byte[4096];
        long sink = 0;
        double bestRaw = double.MaxValue, bestGuest = double.MaxValue;
        for (int rep = 0; rep < 5; rep++)
        {
            long t0 = Stopwatch.GetTimestamp();
            foreach (var va in vas)
            {
                // Raw: copy the same physical page straight out of the mapping.
                image.GetSpan(va - pob, 4096).CopyTo(buffer);
                sink += buffer[17];
            }
            bestRaw = Math.Min(bestRaw, Stopwatch.GetElapsedTime(t0).TotalSeconds);
            space.FlushCache();
            t0 = Stopwatch.GetTimestamp();
            foreach (var va in vas)
            {
                space.Read(va, buffer);
                sink += buffer[17];
            }
            bestGuest = Math.Min(bestGuest, Stopwatch.GetElapsedTime(t0).TotalSeconds);
        }
        double raw = N / bestRaw, guest = N / bestGuest;
        yield return new BenchResult("random 4 KiB page copy, raw mmap", raw / 1e6, "M pages/s", $"{raw * 4096 / 1e9:0.00} GB/s");
        yield return new BenchResult("random 4 KiB guest-virtual page read (translate + copy)", guest / 1e6, "M pages/s", $"{guest * 4096 / 1e9:0.00} GB/s (sink {sink & 1})");
        yield return new BenchResult("guest page reads as a share of raw mmap speed", guest / raw * 100, "%", "target ≥ 90%");
    }
}
