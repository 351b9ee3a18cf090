using Periscope.Integrity.Baselines;
using Periscope.Integrity.Regions;
using Periscope.Integrity.Verification;
using Periscope.Linux;

namespace Periscope.Integrity.ProcessCode;

/// <param name="Compared">Distinct (file, offset, physical page) compared with a reference: each once, however many
/// processes map it.</param>
/// <param name="FirstSeen">(file, offset) with no reference before this pass (recorded on first use).</param>
/// <param name="KnownAnonymous">Anonymous executable mappings the baseline recorded, found unchanged (not reported).</param>
/// <param name="Incomplete">What the sweep could not cover and why; empty when it covered everything.</param>
/// <param name="ResidentMappings">Resident code pages as the processes map them (the per-process view).</param>
/// <param name="SharedMappings">Of those, mappings of a page already measured for another process in this pass.</param>
public sealed record ProcessCodeResult(IReadOnlyList<Finding> Findings, int Compared, int FirstSeen, long NotResident, long Bytes,
    int KnownAnonymous = 0, IReadOnlyList<string>? Incomplete = null, int ResidentMappings = 0, int SharedMappings = 0)
{
    public IReadOnlyList<string> Incomplete { get; init; } = Incomplete ?? [];
    /// <summary>The sweep's whole time and its hashing stage's (see <see cref="ProcessCodeSweep.HashTime"/>).</summary>
    public TimeSpan SweepTime { get; init; }
    public TimeSpan HashTime { get; init; }
}

/// <summary>
/// Compares every resident code page of every process with the reference for (file, offset): one reference serves
/// all processes mapping the same binary, and each distinct (file, offset, physical page) of the sweep is compared once;
/// only a page that differs is traced back to every process mapping it (one finding per process and address). Pages
/// never seen before are recorded (trust on first use) unless a reference imported from the file itself exists.
/// Anonymous executable memory is reported as possible injected code, unless the baseline recorded the same mapping
/// (same process, size, permissions and content) when it was taken.
/// </summary>
public static class ProcessCodeVerifier
{
    public const string RegionName = "process code";

    /// <param name="baseline">The baseline whose recorded anonymous code is allowed; by default the newest one for this
    /// kernel build and layout.</param>
    public static ProcessCodeResult Verify(LinuxKernel kernel, BaselineStore store, bool recordFirstSeen = true, BaselineInfo? baseline = null)
    {
        var sweep = ProcessCodeMeasurer.Sweep(kernel);
        var references = store.CodePages();
        baseline ??= store.FindLatest(KernelIdentity.BuildId(kernel), kernel.Layout.TextVa);
        var knownAnonymous = baseline is null ? [] : store.AnonymousCode(baseline.Id);
        var (result, firstSeen) = Compare(sweep, references, knownAnonymous, baseline);
        if (recordFirstSeen && firstSeen.Count > 0) store.AddCodePages(firstSeen, "first use");
        return result;
    }

    /// <summary>Judges one sweep against the references by (file, offset), which it extends with what it sees first;
    /// returns the result and the (file, offset) references seen for the first time, for the caller to record.</summary>
    public static (ProcessCodeResult Result, IReadOnlyList<(string File, ulong Offset, byte[] Sha256)> FirstSeen) Compare(ProcessCodeSweep sweep,
        Dictionary<(string File, ulong Offset), (byte[] Sha256, string Source)> references, IReadOnlySet<AnonymousCodeKey> knownAnonymous, BaselineInfo? baseline)
    {
        int known = 0;
        var findings = new List<Finding>();
        var firstSeen = new List<(string, ulong, byte[])>();
        int compared = 0;
        var differs = new List<(int Page, (byte[] Sha256, string Source) Reference)>();
        for (int i = 0; i < sweep.Pages.Count; i++)
        {
            var page = sweep.Pages[i];
            if (!references.TryGetValue((page.File, page.FileOffset), out var reference))
            {
                firstSeen.Add((page.File, page.FileOffset, page.Sha256));
                references[(page.File, page.FileOffset)] = (page.Sha256, "first use");
                continue;
            }
            compared++;
            if (!reference.Sha256.AsSpan().SequenceEqual(page.Sha256)) differs.Add((i, reference));
        }
        if (differs.Count > 0)
        {
            // Back to the processes: every mapping of a page that differs is its own finding, in sweep order.
            var byPage = differs.ToDictionary(d => d.Page, d => d.Reference);
            foreach (var m in sweep.Mappings)
            {
                if (!byPage.TryGetValue(m.Page, out var reference)) continue;
                var (process, page) = (sweep.Processes[m.Process], sweep.Pages[m.Page]);
                findings.Add(new Finding
                {
                    Region = RegionName, Kind = RegionKind.ProcessCode, VirtualAddress = m.VirtualAddress, PhysicalAddress = page.PhysicalAddress,
                    Location = $"pid {process.Pid} ({process.Comm}) {page.File}+0x{page.FileOffset:x}",
                    Expected = reference.Sha256, Found = page.Sha256, Classification = Classifications.ProcessCodeModified, Severity = Severity.Critical,
                    Detail = $"code page of {page.File} at file offset 0x{page.FileOffset:x} differs from its {reference.Source} reference",
                });
            }
        }
        foreach (var anon in sweep.Anonymous)
        {
            if (knownAnonymous.Contains(anon.Key)) { known++; continue; }
            findings.Add(new Finding
            {
                Region = RegionName, Kind = RegionKind.ProcessCode, VirtualAddress = anon.Vma.Start,
                Location = $"pid {anon.Pid} ({anon.Comm}) {anon.Vma.Start:x}-{anon.Vma.End:x} {anon.Vma.Permissions}",
                Expected = [], Found = [], Classification = Classifications.AnonymousCode, Severity = Severity.Warning,
                Detail = baseline is null ? "executable memory backed by no file (JIT, or injected code)"
                    : $"executable memory backed by no file (JIT, or injected code), not in baseline {baseline.Id} as it is now ({anon.ResidentPages} resident pages, content sha256 {anon.Key.ContentSha256[..16]}…)",
            });
        }
        return (new ProcessCodeResult(findings, compared, firstSeen.Count, sweep.NotResident, sweep.Bytes, known, sweep.Incomplete, sweep.Mappings.Count, sweep.SharedMappings)
            { SweepTime = sweep.Elapsed, HashTime = sweep.HashTime }, firstSeen);
    }
}
