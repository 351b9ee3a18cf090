namespace Periscope.Integrity.Regions;

public enum RegionKind
{
    KernelText,
    KernelReadOnlyData,
    SyscallTable,
    SyscallDispatcher,
    InterruptTable,
    ModuleText,
    ModuleReadOnlyData,
    ProcessCode,
    /// <summary>An eBPF program's JIT-compiled code (bpf_prog.bpf_func, jited_len), one region per loaded program.</summary>
    BpfJitCode,
    /// <summary>Not a measured range: the allow-lists (evidence) the judge compares with the baseline's.</summary>
    Evidence,
}

/// <summary>A range of guest kernel virtual memory whose content is measured page by page.</summary>
public sealed record MeasuredRegion(string Name, RegionKind Kind, ulong Start, ulong Length, string? Owner = null)
{
    public ulong End => Start + Length;
    /// <summary>Identity the guest cannot forge by renaming alone: two modules of one name are two regions.</summary>
    public RegionKey Key => new(Kind, Name, Start);
    public bool IsCode => Kind is RegionKind.KernelText or RegionKind.SyscallDispatcher or RegionKind.ModuleText or RegionKind.BpfJitCode;
}

/// <summary>Kind, name and start address of a region.</summary>
public readonly record struct RegionKey(RegionKind Kind, string Name, ulong Start);
