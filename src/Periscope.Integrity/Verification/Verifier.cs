using System.Buffers.Binary;
using System.Diagnostics;
using System.Security.Cryptography;
using Periscope.Integrity.Baselines;
using Periscope.Integrity.Evidence;
using Periscope.Integrity.Measurement;
using Periscope.Integrity.Regions;
using Periscope.Linux;

namespace Periscope.Integrity.Verification;

/// <summary>
/// Findings, what was checked, and what could not be (<see cref="Incomplete"/>: a region or evidence set that could
/// not be read or was refused by a limit). Clean means no critical finding; Complete means nothing was left out.
/// </summary>
public sealed record VerificationResult(IReadOnlyList<Finding> Findings, int RegionsChecked, int PagesChecked, long BytesChecked, double Milliseconds)
{
    public IReadOnlyList<string> Incomplete { get; init; } = [];
    /// <summary>Time of the kernel regions' hashing stage (XxHash3 of every page, on all cores), of <see cref="Milliseconds"/>.</summary>
    public TimeSpan RegionHashTime { get; init; }
    /// <summary>Time collecting the current evidence (symbols, allow-lists) that differences are judged with.</summary>
    public TimeSpan EvidenceTime { get; init; }
    public bool Clean => Findings.All(f => f.Severity != Severity.Critical);
    public bool Complete => Incomplete.Count == 0;
}

/// <summary>
/// Re-measures the regions of a baseline, collects the current evidence, and hands every difference to the
/// <see cref="Judge"/> with the bytes around it. XxHash3 decides whether a page changed; only changed pages are read
/// again. Regions are matched by <see cref="RegionKey"/> (kind, name, start), so two modules of one name are two regions.
/// </summary>
public static class Verifier
{
    private const int MergeGap = 8;
    /// <summary>Bytes on each side of a changed run given to the judge: a 5-byte instruction the run only partly covers.</summary>
    private const int WindowMargin = 8;
    private const int PageSize = 4096;

    /// <summary>Verification without stored evidence (older callers): every code change is judged against nothing,
    /// and the result says it is incomplete.</summary>
    public static VerificationResult Verify(LinuxKernel kernel, StoredBaseline baseline, Func<MeasuredRegion, bool>? only = null) =>
        Verify(kernel, baseline, null, only);

