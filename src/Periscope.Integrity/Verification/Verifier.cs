using System.Buffers.Binary;
using System.Diagnostics;
using System.Security.Cryptography;
using Periscope.Integrity.Baselines;
using Periscope.Integrity.Measurement;
using Periscope.Integrity.Regions;
using Periscope.Linux;

namespace Periscope.Integrity.Verification;

public sealed record VerificationResult(IReadOnlyList<Finding> Findings, int RegionsChecked, int PagesChecked, long BytesChecked, double Milliseconds)
{
    public bool Clean => Findings.All(f => f.Severity != Severity.Critical);
}

/// <summary>
/// Re-measures the regions of a baseline and explains every difference: byte runs with addresses, symbol+offset,
/// expected and found bytes with disassembly, and a classification that tells legitimate run-time patching (static
/// keys, ftrace) from tampering. XxHash3 decides whether a page changed; SHA-256 is computed only for changed pages.
/// </summary>
public static class Verifier
{
    private const int MergeGap = 8;

    public static VerificationResult Verify(LinuxKernel kernel, StoredBaseline baseline, Func<MeasuredRegion, bool>? only = null)
    {
        var sw = Stopwatch.StartNew();
        var context = new CodeContext(kernel);
        var current = RegionCatalog.Kernel(kernel).ToDictionary(r => r.Name);
        var findings = new List<Finding>();
        int regions = 0, pages = 0;
        // Hash everything first, on all cores; explain differences afterwards.
        var toMeasure = baseline.Regions.Select(s => s.Region)
            .Where(r => (only is null || only(r)) && current.TryGetValue(r.Name, out var c) && c.Start == r.Start && c.Length == r.Length).ToList();
        var measuredNow = RegionMeasurer.MeasureAll(kernel.KernelSpace, toMeasure, sha256: false, keepContent: false).ToDictionary(m => m.Region.Name);
        long bytes = 0;
        foreach (var stored in baseline.Regions)
        {
            var region = stored.Region;
            if (only is not null && !only(region)) continue;
            if (!current.TryGetValue(region.Name, out var now))
            {
                findings.Add(RegionFinding(region, Classifications.RegionGone, Severity.Warning, $"{region.Name} is no longer present (module unloaded or hidden?)"));
                continue;
            }
            if (now.Start != region.Start || now.Length != region.Length)
            {
                findings.Add(RegionFinding(region, Classifications.RegionMoved, Severity.Warning, $"{region.Name} is now at 0x{now.Start:x}+0x{now.Length:x} (module reloaded?)"));
                continue;
            }
            regions++;
            var measured = measuredNow[region.Name];
            for (int i = 0; i < stored.Pages.Count && i < measured.Pages.Count; i++)
            {
                var before = stored.Pages[i];
                var after = measured.Pages[i];
                pages++;
                bytes += after.Length;
                if (before.Present && !after.Present)
                {
                    findings.Add(RegionFinding(region, Classifications.PageMissing, Severity.Critical, $"page at 0x{before.VirtualAddress:x} was mapped at baseline time") with { VirtualAddress = before.VirtualAddress });
                    continue;
                }
                if (!before.Present || !after.Present || before.XxHash3 == after.XxHash3) continue;
                var found = new byte[after.Length];
                kernel.KernelSpace.Read(after.VirtualAddress, found);
                var expected = before.Content;
                if (expected is null || expected.Length != found.Length)
                {
                    findings.Add(RegionFinding(region, region.IsCode ? Classifications.CodeModified : Classifications.DataModified, Severity.Critical,
                        $"page hash changed, SHA-256 now {Convert.ToHexStringLower(SHA256.HashData(found))}") with { VirtualAddress = after.VirtualAddress, PhysicalAddress = after.PhysicalAddress });
                    continue;
                }
                foreach (var (from, to) in DiffRuns(expected, found))
                    findings.AddRange(Explain(kernel, context, stored, region, after, expected, found, from, to));
            }
        }
        return new VerificationResult(WithoutOverlaps(findings, baseline), regions, pages, bytes, sw.Elapsed.TotalMilliseconds);
    }

