using System.Buffers.Binary;
using Periscope.Integrity.Evidence;
using Periscope.Integrity.Regions;

namespace Periscope.Integrity.Verification;

/// <summary>A judged change: what it is, how bad, why, and where control now goes.</summary>
public sealed record Verdict(Classification Classification, Severity Severity, string Detail, ControlTarget? Destination = null);

/// <summary>
/// Bytes around one changed run of code: [Start, Start + Expected.Length) as the baseline recorded them and as they
/// are now; the run itself is [From, To). The window reaches a few bytes past the run on both sides, so a rule can
/// read a whole 5-byte instruction that the run only partly covers.
/// </summary>
public sealed record CodeWindow(ulong Start, byte[] Expected, byte[] Found, ulong From, ulong To)
{
    public bool TryFound(ulong va, int length, out ReadOnlySpan<byte> bytes) => TrySlice(Found, va, length, out bytes);
    public bool TryExpected(ulong va, int length, out ReadOnlySpan<byte> bytes) => TrySlice(Expected, va, length, out bytes);

    private bool TrySlice(byte[] data, ulong va, int length, out ReadOnlySpan<byte> bytes)
    {
        bytes = default;
        if (va < Start || va - Start > (ulong)data.Length || (ulong)data.Length - (va - Start) < (ulong)length) return false;
        bytes = data.AsSpan((int)(va - Start), length);
        return true;
    }
}

/// <summary>
/// The judge: a pure function of the baseline's evidence, the current evidence and the changed bytes. A change is
/// benign only when it is a transition the kernel itself makes, checked byte for byte against what the BASELINE
/// recorded (jump-label targets, static-call sites, ftrace records, ftrace entry patch sites); the current evidence is
/// consulted only for what must be current (listed modules, registered ftrace_ops), and its own changes are reported
/// by <see cref="AllowListChanges"/>. Anything else is critical, and names where control now goes.
/// </summary>
public static class Judge
{
    // The NOPs the kernel patches in (x86_nops[], arch/x86/include/asm/nops.h): the 64-bit ones, and the 32-bit ones an
    // i386 kernel uses ("ds lea esi,[esi+0]" and "mov esi,esi"), which are not NOPs in 64-bit mode.
    public static ReadOnlySpan<byte> Nop5 => [0x0f, 0x1f, 0x44, 0x00, 0x00];
    public static ReadOnlySpan<byte> Nop2 => [0x66, 0x90];
    public static ReadOnlySpan<byte> Nop5I386 => [0x3e, 0x8d, 0x74, 0x26, 0x00];
    public static ReadOnlySpan<byte> Nop2I386 => [0x89, 0xf6];

    private static ReadOnlySpan<byte> Nop5Of(EvidenceIndex e) => e.Snapshot.Is32Bit ? Nop5I386 : Nop5;
    private static ReadOnlySpan<byte> Nop2Of(EvidenceIndex e) => e.Snapshot.Is32Bit ? Nop2I386 : Nop2;
    /// <summary>static_call to __static_call_return0 on an inline site: "cs cs cs xor eax, eax".</summary>
    public static ReadOnlySpan<byte> XorEax5 => [0x2e, 0x2e, 0x2e, 0x31, 0xc0];
    /// <summary>A static-call trampoline set to NULL without return thunks: "ret; int3 × 4".</summary>
    public static ReadOnlySpan<byte> Ret5 => [0xc3, 0xcc, 0xcc, 0xcc, 0xcc];

    /// <summary>
    /// Judges one changed run of kernel or module text. A run may span several sites the kernel patched at once
    /// (neighbouring static-call trampolines, a jump label next to a static call): each differing byte must be
    /// explained by a site that covers it, and the run is as bad as its worst part.
    /// </summary>
    public static Verdict Code(EvidenceIndex baseline, EvidenceIndex current, CodeWindow w)
    {
        var verdicts = new List<Verdict>();
        for (ulong p = w.From; p < w.To;)
        {
            if (!Differs(w, p)) { p++; continue; }
            var (verdict, end) = At(baseline, current, w, p);
            if (verdict.Severity == Severity.Critical) return verdict;
            verdicts.Add(verdict);
            p = Math.Max(end, p + 1);
        }
        if (verdicts.Count == 0) return Unexplained(current, w, w.From);
        return verdicts.Count == 1 ? verdicts[0] : verdicts[0] with { Detail = string.Join("; ", verdicts.Select(v => v.Detail)) };
    }

