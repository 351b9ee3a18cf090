namespace Periscope.X86;

[Flags]
public enum PageFlags : byte
{
    None = 0,
    Writable = 1,
    User = 2,
    Executable = 4,
}

/// <summary>A translated virtual address: where it lands physically, the size of the page that maps it, and the
/// effective permissions (writable and user only if every level allows it; executable unless any level sets NX).</summary>
public readonly record struct Translation(ulong PhysicalAddress, ulong PageSize, PageFlags Flags);

/// <summary>A run of virtual addresses mapped to contiguous physical memory with the same permissions.</summary>
public readonly record struct MappedRange(ulong VirtualAddress, ulong PhysicalAddress, ulong Length, ulong PageSize, PageFlags Flags)
{
    public ulong VirtualEnd => VirtualAddress + Length;
}
