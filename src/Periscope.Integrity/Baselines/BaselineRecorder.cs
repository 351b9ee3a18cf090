using System.Diagnostics;
using Periscope.Integrity.Measurement;
using Periscope.Integrity.Regions;
using Periscope.Linux;

namespace Periscope.Integrity.Baselines;

/// <summary>What `baseline create` recorded; <paramref name="AlreadyStored"/> when an identical baseline existed and was kept instead.</summary>
public sealed record BaselineSummary(long Id, string BuildId, int Regions, int Pages, long Bytes, double Milliseconds, bool AlreadyStored = false);

/// <summary>Measures every region of a kernel (SHA-256, XxHash3 and content per page) into the trusted-state store.</summary>
public static class BaselineRecorder
{
    public static BaselineSummary Record(LinuxKernel kernel, BaselineStore store, string target)
    {
        var sw = Stopwatch.StartNew();
        var measured = RegionMeasurer.MeasureAll(kernel.KernelSpace, RegionCatalog.Kernel(kernel), sha256: true, keepContent: true);
        string buildId = KernelIdentity.BuildId(kernel);
        var saved = store.Save(buildId, kernel.Banner, kernel.Layout.TextVa, target, measured);
        return new BaselineSummary(saved.Id, buildId, measured.Count, measured.Sum(m => m.Pages.Count),
            measured.Sum(m => m.Pages.Sum(p => (long)p.Length)), sw.Elapsed.TotalMilliseconds, saved.AlreadyStored);
    }
}