    private static bool Differs(CodeWindow w, ulong va) =>
        !w.TryExpected(va, 1, out var e) || !w.TryFound(va, 1, out var f) || e[0] != f[0];

    /// <summary>The verdict for the site covering the changed byte at <paramref name="p"/>, and where that site ends.</summary>
    private static (Verdict, ulong End) At(EvidenceIndex baseline, EvidenceIndex current, CodeWindow w, ulong p)
    {
        if (baseline.Snapshot.FtraceEntryCode.FirstOrDefault(r => r.Contains(p)) is { Name: not null } entry)
            return FtraceEntry(baseline, current, w, entry, p);
        for (ulong c = p >= 4 ? p - 4 : 0; c <= p; c++)
        {
            if (baseline.TryGetJumpTarget(c, out ulong recorded) && JumpLabel(baseline, current, w, c, recorded, p) is { } jump) return jump;
            if (baseline.IsStaticCallSite(c)) return (StaticCall(baseline, current, w, c, "static call site"), c + 5);
            if (baseline.IsFtraceSite(c)) return (FtraceSite(baseline, current, w, c), c + 5);
        }
        if (baseline.TryFindSymbol(p, out var sym) && sym.Module == 0 && sym.Name.StartsWith("__SCT__", StringComparison.Ordinal) && p < sym.Address + 5)
            return (StaticCall(baseline, current, w, sym.Address, $"static call trampoline {sym.Name}"), sym.Address + 5);
        if (BpfJitPatchSite(current, w, p) is { } jit) return jit;
        return (Unexplained(current, w, p), w.To);
    }

    private static Verdict Unexplained(EvidenceIndex current, CodeWindow w, ulong p)
    {
        var dest = BranchAt(w, p) is { } t ? current.Resolve(t) : null;
        return new Verdict(Classification.CodeModified, Severity.Critical,
            dest is null ? "not a transition the kernel makes" : $"not a transition the kernel makes; now branches to {dest}", dest);
    }

    /// <summary>Jump label: toggled between its recorded NOP (2 or 5 bytes) and a jump of the same length to its
    /// recorded target. Null when <paramref name="p"/> lies past the site.</summary>
    private static (Verdict, ulong)? JumpLabel(EvidenceIndex baseline, EvidenceIndex current, CodeWindow w, ulong site, ulong recorded, ulong p)
    {
        if (!w.TryExpected(site, 2, out var head)) return null;
        int length = head[0] is 0xeb || head.SequenceEqual(Nop2Of(baseline)) ? 2 : 5;
        ulong end = site + (ulong)length;
        if (p >= end) return null;
        string where = baseline.Describe(site);
        if (!w.TryFound(site, length, out var now))
            return (new Verdict(Classification.JumpLabelRetargeted, Severity.Critical, $"jump label at {where}: changed bytes cannot be read whole"), end);
        if (now.SequenceEqual(length == 2 ? Nop2Of(baseline) : Nop5Of(baseline)))
            return (new Verdict(Classification.StaticKeyFlipped, Severity.Info, $"jump label at {where} is now its NOP"), end);
        ulong? target = Branch(now, site, jumpOnly: true);
        if (target == recorded)
            return (new Verdict(Classification.StaticKeyFlipped, Severity.Info, $"jump label at {where} now jumps to its recorded target {baseline.Describe(recorded)}", current.Resolve(recorded)), end);
        var dest = Branch(now, site, jumpOnly: false) is { } t ? current.Resolve(t) : null;
        return (new Verdict(Classification.JumpLabelRetargeted, Severity.Critical,
            $"jump label at {where} now {(dest is null ? $"holds {Convert.ToHexStringLower(now)}" : $"goes to {dest}")}, not its NOP or its recorded target {baseline.Describe(recorded)}", dest), end);
    }

