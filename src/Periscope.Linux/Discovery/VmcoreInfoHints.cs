using System.Globalization;

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
        ulong? pgd = null, offset = null, initTask = null, swapper = null;
        long? physBase = null;
        bool? l5 = null;
        if (text is null) return new(null, null, null, null);
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.AsSpan().Trim();
            int eq = line.IndexOf('=');
            if (eq <= 0) continue;
            var key = line[..eq];
            var value = line[(eq + 1)..];
            if (key.SequenceEqual("SYMBOL(init_top_pgt)")) pgd = ParseHex(value) ?? pgd;
            else if (key.SequenceEqual("SYMBOL(swapper_pg_dir)"))
            {
                swapper = ParseHex(value);
                if (pgd is null) pgd = swapper;
            }
            else if (key.SequenceEqual("SYMBOL(init_task)")) initTask = ParseHex(value);
            else if (key.SequenceEqual("NUMBER(phys_base)")) physBase = ParseNumber(value);
            else if (key.SequenceEqual("NUMBER(pgtable_l5_enabled)")) l5 = ParseNumber(value) is { } n ? n != 0 : null;
            else if (key.SequenceEqual("KERNELOFFSET")) offset = ParseHex(value) ?? offset;
        }
        return new(pgd, physBase, l5, offset) { InitTask = initTask, SwapperPgDir = swapper };
    }

    private static ulong? ParseHex(ReadOnlySpan<char> value) =>
        ulong.TryParse(value, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong v) ? v : null;

    private static long? ParseNumber(ReadOnlySpan<char> value)
    {
        if (value.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
            return ulong.TryParse(value[2..], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong h) ? (long)h : null;
        return long.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long d) ? d : null;
    }
}
