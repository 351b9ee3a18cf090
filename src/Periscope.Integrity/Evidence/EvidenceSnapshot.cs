namespace Periscope.Integrity.Evidence;

/// <summary>A module as the evidence knows it: identity is the struct module address, not the (forgeable) name.</summary>
public sealed record ModuleEvidence(ulong Address, string Name, ulong Base, ulong Size, ulong TextSize, bool Hidden)
{
    public bool Contains(ulong va) => Base != 0 && va >= Base && va - Base < Size;
}

/// <summary>A code symbol: kernel text from kallsyms (Size 0 = unknown), or a module's own symtab entry (Module =
/// struct module address, 0 for the kernel).</summary>
public readonly record struct CodeSymbol(ulong Address, ulong Size, string Name, ulong Module);

/// <summary>One __jump_table entry: the patched instruction and the jump target the kernel recorded for it.</summary>
public readonly record struct JumpEntry(ulong Code, ulong Target);

/// <summary>A registered ftrace_ops: its callback, and the dynamic trampoline the kernel built for it (0 if none).</summary>
public readonly record struct FtraceOpsEvidence(ulong Address, ulong Func, ulong Trampoline, ulong TrampolineSize);

/// <summary>Which ftrace entry-code instruction the kernel rewrites, and what it may point at.</summary>
public enum FtracePatchKind { Call, GraphJump }

/// <summary>A patch site inside ftrace_caller / ftrace_regs_caller (ftrace_call, ftrace_regs_call, ftrace_graph_call).</summary>
public readonly record struct FtracePatchSite(ulong Address, string Name, FtracePatchKind Kind);

/// <summary>A program on a bpf trampoline as verify names it: id, name, tag and type as bpftool prints them, the hook
/// kind (fentry, fexit, ...), and whether prog_idr lists it (a program missing from it is hidden from bpftool).</summary>
public readonly record struct BpfTrampolineProgramEvidence(uint Id, string Name, string Tag, string Type, string Kind, bool Listed)
{
    /// <summary>bpf_prog.bpf_func: the program's JIT image (or the interpreter), the one place its trampoline calls it.</summary>
    public ulong Entry { get; init; }
}

/// <summary>A bpf_trampoline of the kernel's trampoline_table: the traced function, the ftrace_ops it registered for a
/// direct call, the image the function now calls and that image's own kallsyms entry (start, name), and its programs.</summary>
public sealed record BpfTrampolineEvidence(ulong Address, ulong Function, string FunctionName, ulong Fops, ulong Image, ulong ImageSymbolStart,
    string ImageSymbol, IReadOnlyList<BpfTrampolineProgramEvidence> Programs)
{
    /// <summary>The image's size as the kernel states it (bpf_tramp_image.size, or the page it allocated): guest data.</summary>
    public ulong ImageSize { get; init; }
    /// <summary>The image's bytes as read now, at most <see cref="Memory.IntrospectionLimits.MaxBpfTrampolineImageBytes"/>;
    /// shorter than <see cref="ImageSize"/> when the image is larger than the cap or could not be read whole.</summary>
    public byte[] ImageCode { get; init; } = [];
}

/// <summary>A named code range (ftrace entry code: ftrace_caller .. ftrace_caller_end).</summary>
public readonly record struct CodeRange(string Name, ulong Start, ulong End)
{
    public bool Contains(ulong va) => va >= Start && va < End;
}

/// <summary>Which family of evidence a reason refers to.</summary>
public enum EvidenceFamily { Modules, Symbols, JumpLabels, StaticCalls, FtraceRecords, FtraceOps, FtraceEntry, HiddenModules, Baseline, BpfTrampolines }

/// <summary>Why a part of the evidence could not be collected: the judge cannot allow what it has no record of.</summary>
public readonly record struct EvidenceGap(EvidenceFamily Family, string Reason)
{
    public override string ToString() => $"{Family}: {Reason}";
}

/// <summary>
/// Immutable evidence of what makes a kernel text change legitimate, collected in one pass through one BTF-derived
/// layout (<see cref="EvidenceLayout"/>). The baseline's copy is trusted; the copy taken at verify time is only used
/// for what must be current (which modules are listed now, which ftrace_ops are registered now) and is itself
/// compared with the baseline's.
/// </summary>
public sealed record EvidenceSnapshot
{
    public ulong KernelTextStart { get; init; }
    public ulong KernelTextEnd { get; init; }
    /// <summary>True for an i386 kernel: its text lies below 4 GiB, x86-64's in the top 2 GiB of the address space, so
    /// the text's address says which instruction set (and which NOPs) the kernel patches with.</summary>
    public bool Is32Bit => KernelTextEnd is > 0 and <= uint.MaxValue;
    public IReadOnlyList<ModuleEvidence> Modules { get; init; } = [];
    /// <summary>Code symbols sorted by address.</summary>
    public IReadOnlyList<CodeSymbol> Symbols { get; init; } = [];
    public IReadOnlyList<JumpEntry> JumpEntries { get; init; } = [];
    public IReadOnlyList<ulong> StaticCallSites { get; init; } = [];
    /// <summary>dyn_ftrace record addresses (the 5-byte call sites ftrace toggles).</summary>
    public IReadOnlyList<ulong> FtraceSites { get; init; } = [];
    public IReadOnlyList<FtraceOpsEvidence> FtraceOps { get; init; } = [];
    /// <summary>ftrace_caller, ftrace_regs_caller: code ftrace rewrites only at <see cref="FtracePatchSites"/>.</summary>
    public IReadOnlyList<CodeRange> FtraceEntryCode { get; init; } = [];
    public IReadOnlyList<FtracePatchSite> FtracePatchSites { get; init; } = [];
    /// <summary>Kernel functions ftrace may point its patch sites at (ftrace_stub, ftrace_ops_list_func, ...).</summary>
    public IReadOnlyList<ulong> FtraceDispatchTargets { get; init; } = [];
    public IReadOnlyList<ulong> FtraceGraphTargets { get; init; } = [];
    /// <summary>bpf trampolines (fentry, fexit, fmod_ret, LSM, freplace) as the kernel's trampoline_table holds them now.
    /// Only the current evidence's copy is consulted (a program attached now is judged by what is attached now); it is
    /// not stored in baselines.</summary>
    public IReadOnlyList<BpfTrampolineEvidence> BpfTrampolines { get; init; } = [];
    public IReadOnlyList<EvidenceGap> Gaps { get; init; } = [];
}