    /// <summary>Static call: a call or jump to the START of a function in kernel text or a listed module, or the
    /// kernel's own "disabled" (NOP, RET) and "return 0" forms.</summary>
    private static Verdict StaticCall(EvidenceIndex baseline, EvidenceIndex current, CodeWindow w, ulong site, string what)
    {
        string where = $"{what} {baseline.Describe(site)}";
        if (!w.TryFound(site, 5, out var now))
            return new Verdict(Classification.StaticCallHijacked, Severity.Critical, $"{where}: changed bytes cannot be read whole");
        if (now.SequenceEqual(Nop5Of(baseline)) || now.SequenceEqual(Ret5) || now.SequenceEqual(XorEax5))
            return new Verdict(Classification.StaticCallUpdated, Severity.Info, $"{where} now {(now[0] == 0x2e ? "returns 0" : "disabled")}");
        if (Branch(now, site, jumpOnly: false) is not { } target || now[0] is not (0xe8 or 0xe9))
            return new Verdict(Classification.StaticCallHijacked, Severity.Critical, $"{where} now holds {Convert.ToHexStringLower(now)}");
        var dest = current.Resolve(target);
        bool start = baseline.InKernelText(target) ? baseline.IsFunctionStart(target) : current.IsFunctionStart(target);
        return start
            ? new Verdict(Classification.StaticCallUpdated, Severity.Info, $"{where} now goes to {dest}", dest)
            : new Verdict(Classification.StaticCallHijacked, Severity.Critical, $"{where} now goes to {dest}, which is not the start of a function in kernel text or a listed module", dest);
    }

    /// <summary>ftrace site (a recorded dyn_ftrace ip): NOP, or a call to ftrace entry code, or to the trampoline of an
    /// ftrace_ops registered now by kernel code or a listed module.</summary>
    private static Verdict FtraceSite(EvidenceIndex baseline, EvidenceIndex current, CodeWindow w, ulong site)
    {
        string fn = baseline.Describe(site);
        if (!w.TryFound(site, 5, out var now))
            return new Verdict(Classification.FunctionHooked, Severity.Critical, $"ftrace site of {fn}: changed bytes cannot be read whole");
        if (now.SequenceEqual(Nop5Of(baseline))) return new Verdict(Classification.FunctionTraced, Severity.Info, $"ftrace site of {fn} is a NOP again");
        if (Branch(now, site, jumpOnly: false) is not { } target)
            return new Verdict(Classification.CodeModified, Severity.Critical, $"ftrace site of {fn} now holds {Convert.ToHexStringLower(now)}, not a NOP or a call");
        var dest = current.Resolve(target);
        if (now[0] != 0xe8)
            return new Verdict(Classification.FunctionHooked, Severity.Critical, $"ftrace site of {fn} now jumps to {dest}; ftrace only ever writes a call", dest);
        if (baseline.Snapshot.FtraceEntryCode.Any(r => r.Start == target))
            return new Verdict(Classification.FunctionTraced, Severity.Info, $"{fn} now calls {dest} (ftrace entry code)", dest);
        foreach (var ops in current.Snapshot.FtraceOps)
        {
            if (ops.Trampoline != target || ops.TrampolineSize == 0) continue;
            var owner = current.Resolve(ops.Func);
            if (owner.Owner is CodeOwnerKind.KernelText or CodeOwnerKind.ListedModule)
                return new Verdict(Classification.FunctionTraced, Severity.Info,
                    $"{fn} now calls the ftrace trampoline at 0x{target:x} of ftrace_ops 0x{ops.Address:x}, owned by {(owner.Module is { } m ? $"module {m.Name}" : "the kernel")} (callback {owner})", dest);
            return new Verdict(Classification.FunctionHooked, Severity.Critical,
                $"{fn} now calls the ftrace trampoline at 0x{target:x} of ftrace_ops 0x{ops.Address:x}, whose callback is {owner}", owner);
        }
        if (BpfTrampolineCall(current, site, target, dest, fn) is { } bpf) return bpf;
        return new Verdict(Classification.FunctionHooked, Severity.Critical,
            $"{fn} now calls {dest}: neither ftrace entry code, nor the trampoline of a registered ftrace_ops, nor the image of a bpf trampoline", dest);
    }

    /// <summary>endbr64's length: with IBT a function starts with endbr64 and its ftrace site follows it.</summary>
    private const ulong EndbrLength = 4;
    private static ReadOnlySpan<byte> Endbr64 => [0xf3, 0x0f, 0x1e, 0xfa];

