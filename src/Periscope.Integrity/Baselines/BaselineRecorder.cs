using System.Diagnostics;
using Periscope.Integrity.Evidence;
using Periscope.Integrity.Measurement;
using Periscope.Integrity.Regions;
using Periscope.Linux;

namespace Periscope.Integrity.Baselines;

/// <summary>What `baseline create` recorded and what it had to leave out (regions refused by a limit, evidence that could
/// not be read); <paramref name="AlreadyStored"/> when an identical baseline existed and was kept instead.</summary>
public sealed record BaselineSummary(long Id, string BuildId, int Regions, int Pages, long Bytes, double Milliseconds, bool AlreadyStored = false)
{
    public IReadOnlyList<string> Skipped { get; init; } = [];
}

/// <summary>
/// Measures every region of a kernel (SHA-256, XxHash3 and content per page) into the trusted-state store, with the
/// evidence (allow-lists) that later makes a change legitimate: jump-label and static-call sites, ftrace records and
/// ops, modules and their symbols.
/// </summary>
public static class BaselineRecorder
{
    public static BaselineSummary Record(LinuxKernel kernel, BaselineStore store, string target)
    {
        var sw = Stopwatch.StartNew();
        var catalog = RegionCatalog.Catalog(kernel);
        var measured = RegionMeasurer.MeasureAll(kernel.KernelSpace, catalog.Regions, sha256: true, keepContent: true);
        // Page contents compress on the thread pool while this thread collects the evidence (which reads the guest
        // through the kernel's address space, so it stays on one thread): compression no longer adds to the time after
        // hashing as much as it costs.
        var contents = Task.Run(() => ContentBlocks.Compress(measured));
        var evidence = EvidenceCollector.Collect(kernel);
        string buildId = KernelIdentity.BuildId(kernel);
        var saved = store.Save(buildId, kernel.Banner, kernel.Layout.TextVa, target, measured, contents.GetAwaiter().GetResult());
        // Kept or new, the baseline takes the evidence of this trusted moment (an operator re-baselines to accept it).
        EvidenceStore.Save(store, saved.Id, evidence);
        return new BaselineSummary(saved.Id, buildId, measured.Count, measured.Sum(m => m.Pages.Count),
            measured.Sum(m => m.Pages.Sum(p => (long)p.Length)), sw.Elapsed.TotalMilliseconds, saved.AlreadyStored)
        {
            Skipped = [.. catalog.Skipped.Select(r => r.Reason), .. evidence.Gaps.Select(g => $"evidence, {g}")],
        };
    }
}
