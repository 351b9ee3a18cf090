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
}

/// <summary>A range of guest kernel virtual memory whose content is measured page by page.</summary>
public sealed record MeasuredRegion(string Name, RegionKind Kind, ulong Start, ulong Length, string? Owner = null)
{
    public ulong End => Start + Length;
    public bool IsCode => Kind is RegionKind.KernelText or RegionKind.SyscallDispatcher or RegionKind.ModuleText;
}