    /// <summary>
    /// fentry, fexit, fmod_ret, LSM and freplace programs: the kernel attaches them by writing exactly "call IMAGE" at
    /// the traced function's ftrace site (an ftrace direct call, or bpf_arch_text_poke), IMAGE being the current image
    /// of the bpf_trampoline that trampoline_table holds for that function. The call is explained only when that holds
    /// word for word: one trampoline of the table has this image, it is the trampoline of this very function, the image
    /// is trampoline memory (no kernel text, no module, listed or hidden; the start of its own "bpf_trampoline_" kallsyms
    /// entry), and it carries programs. Even then it is not benign: a program attached since the baseline is at least a
    /// warning, and critical when prog_idr does not list it (hidden from bpftool). Null when no trampoline of the table
    /// has this image (the caller reports an unexplained call).
    /// </summary>
    private static Verdict? BpfTrampolineCall(EvidenceIndex current, ulong site, ulong target, ControlTarget dest, string fn)
    {
        var matches = current.Snapshot.BpfTrampolines.Where(t => t.Image == target && target != 0).ToList();
        if (matches.Count == 0) return null;
        var t = matches[0];
        string which = $"bpf trampoline 0x{t.Address:x} (for {t.FunctionName}, image 0x{t.Image:x} {(t.ImageSymbol.Length > 0 ? t.ImageSymbol : "with no kallsyms name")})";
        if (matches.Count > 1)
            return new Verdict(Classification.FunctionHooked, Severity.Critical, $"{fn} now calls 0x{target:x}, the image of {matches.Count} bpf trampolines at once; the kernel builds one image per trampoline", dest);
        if (site != t.Function && site != t.Function + EndbrLength)
            return new Verdict(Classification.FunctionHooked, Severity.Critical, $"{fn} now calls the image of {which}, a trampoline for another function", dest);
        if (dest.Owner != CodeOwnerKind.Unowned)
            return new Verdict(Classification.FunctionHooked, Severity.Critical, $"{fn} now calls {dest}, which {which} claims as its image; bpf trampoline images are JIT memory, never kernel or module text", dest);
        if (t.ImageSymbolStart != t.Image || !t.ImageSymbol.StartsWith("bpf_trampoline_", StringComparison.Ordinal))
            return new Verdict(Classification.FunctionHooked, Severity.Critical, $"{fn} now calls the image of {which}, but the image is not the start of its own bpf_trampoline kallsyms entry (0x{t.ImageSymbolStart:x})", dest);
        if (t.Programs.Count == 0)
            return new Verdict(Classification.FunctionHooked, Severity.Critical, $"{fn} now calls the image of {which}, which carries no program", dest);
        var image = dest with { Description = $"{(t.ImageSymbol.Length > 0 ? t.ImageSymbol : "bpf trampoline")} at 0x{t.Image:x} (bpf trampoline image)" };
        if (TrampolineImageCheck.Check(t, site, current) is { } forged)
            return new Verdict(Classification.BpfTrampolineForged, Severity.Critical,
                $"{fn} now calls {which}, but the image is not trampoline code: {forged}", forged.Target ?? image);
        string programs = string.Join(", ", t.Programs.Select(p => $"{p.Kind} program {p.Id} ({p.Name}, {p.Type}, tag {p.Tag}){(p.Listed ? "" : " NOT in prog_idr")}"));
        var hidden = t.Programs.Where(p => !p.Listed).ToList();
        return hidden.Count > 0
            ? new Verdict(Classification.HiddenBpfProgramAttached, Severity.Critical,
                $"{fn} now calls {which} for {programs}: {hidden.Count} of them hidden from prog_idr (bpftool does not list them)", image)
            : new Verdict(Classification.BpfTrampolineAttached, Severity.Warning,
                $"{fn} now calls {which} for {programs}; attached since the baseline", image);
    }

