namespace Periscope.X86;

public enum PagingMode
{
    /// <summary>4-level paging, 48-bit virtual addresses.</summary>
    FourLevel = 4,
    /// <summary>5-level paging (CR4.LA57), 57-bit virtual addresses.</summary>
    FiveLevel = 5,
    /// <summary>32-bit paging without PAE: 2 levels of 1024 32-bit entries, 4 MiB PSE pages (PSE-36 for physical bits 32–39).</summary>
    Legacy32 = 2,
    /// <summary>32-bit PAE paging: a 4-entry PDPT, then 512-entry tables of 64-bit entries, 2 MiB pages, NX.</summary>
    Pae32 = 3,
}

public static class PagingModes
{
    /// <summary>First virtual address of the kernel half. A kernel-pointer check hard-wired to 0xffff800000000000
    /// silently fails on 5-level guests.</summary>
    public static ulong KernelHalfStart(this PagingMode mode) => mode switch
    {
        PagingMode.FiveLevel => 0xff00000000000000UL,
        // i386 Linux's PAGE_OFFSET is a build option (VMSPLIT_*); this is the default 3G/1G split. The Linux layer
        // reads the real one from the kernel; only callers without a kernel use this.
        PagingMode.Legacy32 or PagingMode.Pae32 => DefaultI386PageOffset,
        _ => 0xffff800000000000UL,
    };

    /// <summary>CONFIG_PAGE_OFFSET with the default VMSPLIT_3G.</summary>
    public const ulong DefaultI386PageOffset = 0xC0000000UL;

    /// <summary>True for the two 32-bit modes: 4-byte pointers, a 4 GiB virtual address space.</summary>
    public static bool Is32Bit(this PagingMode mode) => mode is PagingMode.Legacy32 or PagingMode.Pae32;

    public static int PointerSize(this PagingMode mode) => mode.Is32Bit() ? 4 : 8;

    /// <summary>An address computed with 64-bit arithmetic (a base plus a signed displacement) reduced to the mode's
    /// address width: i386 addresses wrap at 4 GiB.</summary>
    public static ulong Wrap(this PagingMode mode, ulong va) => mode.Is32Bit() ? va & uint.MaxValue : va;

    public static int VirtualAddressBits(this PagingMode mode) => mode switch
    {
        PagingMode.FiveLevel => 57,
        PagingMode.Legacy32 or PagingMode.Pae32 => 32,
        _ => 48,
    };

    /// <summary>Shift of the top-level index: 48/39 on x86-64, 30 for PAE's PDPT, 22 for the non-PAE page directory.</summary>
    public static int TopLevelShift(this PagingMode mode) => mode switch
    {
        PagingMode.FiveLevel => 48,
        PagingMode.Pae32 => 30,
        PagingMode.Legacy32 => 22,
        _ => 39,
    };

    public static bool IsCanonical(this PagingMode mode, ulong va)
    {
        if (mode.Is32Bit()) return va <= uint.MaxValue;
        int bits = mode.VirtualAddressBits();
        long signExtended = (long)(va << (64 - bits)) >> (64 - bits);
        return (ulong)signExtended == va;
    }

    public static bool IsKernelAddress(this PagingMode mode, ulong va) => va >= mode.KernelHalfStart() && mode.IsCanonical(va);

    /// <summary>The mode a vCPU runs in, from CR0.PG (bit 31), CR4.PAE (bit 5), CR4.LA57 (bit 12) and EFER.LMA (bit 10);
    /// null with paging off. Without EFER, long mode is assumed when CR4.PAE is set and CR3 or the caller says so.</summary>
    public static PagingMode? FromControlRegisters(ulong cr0, ulong cr4, bool longMode)
    {
        if ((cr0 & (1UL << 31)) == 0) return null;
        if (longMode) return FromCr4(cr4);
        return (cr4 & (1UL << 5)) != 0 ? PagingMode.Pae32 : PagingMode.Legacy32;
    }

    /// <summary>CR4.LA57 is bit 12.</summary>
    public static PagingMode FromCr4(ulong cr4) => (cr4 & (1UL << 12)) != 0 ? PagingMode.FiveLevel : PagingMode.FourLevel;
}
