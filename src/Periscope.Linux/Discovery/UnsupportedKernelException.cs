using Periscope.X86;

namespace Periscope.Linux.Discovery;

/// <summary>A kernel Periscope found and recognised but cannot model yet (today: i386 kernels past discovery). One line
/// for the user, exit 2; never a crash or a misleading "no kernel found".</summary>
public sealed class UnsupportedKernelException(string message) : Periscope.Linux.Model.KernelModelException(message)
{
    /// <summary>Where the kernel was found.</summary>
    public KernelLayout? Layout { get; private init; }
    /// <summary>Its kallsyms when they could be decoded: what a caller can still show (e.g. `symbols`).</summary>
    public Kallsyms.KallsymsResult? Kallsyms { get; private init; }

    public static UnsupportedKernelException ThirtyTwoBit(KernelLayout layout, Kallsyms.KallsymsResult? kallsyms) =>
        new(ThirtyTwoBitMessage(layout, kallsyms?.Symbols.Count)) { Layout = layout, Kallsyms = kallsyms };

    private static string ThirtyTwoBitMessage(KernelLayout layout, int? kallsymsCount) => (
        $"32-bit Linux kernel found ({Kernel32Locator.Describe(layout.Mode)}, page directory 0x{layout.KernelPgd:x}, "
        + $"PAGE_OFFSET 0x{layout.PageOffsetBase ?? PagingModes.DefaultI386PageOffset:x}, _text 0x{layout.TextVa:x} at physical 0x{layout.TextPa:x}, found by {layout.FoundBy.Describe()}; "
        + (kallsymsCount is { } n ? $"kallsyms: {n} symbols" : "kallsyms not decoded")
        + "), but Periscope's kernel model (processes, modules, maps, integrity checks) reads 64-bit kernels only so far");
}