    /// <summary>sys_call_table lies inside rodata and x64_sys_call inside kernel text: report a change once, under the
    /// specific region that explains it.</summary>
    private static List<Finding> WithoutOverlaps(List<Finding> findings, StoredBaseline baseline)
    {
        var specific = baseline.Regions.Select(r => r.Region).Where(r => r.Kind is RegionKind.SyscallTable or RegionKind.SyscallDispatcher or RegionKind.InterruptTable).ToList();
        return findings.Where(f => f.Kind is not (RegionKind.KernelText or RegionKind.KernelReadOnlyData)
            || !specific.Any(r => f.VirtualAddress >= r.Start && f.VirtualAddress < r.End)).ToList();
    }

    private static Finding RegionFinding(MeasuredRegion region, string classification, Severity severity, string detail) => new()
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

    private static IEnumerable<Finding> Explain(LinuxKernel kernel, CodeContext context, RegionMeasurement stored, MeasuredRegion region,
        PageMeasurement page, byte[] expectedPage, byte[] foundPage, int from, int to)
    {
        ulong va = page.VirtualAddress + (ulong)from;
        ulong? pa = page.PhysicalAddress + (ulong)from;
        switch (region.Kind)
        {
            case RegionKind.SyscallTable:
            case RegionKind.InterruptTable:
            {
                int entry = region.Kind == RegionKind.SyscallTable ? 8 : 16;
                ulong pageOffsetInRegion = page.VirtualAddress - region.Start;
                int first = (int)((pageOffsetInRegion + (ulong)from) / (ulong)entry), last = (int)((pageOffsetInRegion + (ulong)to - 1) / (ulong)entry);
                for (int index = first; index <= last; index++)
                {
                    int at = (int)((ulong)(index * entry) - pageOffsetInRegion);
                    if (at < 0 || at + entry > foundPage.Length) continue;
                    var before = expectedPage.AsSpan(at, entry);
                    var after = foundPage.AsSpan(at, entry);
                    if (before.SequenceEqual(after)) continue;
                    ulong oldTarget = region.Kind == RegionKind.SyscallTable ? BinaryPrimitives.ReadUInt64LittleEndian(before) : GateHandler(before);
                    ulong newTarget = region.Kind == RegionKind.SyscallTable ? BinaryPrimitives.ReadUInt64LittleEndian(after) : GateHandler(after);
                    string what = region.Kind == RegionKind.SyscallTable ? $"sys_call_table[{index}]" : $"IDT vector 0x{index:x2}";
                    yield return new Finding
                    {
                        Region = region.Name, Kind = region.Kind, VirtualAddress = region.Start + (ulong)(index * entry),
                        PhysicalAddress = page.PhysicalAddress + (ulong)at, Location = what,
                        Expected = before.ToArray(), Found = after.ToArray(),
                        Classification = region.Kind == RegionKind.SyscallTable ? Classifications.SyscallHooked : Classifications.InterruptGateChanged,
                        Severity = Severity.Critical,
                        Detail = $"{what}: {context.Describe(oldTarget)} (0x{oldTarget:x}) -> {context.Describe(newTarget)} (0x{newTarget:x})",
                    };
                }
                yield break;
            }
        }

        var expected = expectedPage[from..to];
        var found = foundPage[from..to];
        string classification = region.IsCode ? Classifications.CodeModified : Classifications.DataModified;
        var severity = Severity.Critical;
        string detail = "";
        string? expectedAsm = null, foundAsm = null;
        if (region.IsCode)
        {
            (classification, severity, detail) = ClassifyCode(kernel, context, va, (ulong)(to - from));
            (expectedAsm, foundAsm) = DisassembleBoth(kernel, context, stored, va, va + (ulong)(to - from));
        }
        yield return new Finding
        {
            Region = region.Name, Kind = region.Kind, VirtualAddress = va, PhysicalAddress = pa, Location = context.Describe(va),
            Expected = expected, Found = found, ExpectedDisassembly = expectedAsm, FoundDisassembly = foundAsm,
            Classification = classification, Severity = severity, Detail = detail,
        };
    }

