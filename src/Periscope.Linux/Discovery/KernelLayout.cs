using Periscope.X86;

namespace Periscope.Linux.Discovery;

/// <summary>Where the kernel sits: found from page tables alone, refined with symbols when they are known.</summary>
public sealed record KernelLayout
{
    public const ulong KernelImageLinkBase = 0xffffffff80000000UL;
    public const ulong DefaultTextVa = 0xffffffff81000000UL;
    public const ulong DefaultTextPa = 0x1000000UL;

    public required PagingMode Mode { get; init; }
    /// <summary>Physical address of the kernel PGD used for kernel-space reads.</summary>
    public required ulong KernelPgd { get; init; }
    /// <summary>All top-level tables sharing the kernel half (init_top_pgt and process PGDs, some stale); only the full
    /// scan finds them, so this is empty when a cheaper method found the PGD.</summary>
    public IReadOnlyList<ulong> KernelPgdGroup { get; init; } = [];
    /// <summary>Which method found the kernel PGD.</summary>
    public DiscoveryMethod FoundBy { get; init; }
    /// <summary>Distinct 4 KiB pages discovery read to find the PGD and the direct map (the full scan counts every page it
    /// pre-filtered).</summary>
    public long DiscoveryPagesRead { get; init; }
    public required ulong TextVa { get; init; }
    public required ulong TextPa { get; init; }
    public ulong VirtualSlide => TextVa - DefaultTextVa;
    public long PhysicalSlide => (long)(TextPa - DefaultTextPa);
    public ulong? PageOffsetBase { get; init; }
    public ulong? VmallocBase { get; init; }
    public ulong? VmemmapBase { get; init; }

    /// <summary>Kernel image addresses map linearly: the image is physically contiguous.</summary>
    public ulong ImageVaToPa(ulong va) => TextPa + (va - TextVa);
}