    public static VerificationResult Verify(LinuxKernel kernel, StoredBaseline baseline, EvidenceSnapshot? baselineEvidence, Func<MeasuredRegion, bool>? only = null)
    {
        var sw = Stopwatch.StartNew();
        var incomplete = new List<string>();
        long evidenceStart = Stopwatch.GetTimestamp();
        var currentEvidence = EvidenceCollector.Collect(kernel);
        var evidenceTime = Stopwatch.GetElapsedTime(evidenceStart);
        if (baselineEvidence is null) incomplete.Add("the baseline holds no evidence (allow-lists); no code change can be judged legitimate");
        var before = new EvidenceIndex(baselineEvidence ?? new EvidenceSnapshot());
        var now = new EvidenceIndex(currentEvidence);
        incomplete.AddRange(currentEvidence.Gaps.Select(g => $"current evidence, {g}"));
        if (baselineEvidence is not null) incomplete.AddRange(baselineEvidence.Gaps.Select(g => $"baseline evidence, {g}"));

        var catalog = RegionCatalog.Catalog(kernel);
        incomplete.AddRange(catalog.Skipped.Select(s => $"region skipped now: {s.Reason}"));
        var skippedNow = catalog.Skipped.Where(s => s.Region is not null).Select(s => s.Region!.Key).ToHashSet();
        var current = new Dictionary<RegionKey, MeasuredRegion>();
        foreach (var r in catalog.Regions) current.TryAdd(r.Key, r);
        var findings = new List<Finding>();
        var toCheck = new List<RegionMeasurement>();
        var seen = new HashSet<RegionKey>();
        foreach (var stored in baseline.Regions)
        {
            var region = stored.Region;
            if (only is not null && !only(region)) continue;
            if (!seen.Add(region.Key)) { incomplete.Add($"baseline lists region {region.Name} at 0x{region.Start:x} twice; the second is ignored"); continue; }
            if (current.ContainsKey(region.Key))
            {
                if (ValidatePages(stored) is { } bad) incomplete.Add(bad);
                else toCheck.Add(stored);
                continue;
            }
            // Not gone: refused by a limit or an inconsistent layout (start unknown: 0), reported as incomplete.
            if (skippedNow.Contains(region.Key) || skippedNow.Contains(region.Key with { Start = 0 })) continue;
            var moved = catalog.Regions.FirstOrDefault(c => c.Kind == region.Kind && c.Name == region.Name && !baseline.Regions.Any(b => b.Region.Key == c.Key));
            findings.Add(moved is not null
                ? RegionFinding(region, Classification.RegionMoved, Severity.Warning, $"{region.Name} is now at 0x{moved.Start:x}+0x{moved.Length:x} (module reloaded?)")
                : RegionFinding(region, Classification.RegionGone, Severity.Warning, $"{region.Name} at 0x{region.Start:x} is no longer present (module unloaded or hidden?)"));
        }

        // Hash everything first, on all cores; explain differences afterwards.
        long hashStart = Stopwatch.GetTimestamp();
        var measuredNow = RegionMeasurer.MeasureAll(kernel.KernelSpace, toCheck.Select(s => s.Region).ToList(), sha256: false, keepContent: false);
        var hashTime = Stopwatch.GetElapsedTime(hashStart);
        int pages = 0;
        long bytes = 0;
        for (int r = 0; r < toCheck.Count; r++)
        {
            var stored = toCheck[r];
            var region = stored.Region;
            var measured = measuredNow[r];
            for (int i = 0; i < stored.Pages.Count && i < measured.Pages.Count; i++)
            {
                var was = stored.Pages[i];
                var after = measured.Pages[i];
                pages++;
                bytes += after.Length;
                if (was.Present && !after.Present)
                {
                    findings.Add(RegionFinding(region, Classification.PageMissing, Severity.Critical, $"page at 0x{was.VirtualAddress:x} was mapped at baseline time") with { VirtualAddress = was.VirtualAddress });
                    continue;
                }
                if (!was.Present || !after.Present || was.XxHash3 == after.XxHash3) continue;
                var found = new byte[after.Length];
                if (kernel.KernelSpace.Read(after.VirtualAddress, found) != found.Length)
                {
                    incomplete.Add($"{region.Name}: page at 0x{after.VirtualAddress:x} changed but could not be read again");
                    continue;
                }
                var expected = was.Content;
                if (expected is null || expected.Length != found.Length)
                {
                    findings.Add(RegionFinding(region, region.IsCode ? Classification.CodeModified : Classification.DataModified, Severity.Critical,
                        $"page hash changed, SHA-256 now {Convert.ToHexStringLower(SHA256.HashData(found))}") with { VirtualAddress = after.VirtualAddress, PhysicalAddress = after.PhysicalAddress });
                    continue;
                }
                foreach (var (from, to) in DiffRuns(expected, found))
                    findings.AddRange(Explain(kernel, before, now, stored, region, after, expected, found, from, to));
            }
        }
        findings = WithoutOverlaps(findings, baseline);
        if (baselineEvidence is not null) findings.AddRange(Judge.AllowListChanges(before, now));
        return new VerificationResult(findings, toCheck.Count, pages, bytes, sw.Elapsed.TotalMilliseconds)
            { Incomplete = incomplete, RegionHashTime = hashTime, EvidenceTime = evidenceTime };
    }

    /// <summary>Stored pages must tile the region as the measurer cuts it (page i at its VA, at most one page long, content
    /// as long as the page): a hostile or corrupt database gets a reason, not an index past a buffer.</summary>
    public static string? ValidatePages(RegionMeasurement stored)
    {
        var region = stored.Region;
        ulong firstPage = region.Start & ~0xfffUL;
        for (int i = 0; i < stored.Pages.Count; i++)
        {
            var p = stored.Pages[i];
            ulong va = i == 0 ? region.Start : firstPage + (ulong)i * PageSize;
            ulong end = Math.Min((va & ~0xfffUL) + PageSize, region.End);
            // Content not loaded yet is checked against the length when it is loaded (BaselineStore): not decompressed here.
            if (p.Index != i || p.VirtualAddress != va || p.Length <= 0 || (ulong)p.Length != end - va || p.ContentIfLoaded is { } c && c.Length != p.Length)
                return $"baseline region {region.Name}: stored page {i} (index {p.Index}, va 0x{p.VirtualAddress:x}, length {p.Length}, content {p.ContentIfLoaded?.Length.ToString() ?? (p.ContentPending ? "not loaded" : "none")}) does not match the region's page at 0x{va:x} of {end - va} bytes; region not verified";
        }
        if ((ulong)stored.Pages.Count != (region.End - firstPage + PageSize - 1) / PageSize)
            return $"baseline region {region.Name}: {stored.Pages.Count} stored pages for {region.Length} bytes; region not verified";
        return null;
    }