    /// <summary>
    /// A trampoline on a BPF program (fentry/fexit on a program, freplace): no ftrace site there, so the kernel's
    /// bpf_arch_text_poke writes straight into the traced program's JIT image, at the 5-byte NOP its JIT prologue leaves
    /// for exactly this (past an endbr64 with IBT): "call IMAGE" of the trampoline whose func.addr is that program, or,
    /// for freplace, "jmp" to the bpf_func of the trampoline's extension program. Explained only there (the trampoline's
    /// function is JIT memory, neither kernel text nor a module; the baseline held the NOP) and only with those exact
    /// bytes; the call gets every check a call at an ftrace site gets (<see cref="BpfTrampolineCall"/>, the image's code).
    /// Null when no such trampoline covers <paramref name="p"/>.
    /// </summary>
    private static (Verdict, ulong End)? BpfJitPatchSite(EvidenceIndex current, CodeWindow w, ulong p)
    {
        foreach (var t in current.Snapshot.BpfTrampolines)
        {
            if (t.Function == 0 || current.Resolve(t.Function).Owner != CodeOwnerKind.Unowned) continue;
            // The slot follows the JIT's endbr64 when the baseline's bytes start with one (CONFIG_X86_KERNEL_IBT).
            ulong site = w.TryExpected(t.Function, 4, out var head) && head.SequenceEqual(Endbr64) ? t.Function + EndbrLength : t.Function;
            if (p < site || p >= site + 5 || !w.TryExpected(site, 5, out var was) || !was.SequenceEqual(Nop5)) continue;
            string fn = $"bpf program {t.FunctionName} (JIT code at 0x{t.Function:x})";
            bool read = w.TryFound(site, 5, out var now);
            if (!read || Branch(now, site, jumpOnly: false) is not { } target)
                return (new Verdict(Classification.CodeModified, Severity.Critical, $"the patch slot of {fn} at 0x{site:x} now holds {(read ? Convert.ToHexStringLower(now) : "bytes that cannot be read")}, not a call or jump"), site + 5);
            var dest = current.Resolve(target);
            if (now[0] == 0xe8)
                return (BpfTrampolineCall(current, site, target, dest, fn)
                        ?? new Verdict(Classification.FunctionHooked, Severity.Critical, $"{fn} now calls {dest}, which is the image of no bpf trampoline", dest), site + 5);
            var ext = t.Programs.Where(x => x.Kind == "freplace" && x.Entry == target && target != 0).ToList();
            if (now[0] != 0xe9 || ext.Count != 1 || dest.Owner != CodeOwnerKind.Unowned)
                return (new Verdict(Classification.FunctionHooked, Severity.Critical, $"{fn} now jumps to {dest}, which is not the bpf_func of the extension program of its trampoline", dest), site + 5);
            var e = ext[0];
            string program = $"freplace program {e.Id} ({e.Name}, {e.Type}, tag {e.Tag})";
            return (e.Listed
                ? new Verdict(Classification.BpfTrampolineAttached, Severity.Warning, $"{fn} now jumps to {program}, through bpf trampoline 0x{t.Address:x}; attached since the baseline", dest)
                : new Verdict(Classification.HiddenBpfProgramAttached, Severity.Critical, $"{fn} now jumps to {program} NOT in prog_idr (bpftool does not list it), through bpf trampoline 0x{t.Address:x}", dest), site + 5);
        }
        return null;
    }

    /// <summary>ftrace_caller / ftrace_regs_caller: only their patch sites change, only to known targets.</summary>
    private static (Verdict, ulong End) FtraceEntry(EvidenceIndex baseline, EvidenceIndex current, CodeWindow w, CodeRange entry, ulong at)
    {
        var e = baseline.Snapshot;
        foreach (var p in e.FtracePatchSites)
        {
            if (at < p.Address || at >= p.Address + 5) continue;
            if (!w.TryFound(p.Address, 5, out var now) || now[0] is not (0xe8 or 0xe9) || Branch(now, p.Address, jumpOnly: false) is not { } target)
                return (new Verdict(Classification.FtraceEntryPatched, Severity.Critical, $"{p.Name} in {entry.Name} is no longer a call or jump"), p.Address + 5);
            var dest = current.Resolve(target);
            bool known = p.Kind == FtracePatchKind.GraphJump
                ? e.FtraceGraphTargets.Contains(target)
                : e.FtraceDispatchTargets.Contains(target)
                  || current.Snapshot.FtraceOps.Any(o => o.Func == target && current.Resolve(o.Func).Owner is CodeOwnerKind.KernelText or CodeOwnerKind.ListedModule);
            return (known
                ? new Verdict(Classification.FtraceDispatcherUpdated, Severity.Info, $"{p.Name} in {entry.Name} now goes to {dest}", dest)
                : new Verdict(Classification.FtraceEntryPatched, Severity.Critical, $"{p.Name} in {entry.Name} now goes to {dest}, not a known ftrace target", dest), p.Address + 5);
        }
        var d = BranchAt(w, at) is { } t ? current.Resolve(t) : null;
        return (new Verdict(Classification.FtraceEntryPatched, Severity.Critical,
            $"{entry.Name} changed at {baseline.Describe(at)}, off its patch sites ({string.Join(", ", e.FtracePatchSites.Select(s => s.Name))})", d), w.To);
    }

