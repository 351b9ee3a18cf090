namespace Periscope.X86;

public enum PagingMode
{
    /// <summary>4-level paging, 48-bit virtual addresses.</summary>
    FourLevel = 4,
    /// <summary>5-level paging (CR4.LA57), 57-bit virtual addresses.</summary>
    FiveLevel = 5,
}

public static class PagingModes
{
    /// <summary>First virtual address of the kernel half. A kernel-pointer check hard-wired to 0xffff800000000000
    /// silently fails on 5-level guests.</summary>
    public static ulong KernelHalfStart(this PagingMode mode) => mode == PagingMode.FiveLevel ? 0xff00000000000000UL : 0xffff800000000000UL;

    public static int VirtualAddressBits(this PagingMode mode) => mode == PagingMode.FiveLevel ? 57 : 48;

    public static int TopLevelShift(this PagingMode mode) => mode == PagingMode.FiveLevel ? 48 : 39;

    public static bool IsCanonical(this PagingMode mode, ulong va)
    {
        int bits = mode.VirtualAddressBits();
        long signExtended = (long)(va << (64 - bits)) >> (64 - bits);
        return (ulong)signExtended == va;
    }

    public static bool IsKernelAddress(this PagingMode mode, ulong va) => va >= mode.KernelHalfStart() && mode.IsCanonical(va);

    /// <summary>CR4.LA57 is bit 12.</summary>
    public static PagingMode FromCr4(ulong cr4) => (cr4 & (1UL << 12)) != 0 ? PagingMode.FiveLevel : PagingMode.FourLevel;
}