    /// <summary>sys_call_table lies inside rodata and x64_sys_call inside kernel text: report a change once, under the
    /// specific region that explains it.</summary>
    private static List<Finding> WithoutOverlaps(List<Finding> findings, StoredBaseline baseline)
    {
        var specific = baseline.Regions.Select(r => r.Region).Where(r => r.Kind is RegionKind.SyscallTable or RegionKind.SyscallDispatcher or RegionKind.InterruptTable).ToList();
        return findings.Where(f => f.Kind is not (RegionKind.KernelText or RegionKind.KernelReadOnlyData)
            || !specific.Any(r => f.VirtualAddress >= r.Start && f.VirtualAddress < r.End)).ToList();
    }

    private static Finding RegionFinding(MeasuredRegion region, Classification classification, Severity severity, string detail) => new()
    {
        Region = region.Name, Kind = region.Kind, VirtualAddress = region.Start, Location = region.Name,
        Expected = [], Found = [], Classification = classification, Severity = severity, Detail = detail,
    };

    /// <summary>Runs of differing bytes, merging runs separated by fewer than <see cref="MergeGap"/> equal bytes.</summary>
    public static IEnumerable<(int From, int To)> DiffRuns(byte[] expected, byte[] found)
    {
        int n = Math.Min(expected.Length, found.Length), i = 0;
        while (i < n)
        {
            int same = expected.AsSpan(i, n - i).CommonPrefixLength(found.AsSpan(i, n - i));
            if (i + same >= n) yield break;
            int start = i + same, end = start;
            while (true)
            {
                while (end < n && expected[end] != found[end]) end++;
                if (end >= n) break;
                int gap = expected.AsSpan(end, n - end).CommonPrefixLength(found.AsSpan(end, n - end));
                if (gap >= MergeGap || end + gap >= n) break;
                end += gap;
            }
            yield return (start, end);
            i = end;
        }
    }

    private static IEnumerable<Finding> Explain(LinuxKernel kernel, EvidenceIndex before, EvidenceIndex now, RegionMeasurement stored, MeasuredRegion region,
        PageMeasurement page, byte[] expectedPage, byte[] foundPage, int from, int to)
    {
        ulong va = page.VirtualAddress + (ulong)from;
        ulong? pa = page.PhysicalAddress + (ulong)from;
        if (region.Kind is RegionKind.SyscallTable or RegionKind.InterruptTable)
        {
            // Entries are the guest's words (4 bytes on i386) and gates two words (8 bytes on i386, 16 on x86-64).
            int word = kernel.Reader.PointerSize;
            int entry = region.Kind == RegionKind.SyscallTable ? word : 2 * word;
            ulong pageOffsetInRegion = page.VirtualAddress - region.Start;
            ulong first = (pageOffsetInRegion + (ulong)from) / (ulong)entry, last = (pageOffsetInRegion + (ulong)to - 1) / (ulong)entry;
            for (ulong index = first; index <= last; index++)
            {
                long at = (long)(index * (ulong)entry) - (long)pageOffsetInRegion;
                if (at < 0 || at + entry > foundPage.Length) continue;
                var was = expectedPage.AsSpan((int)at, entry);
                var after = foundPage.AsSpan((int)at, entry);
                if (was.SequenceEqual(after)) continue;
                ulong oldTarget = region.Kind == RegionKind.SyscallTable ? Word(was) : GateHandler(was);
                ulong newTarget = region.Kind == RegionKind.SyscallTable ? Word(after) : GateHandler(after);
                string what = region.Kind == RegionKind.SyscallTable ? $"{region.Name}[{index}]" : $"IDT vector 0x{index:x2}";
                var verdict = Judge.TableEntry(before, now, region.Kind, what, oldTarget, newTarget);
                yield return new Finding
                {
                    Region = region.Name, Kind = region.Kind, VirtualAddress = region.Start + index * (ulong)entry,
                    PhysicalAddress = page.PhysicalAddress + (ulong)at, Location = what, Expected = was.ToArray(), Found = after.ToArray(),
                    Classification = verdict.Classification, Severity = verdict.Severity, Detail = verdict.Detail, Destination = verdict.Destination,
                };
            }
            yield break;
        }

        var expected = expectedPage[from..to];
        var found = foundPage[from..to];
        var verdictCode = region.IsCode
            ? Judge.Code(before, now, Window(kernel, stored, va, va + (ulong)(to - from)))
            : new Verdict(Classification.DataModified, Severity.Critical, "");
        string? expectedAsm = null, foundAsm = null;
        if (region.IsCode) (expectedAsm, foundAsm) = DisassembleBoth(kernel, new CodeContextNames(before), stored, va, va + (ulong)(to - from));
        yield return new Finding
        {
            Region = region.Name, Kind = region.Kind, VirtualAddress = va, PhysicalAddress = pa, Location = now.ModuleAt(va) is null && before.Snapshot.Symbols.Count > 0 ? before.Describe(va) : now.Describe(va),
            Expected = expected, Found = found, ExpectedDisassembly = expectedAsm, FoundDisassembly = foundAsm,
            Classification = verdictCode.Classification, Severity = verdictCode.Severity, Detail = verdictCode.Detail, Destination = verdictCode.Destination,
        };
    }