    /// <summary>A syscall-table slot or an IDT gate: the kernel never rewrites these at run time.</summary>
    public static Verdict TableEntry(EvidenceIndex baseline, EvidenceIndex current, RegionKind kind, string what, ulong oldTarget, ulong newTarget)
    {
        var dest = current.Resolve(newTarget);
        return new Verdict(kind == RegionKind.SyscallTable ? Classification.SyscallHooked : Classification.InterruptGateChanged, Severity.Critical,
            $"{what}: {baseline.Describe(oldTarget)} (0x{oldTarget:x}) -> {current.Describe(newTarget)} (0x{newTarget:x}); control now goes to {dest}", dest);
    }

    /// <summary>Changes to the allow-lists themselves between baseline and now: modules added, renamed or hidden;
    /// jump-label entries, static-call sites, ftrace records and ftrace_ops that appeared (or changed).</summary>
    public static IReadOnlyList<Finding> AllowListChanges(EvidenceIndex baseline, EvidenceIndex current)
    {
        var findings = new List<Finding>();
        var b = baseline.Snapshot;
        var c = current.Snapshot;
        var before = b.Modules.Where(m => !m.Hidden).ToDictionary(m => m.Address);
        foreach (var m in c.Modules)
        {
            if (m.Hidden)
            {
                findings.Add(Evidence(Classification.ModuleHidden, Severity.Critical, m.Address, $"module {m.Name}",
                    $"module {m.Name} (struct module at 0x{m.Address:x}, core 0x{m.Base:x}+0x{m.Size:x}) is not on the modules list"));
                continue;
            }
            if (!before.TryGetValue(m.Address, out var was))
                findings.Add(Evidence(Classification.ModuleAdded, Severity.Warning, m.Address, $"module {m.Name}",
                    $"module {m.Name} (struct module at 0x{m.Address:x}) was loaded after the baseline; its code is not measured"));
            else if (was.Name != m.Name)
                findings.Add(Evidence(Classification.ModuleRenamed, Severity.Critical, m.Address, $"module {m.Name}",
                    $"struct module at 0x{m.Address:x} was {was.Name} at baseline time and is now named {m.Name}"));
        }
        foreach (var group in c.JumpEntries.Where(j => !baseline.TryGetJumpTarget(j.Code, out _)).GroupBy(j => Owner(current, j.Code)))
            findings.Add(Evidence(Classification.AllowListAdded, Severity.Warning, group.First().Code, group.Key,
                $"{group.Count()} jump-label entries added since the baseline ({group.Key})"));
        foreach (var j in c.JumpEntries.Where(j => baseline.TryGetJumpTarget(j.Code, out ulong t) && t != j.Target))
        {
            baseline.TryGetJumpTarget(j.Code, out ulong was);
            findings.Add(Evidence(Classification.AllowListChanged, Severity.Critical, j.Code, baseline.Describe(j.Code),
                $"jump-label entry for {baseline.Describe(j.Code)} now targets {current.Resolve(j.Target)}, recorded {baseline.Describe(was)}") with { Destination = current.Resolve(j.Target) });
        }
        foreach (var group in c.StaticCallSites.Where(s => !baseline.IsStaticCallSite(s)).GroupBy(s => Owner(current, s)))
            findings.Add(Evidence(Classification.AllowListAdded, Severity.Warning, group.First(), group.Key,
                $"{group.Count()} static-call sites added since the baseline ({group.Key})"));
        foreach (var group in c.FtraceSites.Where(s => !baseline.IsFtraceSite(s)).GroupBy(s => Owner(current, s)))
            findings.Add(Evidence(Classification.AllowListAdded, Severity.Warning, group.First(), group.Key,
                $"{group.Count()} ftrace call sites added since the baseline ({group.Key})"));
        var opsBefore = b.FtraceOps.Select(o => o.Address).ToHashSet();
        foreach (var o in c.FtraceOps.Where(o => !opsBefore.Contains(o.Address)))
        {
            var owner = current.Resolve(o.Func);
            bool known = owner.Owner is CodeOwnerKind.KernelText or CodeOwnerKind.ListedModule;
            // A bpf trampoline's direct-call ops: when the function has other ftrace users too, its site calls ftrace's
            // entry code, not the image, so this is where a program hidden from prog_idr shows.
            var tramp = c.BpfTrampolines.FirstOrDefault(t => t.Fops == o.Address && o.Address != 0);
            var hiddenProgs = tramp?.Programs.Where(p => !p.Listed).ToList() ?? [];
            string bpf = tramp is { } t
                ? $" (the direct-call ftrace_ops of bpf trampoline 0x{t.Address:x} for {t.FunctionName}{(hiddenProgs.Count > 0 ? $"; program(s) {string.Join(", ", hiddenProgs.Select(p => $"{p.Id} ({p.Name})"))} NOT in prog_idr" : "")})" : "";
            findings.Add(Evidence(Classification.AllowListAdded, known && hiddenProgs.Count == 0 ? Severity.Warning : Severity.Critical, o.Address, $"ftrace_ops 0x{o.Address:x}",
                $"ftrace_ops at 0x{o.Address:x} registered since the baseline, callback {owner}{(o.TrampolineSize != 0 ? $", trampoline 0x{o.Trampoline:x}" : "")}{bpf}") with { Destination = owner });
        }
        // Every trampoline's image, whether or not a changed site leads to it: a trampoline attached before the baseline
        // keeps its site's bytes while its image is rewritten (with other ftrace users on the function, the image is
        // reached through ftrace's direct-call path and no site names it at all).
        foreach (var t in c.BpfTrampolines.Where(t => t.Image != 0 && t.Programs.Count > 0))
        {
            // The traced function's patched call: its recorded ftrace site, or for a BPF program (no ftrace site) the JIT's
            // patch slot, at its start or past an endbr64; the image may call the function only just past that call.
            ulong site = baseline.IsFtraceSite(t.Function + EndbrLength) ? t.Function + EndbrLength : t.Function;
            if (TrampolineImageCheck.Check(t, site, current) is not { } forged) continue;
            if (!baseline.IsFtraceSite(site) && TrampolineImageCheck.Check(t, t.Function + EndbrLength, current) is null) continue;
            findings.Add(Evidence(Classification.BpfTrampolineForged, Severity.Critical, t.Image, $"bpf trampoline {t.FunctionName}",
                $"the image 0x{t.Image:x} ({(t.ImageSymbol.Length > 0 ? t.ImageSymbol : "no kallsyms name")}) of bpf trampoline 0x{t.Address:x} for {t.FunctionName} is not trampoline code: {forged}")
                with { Destination = forged.Target });
        }
        return findings;
    }

