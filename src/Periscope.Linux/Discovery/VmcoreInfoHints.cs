using Periscope.Linux.Model;

namespace Periscope.Linux.Discovery;

/// <summary>
/// The lines of VMCOREINFO that locate the kernel PGD: SYMBOL(init_top_pgt) (or SYMBOL(swapper_pg_dir)), the
/// run-time virtual address; NUMBER(phys_base), printed by the kernel as a signed decimal ("%ld"); and
/// NUMBER(pgtable_l5_enabled). The text is guest data: unparsable lines are ignored, never trusted.
/// </summary>
public sealed record VmcoreInfoHints(ulong? PgdVirtual, long? PhysBase, bool? FiveLevel, ulong? KernelOffset)
{
    /// <summary>__START_KERNEL_map: the kernel image's link base; image PA = VA − this + phys_base.</summary>
    public const ulong StartKernelMap = KernelLayout.KernelImageLinkBase;

    /// <summary>SYMBOL(init_task) and SYMBOL(swapper_pg_dir) as VMCOREINFO states them, for cross-checks with kallsyms.</summary>
    public ulong? InitTask { get; init; }
    public ulong? SwapperPgDir { get; init; }

    public ulong? PgdPhysical => PgdVirtual is { } va && PhysBase is { } pb && va >= StartKernelMap
        ? va - StartKernelMap + (ulong)pb : null;

    public static VmcoreInfoHints Parse(string? text)
    {
        if (text is null) return new(null, null, null, null);
        var info = KernelVmcoreInfo.Parse(text, "VMCOREINFO");
        ulong? Symbol(string name) => info.TryGetSymbol(name, out ulong va) ? va : null;
        long? Number(string name) => info.TryGetNumber(name, out long n) ? n : null;
        ulong? swapper = Symbol("swapper_pg_dir");
        return new(Symbol("init_top_pgt") ?? swapper, Number("phys_base"), Number("pgtable_l5_enabled") is { } l5 ? l5 != 0 : null, info.KernelOffset)
            { InitTask = Symbol("init_task"), SwapperPgDir = swapper };
    }
}
