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

    public ulong? PgdPhysical => PgdVirtual is { } va && PhysBase is { } pb && va >= StartKernelMap
        ? va - StartKernelMap + (ulong)pb : null;

    public static VmcoreInfoHints Parse(string? text)
    {
        ulong? pgd = null, offset = null;
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
            if (key.SequenceEqual("SYMBOL(init_top_pgt)") || (pgd is null && key.SequenceEqual("SYMBOL(swapper_pg_dir)")))
            {
                if (ulong.TryParse(value, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong va)) pgd = va;
            }
            else if (key.SequenceEqual("NUMBER(phys_base)")) physBase = ParseNumber(value);
            else if (key.SequenceEqual("NUMBER(pgtable_l5_enabled)")) l5 = ParseNumber(value) is { } n ? n != 0 : null;
            else if (key.SequenceEqual("KERNELOFFSET")
                && ulong.TryParse(value, NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong off)) offset = off;
        }
        return new(pgd, physBase, l5, offset);
    }

    private static long? ParseNumber(ReadOnlySpan<char> value)
    {
        if (value.StartsWith("0x", StringComparison.OrdinalIgnoreCase))
            return ulong.TryParse(value[2..], NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong h) ? (long)h : null;
        return long.TryParse(value, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long d) ? d : null;
    }
}