    /// <summary>The judge's window around [from, to): current bytes read now, baseline bytes from the stored pages (where
    /// the baseline kept no content, the current bytes stand in, so only the run itself counts as changed).</summary>
    private static CodeWindow Window(LinuxKernel kernel, RegionMeasurement stored, ulong from, ulong to)
    {
        ulong start = from - WindowMargin, end = to + WindowMargin;
        var found = new byte[end - start];
        int n = kernel.KernelSpace.Read(start, found);
        if (n < found.Length) Array.Resize(ref found, n);
        var expected = found.ToArray();
        CopyStored(stored.Pages, start, expected);
        return new CodeWindow(start, expected, found, from, to);
    }

    /// <summary>Copies the stored content overlapping [start, start + into.Length) into <paramref name="into"/>, never
    /// past either buffer: page lengths and content lengths come from a database file and are not trusted.</summary>
    public static void CopyStored(IReadOnlyList<PageMeasurement> pages, ulong start, Span<byte> into)
    {
        ulong end = start + (ulong)into.Length;
        foreach (var p in pages)
        {
            // Overlap first: the content of a lazily loaded page is decompressed only when it is needed.
            if (p.Length <= 0 || p.Length > PageSize || p.VirtualAddress >= end || p.VirtualAddress + (ulong)p.Length <= start) continue;
            if (p.Content is not { } content || content.Length != p.Length) continue;
            ulong lo = Math.Max(start, p.VirtualAddress), hi = Math.Min(end, p.VirtualAddress + (ulong)p.Length);
            content.AsSpan((int)(lo - p.VirtualAddress), (int)(hi - lo)).CopyTo(into[(int)(lo - start)..]);
        }
    }

    private static (string?, string?) DisassembleBoth(LinuxKernel kernel, CodeContextNames names, RegionMeasurement stored, ulong from, ulong to)
    {
        ulong start = names.FunctionStart(from);
        if (from - start > 16 * 1024) start = from;
        ulong end = to + 16;
        var found = new byte[end - start];
        int n = kernel.KernelSpace.Read(start, found);
        if (n < found.Length) Array.Resize(ref found, n);
        var expected = found.ToArray();
        CopyStored(stored.Pages, start, expected);
        return (CodeContext.Disassemble(expected, start, from, to), CodeContext.Disassemble(found, start, from, to));
    }

    /// <summary>Function starts for disassembly, from the baseline's symbols.</summary>
    private sealed class CodeContextNames(EvidenceIndex index)
    {
        public ulong FunctionStart(ulong va) => index.TryFindSymbol(va, out var s) ? s.Address : va;
    }

    /// <summary>An x86-64 interrupt gate's handler: offset bits 0–15 at +0, 16–31 at +6, 32–63 at +8.</summary>
    /// <summary>The handler of an interrupt gate: offset bits 0-15 and 16-31 at bytes 0 and 6, and on x86-64 (16-byte
    /// gates) bits 32-63 at byte 8; an i386 gate is 8 bytes.</summary>
    public static ulong GateHandler(ReadOnlySpan<byte> gate) =>
        BinaryPrimitives.ReadUInt16LittleEndian(gate) | ((ulong)BinaryPrimitives.ReadUInt16LittleEndian(gate[6..]) << 16)
        | (gate.Length >= 16 ? (ulong)BinaryPrimitives.ReadUInt32LittleEndian(gate[8..]) << 32 : 0);

    private static ulong Word(ReadOnlySpan<byte> word) =>
        word.Length == 4 ? BinaryPrimitives.ReadUInt32LittleEndian(word) : BinaryPrimitives.ReadUInt64LittleEndian(word);
}
