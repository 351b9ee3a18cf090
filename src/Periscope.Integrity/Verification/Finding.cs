using Periscope.Integrity.Evidence;
using Periscope.Integrity.Regions;

namespace Periscope.Integrity.Verification;

public enum Severity { Info, Warning, Critical }

/// <summary>What a difference is. The judge's rules (README, "The judge") map each to a severity.</summary>
public enum Classification
{
    CodeModified,
    DataModified,
    /// <summary>A jump-label site toggled between its recorded NOP and its recorded target.</summary>
    StaticKeyFlipped,
    /// <summary>A jump-label site that now holds something other than its NOP or its recorded jump.</summary>
    JumpLabelRetargeted,
    /// <summary>A static-call site or trampoline repointed to the start of a known function (or disabled).</summary>
    StaticCallUpdated,
    StaticCallHijacked,
    /// <summary>An ftrace site switched between NOP and a call to ftrace entry code or a listed module's trampoline.</summary>
    FunctionTraced,
    FunctionHooked,
    /// <summary>ftrace entry code changed at a known patch site to a known target.</summary>
    FtraceDispatcherUpdated,
    FtraceEntryPatched,
    SyscallHooked,
    InterruptGateChanged,
    PageMissing,
    RegionGone,
    RegionMoved,
    ModuleAdded,
    ModuleRenamed,
    ModuleHidden,
    AllowListAdded,
    AllowListChanged,
    ProcessCodeModified,
    AnonymousCode,
    /// <summary>An ftrace site now calls the image of a bpf trampoline the kernel's trampoline_table holds for this
    /// function, for programs prog_idr lists (fentry, fexit, fmod_ret, LSM): legitimate, but a program attached since
    /// the baseline is a change to look at.</summary>
    BpfTrampolineAttached,
    /// <summary>As <see cref="BpfTrampolineAttached"/>, but a program on the trampoline is missing from prog_idr.</summary>
    HiddenBpfProgramAttached,
    /// <summary>A bpf trampoline image whose code is not what the kernel's trampoline generator emits: a call or jump to
    /// anything but the trampoline's programs, the trampoline helpers, the traced function or the image itself; an
    /// indirect transfer; undecodable or truncated code (<see cref="TrampolineImageCheck"/>).</summary>
    BpfTrampolineForged,
}

/// <summary>One difference between the trusted state and now, with enough evidence to act on it.</summary>
public sealed record Finding
{
    public required string Region { get; init; }
    public required RegionKind Kind { get; init; }
    public required ulong VirtualAddress { get; init; }
    public ulong? PhysicalAddress { get; init; }
    /// <summary>Kernel symbol+offset, or module name+offset.</summary>
    public required string Location { get; init; }
    public required byte[] Expected { get; init; }
    public required byte[] Found { get; init; }
    public string? ExpectedDisassembly { get; init; }
    public string? FoundDisassembly { get; init; }
    public required Classification Classification { get; init; }
    public required Severity Severity { get; init; }
    /// <summary>Where control now goes, when the change is a branch, pointer or gate.</summary>
    public ControlTarget? Destination { get; init; }
    public string Detail { get; init; } = "";
}

/// <summary>The words used for each classification in human output (and the names older callers used).</summary>
public static class Classifications
{
    public const Classification CodeModified = Classification.CodeModified;
    public const Classification DataModified = Classification.DataModified;
    public const Classification StaticKeyFlipped = Classification.StaticKeyFlipped;
    public const Classification FunctionTraced = Classification.FunctionTraced;
    public const Classification FunctionHooked = Classification.FunctionHooked;
    public const Classification FtraceDispatcher = Classification.FtraceDispatcherUpdated;
    public const Classification StaticCallUpdated = Classification.StaticCallUpdated;
    public const Classification StaticCallHijacked = Classification.StaticCallHijacked;
    public const Classification SyscallHooked = Classification.SyscallHooked;
    public const Classification InterruptGateChanged = Classification.InterruptGateChanged;
    public const Classification PageMissing = Classification.PageMissing;
    public const Classification RegionGone = Classification.RegionGone;
    public const Classification RegionMoved = Classification.RegionMoved;
    public const Classification ProcessCodeModified = Classification.ProcessCodeModified;
    public const Classification AnonymousCode = Classification.AnonymousCode;

    public static string Text(this Classification c) => c switch
    {
        Classification.CodeModified => "code modified",
        Classification.DataModified => "data modified",
        Classification.StaticKeyFlipped => "static key flipped",
        Classification.JumpLabelRetargeted => "jump label retargeted",
        Classification.StaticCallUpdated => "static call updated",
        Classification.StaticCallHijacked => "static call hijacked",
        Classification.FunctionTraced => "function traced",
        Classification.FunctionHooked => "function hooked",
        Classification.FtraceDispatcherUpdated => "ftrace dispatcher updated",
        Classification.FtraceEntryPatched => "ftrace entry code patched",
        Classification.BpfTrampolineAttached => "bpf trampoline attached",
        Classification.HiddenBpfProgramAttached => "hidden bpf program attached",
        Classification.SyscallHooked => "syscall hooked",
        Classification.InterruptGateChanged => "interrupt gate changed",
        Classification.PageMissing => "page no longer mapped",
        Classification.RegionGone => "region gone",
        Classification.RegionMoved => "region moved",
        Classification.ModuleAdded => "module added",
        Classification.ModuleRenamed => "module renamed",
        Classification.ModuleHidden => "module hidden",
        Classification.AllowListAdded => "allow-list entries added",
        Classification.AllowListChanged => "allow-list entry changed",
        Classification.ProcessCodeModified => "process code modified",
        Classification.AnonymousCode => "anonymous executable memory",
        _ => c.ToString(),
    };

    /// <summary>kebab-case name for --json.</summary>
    public static string JsonName(this Classification c) => c.Text().Replace(' ', '-');
}
