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
    /// <summary>Stages of <see cref="Milliseconds"/>: hashing the regions (SHA-256 and XxHash3 of every page, on all
    /// cores), compressing their contents (this thread, while another reads the evidence and runs the caller's sweep),
    /// and saving to the store (pages, contents, evidence).</summary>
    public TimeSpan RegionHashTime { get; init; }
    public TimeSpan CompressTime { get; init; }
    public TimeSpan SaveTime { get; init; }
}

/// <summary>
/// Measures every region of a kernel (SHA-256, XxHash3 and content per page) into the trusted-state store, with the
/// evidence (allow-lists) that later makes a change legitimate: jump-label and static-call sites, ftrace records and
/// ops, modules and their symbols.
/// </summary>
public static class BaselineRecorder
{
    public static BaselineSummary Record(LinuxKernel kernel, BaselineStore store, string target) =>
        Record(kernel, store, target, _ => 0).Summary;

    /// <summary>
    /// Records a baseline and runs <paramref name="alongside"/> (the caller's own guest reading, e.g. the process-code
    /// sweep) while it is being recorded. After the regions are measured, one other thread reads the guest (the
    /// evidence, then <paramref name="alongside"/>) while this thread compresses the page contents, so compression
    /// costs wall time only where it outlasts that reading; the kernel is never read by two threads at once. This thread
    /// compresses because glibc keeps the encoder's scratch memory for reuse on the main thread, where a worker thread's
    /// arena gave it back after every block (a fifth of `baseline create`'s page faults).
    /// </summary>
    public static (BaselineSummary Summary, T Alongside) Record<T>(LinuxKernel kernel, BaselineStore store, string target, Func<LinuxKernel, T> alongside)
    {
        var sw = Stopwatch.StartNew();
        var catalog = RegionCatalog.Catalog(kernel);
        long hashStart = Stopwatch.GetTimestamp();
        var measured = RegionMeasurer.MeasureAll(kernel.KernelSpace, catalog.Regions, sha256: true, keepContent: true);
        var hashTime = Stopwatch.GetElapsedTime(hashStart);
        var reading = Task.Factory.StartNew(() => (Evidence: EvidenceCollector.Collect(kernel), Alongside: alongside(kernel)),
            CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        ContentBlocks contents;
        TimeSpan compressTime;
        try
        {
            long compressStart = Stopwatch.GetTimestamp();
            contents = ContentBlocks.Compress(measured, parallelism: 1);
            compressTime = Stopwatch.GetElapsedTime(compressStart);
        }
        finally
        {
            // Whatever happens here, the other thread is done with the kernel before the caller gets it back.
            ((IAsyncResult)reading).AsyncWaitHandle.WaitOne();
        }
        var (evidence, result) = reading.GetAwaiter().GetResult();
        string buildId = KernelIdentity.BuildId(kernel);
        long saveStart = Stopwatch.GetTimestamp();
        var saved = store.Save(buildId, kernel.Banner, kernel.Layout.TextVa, target, measured, contents);
        // Kept or new, the baseline takes the evidence of this trusted moment (an operator re-baselines to accept it).
        EvidenceStore.Save(store, saved.Id, evidence);
        var saveTime = Stopwatch.GetElapsedTime(saveStart);
        var summary = new BaselineSummary(saved.Id, buildId, measured.Count, measured.Sum(m => m.Pages.Count),
            measured.Sum(m => m.Pages.Sum(p => (long)p.Length)), sw.Elapsed.TotalMilliseconds, saved.AlreadyStored)
        {
            Skipped = [.. catalog.Skipped.Select(r => r.Reason), .. evidence.Gaps.Select(g => $"evidence, {g}")],
            RegionHashTime = hashTime, CompressTime = compressTime, SaveTime = saveTime,
        };
        return (summary, result);
    }
}
