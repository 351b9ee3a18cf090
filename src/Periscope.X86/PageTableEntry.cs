namespace Periscope.X86;

/// <summary>Bits of an x86-64 paging-structure entry.</summary>
public static class PageTableEntry
{
    public const ulong Present = 1UL << 0;
    public const ulong Writable = 1UL << 1;
    public const ulong User = 1UL << 2;
    public const ulong Accessed = 1UL << 5;
    public const ulong Dirty = 1UL << 6;
    /// <summary>PS: a 1 GiB or 2 MiB leaf at the PDPT/PD level; reserved in PML4E/PML5E.</summary>
    public const ulong LargePage = 1UL << 7;
    public const ulong Global = 1UL << 8;
    public const ulong NoExecute = 1UL << 63;
    /// <summary>Physical-address field; masks off NX (63), protection keys (59–62), software bits (52–58) and flags.</summary>
    public const ulong AddressMask = 0x000ffffffffff000UL;
    /// <summary>Bits 52–62 (software/protection keys) that Linux keeps clear in upper-level kernel entries.</summary>
    public const ulong HighBits = 0x7ff0000000000000UL;

    public static bool IsPresent(ulong e) => (e & Present) != 0;
    public static ulong Address(ulong e) => e & AddressMask;
}

/// <summary>CR3 decoding.</summary>
public static class ControlRegister3
{
    /// <summary>The page-table root: low 12 bits may be a PCID and are not part of the address.</summary>
    public static ulong Root(ulong cr3) => cr3 & PageTableEntry.AddressMask;

    /// <summary>With PTI, Linux allocates the kernel PGD and its user copy as an 8 KiB pair; bit 12 selects the user copy.</summary>
    public static ulong KernelRoot(ulong cr3) => cr3 & PageTableEntry.AddressMask & ~0x1000UL;
}