    private static (string, Severity, string) ClassifyCode(LinuxKernel kernel, CodeContext context, ulong va, ulong length)
    {
        var now = new byte[5];
        if (context.TryGetJumpSite(va, va + length, out ulong site, out ulong target))
        {
            kernel.KernelSpace.Read(site, now);
            if (CodeContext.IsNop(now) || CodeContext.BranchTarget(now, site) == target)
                return (Classifications.StaticKeyFlipped, Severity.Info, $"jump label at {context.Describe(site)} now {(CodeContext.IsNop(now) ? "a NOP" : $"jumps to {context.Describe(target)}")}");
        }
        // Static calls: inline call sites (from the kernel's own site table) and the __SCT__ trampolines they default to.
        string? symbol = context.SymbolName(va);
        bool trampoline = symbol is not null && symbol.StartsWith("__SCT__", StringComparison.Ordinal);
        if (context.TryGetStaticCallSite(va, va + length, out ulong staticSite) || trampoline)
        {
            ulong at = trampoline ? context.FunctionStart(va) : staticSite;
            kernel.KernelSpace.Read(at, now);
            ulong? to = CodeContext.BranchTarget(now, at);
            if (to is { } t && !context.IsKnownCode(t))
                return (Classifications.StaticCallHijacked, Severity.Critical, $"static call at {context.Describe(at)} now goes to 0x{t:x}, outside kernel text and modules");
            string what = to is { } dest ? $"now goes to {context.Describe(dest)}" : CodeContext.IsNop(now) ? "now a NOP" : $"now {Convert.ToHexStringLower(now)}";
            return (Classifications.StaticCallUpdated, Severity.Info, $"{(trampoline ? "static call trampoline" : "static call site")} {context.Describe(at)} {what}");
        }
        // ftrace's own dispatch points inside ftrace_caller/ftrace_regs_caller are repointed as tracers come and go.
        if (symbol is "ftrace_call" or "ftrace_regs_call" or "ftrace_caller" or "ftrace_regs_caller")
        {
            return (Classifications.FtraceDispatcher, Severity.Info, $"{context.Describe(va)} repointed by ftrace");
        }
        // ftrace call sites sit at a function's first instruction, or right after its ENDBR64 (IBT kernels).
        ulong fn = context.FunctionStart(va);
        foreach (ulong callSite in new[] { fn, fn + 4 })
        {
            if (va < callSite || va + length > callSite + 5) continue;
            kernel.KernelSpace.Read(callSite, now);
            if (CodeContext.BranchTarget(now, callSite) is { } callee && now[0] == 0xe8)
            {
                string? owner = context.FtraceOwner(callee);
                return owner is null
                    ? (Classifications.FunctionHooked, Severity.Critical, $"{context.Describe(fn)} now calls 0x{callee:x}, which no module or kernel ftrace code owns")
                    : (Classifications.FunctionTraced, Severity.Info, $"{context.Describe(fn)} now calls {context.Describe(callee)}, owned by {owner}");
            }
            if (CodeContext.IsNop(now)) return (Classifications.FunctionTraced, Severity.Info, $"ftrace call site of {context.Describe(fn)} back to a NOP");
        }
        return (Classifications.CodeModified, Severity.Critical, "");
    }

    private static (string?, string?) DisassembleBoth(LinuxKernel kernel, CodeContext context, RegionMeasurement stored, ulong from, ulong to)
    {
        ulong start = context.FunctionStart(from);
        if (from - start > 16 * 1024) start = from;
        ulong end = to + 16;
        var found = new byte[end - start];
        int n = kernel.KernelSpace.Read(start, found);
        if (n < found.Length) Array.Resize(ref found, n);
        var expected = found.ToArray();
        foreach (var p in stored.Pages)
        {
            if (p.Content is null || p.VirtualAddress >= end || p.VirtualAddress + (ulong)p.Length <= start) continue;
            ulong lo = Math.Max(start, p.VirtualAddress), hi = Math.Min(end, p.VirtualAddress + (ulong)p.Length);
            p.Content.AsSpan((int)(lo - p.VirtualAddress), (int)(hi - lo)).CopyTo(expected.AsSpan((int)(lo - start)));
        }
        return (CodeContext.Disassemble(expected, start, from, to), CodeContext.Disassemble(found, start, from, to));
    }

    /// <summary>An x86-64 interrupt gate's handler: offset bits 0–15 at +0, 16–31 at +6, 32–63 at +8.</summary>
    public static ulong GateHandler(ReadOnlySpan<byte> gate) =>
        BinaryPrimitives.ReadUInt16LittleEndian(gate) | ((ulong)BinaryPrimitives.ReadUInt16LittleEndian(gate[6..]) << 16)
        | ((ulong)BinaryPrimitives.ReadUInt32LittleEndian(gate[8..]) << 32);
}
