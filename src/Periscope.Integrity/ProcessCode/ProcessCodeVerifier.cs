using Periscope.Integrity.Baselines;
using Periscope.Integrity.Regions;
using Periscope.Integrity.Verification;
using Periscope.Linux;

namespace Periscope.Integrity.ProcessCode;

public sealed record ProcessCodeResult(IReadOnlyList<Finding> Findings, int Compared, int FirstSeen, int NotResident, long Bytes);

/// <summary>
/// Compares every resident code page of every process with the reference for (file, offset): one reference serves
/// all processes mapping the same binary. Pages never seen before are recorded (trust on first use) unless a
/// reference imported from the file itself exists. Anonymous executable memory is reported as possible injected code.
/// </summary>
public static class ProcessCodeVerifier
{
    public const string RegionName = "process code";

    public static ProcessCodeResult Verify(LinuxKernel kernel, BaselineStore store, bool recordFirstSeen = true)
    {
        var sweep = ProcessCodeMeasurer.Sweep(kernel);
        var references = store.CodePages();
        var findings = new List<Finding>();
        var firstSeen = new List<(string, ulong, byte[])>();
        int compared = 0;
        foreach (var page in sweep.Resident)
        {
            if (!references.TryGetValue((page.File, page.FileOffset), out var reference))
            {
                firstSeen.Add((page.File, page.FileOffset, page.Sha256));
                references[(page.File, page.FileOffset)] = (page.Sha256, "first use");
                continue;
            }
            compared++;
            if (reference.Sha256.AsSpan().SequenceEqual(page.Sha256)) continue;
            findings.Add(new Finding
            {
                Region = RegionName, Kind = RegionKind.ProcessCode, VirtualAddress = page.VirtualAddress, PhysicalAddress = page.PhysicalAddress,
                Location = $"pid {page.Pid} ({page.Comm}) {page.File}+0x{page.FileOffset:x}",
                Expected = reference.Sha256, Found = page.Sha256, Classification = Classifications.ProcessCodeModified, Severity = Severity.Critical,
                Detail = $"code page of {page.File} at file offset 0x{page.FileOffset:x} differs from its {reference.Source} reference",
            });
        }
        foreach (var anon in sweep.Anonymous)
        {
            findings.Add(new Finding
            {
                Region = RegionName, Kind = RegionKind.ProcessCode, VirtualAddress = anon.Vma.Start,
                Location = $"pid {anon.Pid} ({anon.Comm}) {anon.Vma.Start:x}-{anon.Vma.End:x} {anon.Vma.Permissions}",
                Expected = [], Found = [], Classification = Classifications.AnonymousCode, Severity = Severity.Warning,
                Detail = "executable memory backed by no file (JIT, or injected code)",
            });
        }
        if (recordFirstSeen && firstSeen.Count > 0) store.AddCodePages(firstSeen, "first use");
        return new ProcessCodeResult(findings, compared, firstSeen.Count, sweep.NotResident, sweep.Bytes);
    }
}