    private static string Owner(EvidenceIndex index, ulong va) =>
        index.ModuleAt(va) is { } m ? $"module {m.Name}{(m.Hidden ? " (hidden)" : "")}" : index.InKernelText(va) ? "kernel" : "unowned memory";

    private static Finding Evidence(Classification classification, Severity severity, ulong va, string location, string detail) => new()
    {
        Region = "allow-lists", Kind = RegionKind.Evidence, VirtualAddress = va, Location = location, Expected = [], Found = [],
        Classification = classification, Severity = severity, Detail = detail,
    };

    private static ulong? BranchAt(CodeWindow w, ulong va) => w.TryFound(va, 5, out var b) ? Branch(b, va, jumpOnly: false) : null;

    /// <summary>Target of a JMP rel8/rel32 (or, unless <paramref name="jumpOnly"/>, a CALL rel32) at <paramref name="site"/>.</summary>
    public static ulong? Branch(ReadOnlySpan<byte> bytes, ulong site, bool jumpOnly)
    {
        if (bytes.Length >= 5 && (bytes[0] == 0xe9 || bytes[0] == 0xe8 && !jumpOnly))
            return site + 5 + (ulong)(long)BinaryPrimitives.ReadInt32LittleEndian(bytes[1..]);
        if (bytes.Length == 2 && bytes[0] == 0xeb) return site + 2 + (ulong)(long)(sbyte)bytes[1];
        return null;
    }
}
