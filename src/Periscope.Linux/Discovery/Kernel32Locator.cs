using Periscope.Memory;
using Periscope.X86;

namespace Periscope.Linux.Discovery;

/// <summary>
/// Finds a 32-bit (i386) Linux kernel: its page directory (PAE or not), PAGE_OFFSET and _text, from a vCPU's CR3 or
/// VMCOREINFO's swapper_pg_dir. An i386 kernel has no separate image mapping: the image sits in the lowmem direct map
/// at PAGE_OFFSET + its physical address, so a candidate root is accepted when it maps PAGE_OFFSET linearly onto
/// physical memory (checked at sample pages across lowmem), and _text is where the direct map turns read-only and
/// executable ("Write protecting kernel text": the rest of lowmem is writable, and NX under PAE).
/// </summary>
public static class Kernel32Locator
{
    /// <summary>CONFIG_PAGE_OFFSET of the VMSPLIT_* choices (3G default, 3G_OPT, 2G, 2G_OPT, 1G), most common first;
    /// which one a kernel uses is read from its page tables, not assumed.</summary>
    public static readonly ulong[] PageOffsetCandidates = [PagingModes.DefaultI386PageOffset, 0xB0000000, 0x80000000, 0x78000000, 0x40000000];

    /// <summary>CONFIG_PHYSICAL_ALIGN's lower bound on i386 (the kernel's load address and KASLR slot are aligned to at
    /// least this): _text is searched on 2 MiB boundaries only, where the 1 MiB of BIOS and trampoline pages below do not
    /// look like an image.</summary>
    private const ulong ImageAlignment = 2UL << 20;
    /// <summary>The kernel image's text is at least this long; a shorter read-only executable run is not an image.</summary>
    private const ulong MinimumTextBytes = 1UL << 20;
    /// <summary>Upper bound of the lowmem direct map checked: an i386 kernel maps at most 896 MiB of lowmem (3G split).</summary>
    private const ulong MaxLowmemBytes = 896UL << 20;

    /// <summary>The L bit of a code-segment descriptor as QEMU reports its flags (descriptor bits 32–63, L at 53).</summary>
    private const uint LongModeCodeSegment = 1u << 21;

    public sealed record Found(DiscoveryMethod Method, ulong Pgd, PagingMode Mode, ulong PageOffset, ulong TextVa, ulong TextPa, string How);

    public static Found? Locate(IPhysicalMemory memory, IReadOnlyList<CpuState> cpus, VmcoreInfoHints hints, DiscoveryMethods methods, List<string> failures,
        IntrospectionLimits? limits = null)
    {
        limits ??= IntrospectionLimits.Default;
        if (methods.Allows(DiscoveryMethod.Cr3) && FromCr3(memory, cpus, failures, limits) is { } viaCr3) return viaCr3;
        if (methods.Allows(DiscoveryMethod.VmcoreInfo) && FromVmcoreInfo(memory, hints, failures, limits) is { } viaInfo) return viaInfo;
        return null;
    }

    private static Found? FromCr3(IPhysicalMemory memory, IReadOnlyList<CpuState> cpus, List<string> failures, IntrospectionLimits limits)
    {
        int tried = 0;
        foreach (var cpu in cpus)
        {
            if (cpu.Cr3 is not { } cr3 || cr3 > uint.MaxValue) continue;
            // A 64-bit code segment (CS.L, bit 21 of QEMU's descriptor flags): long mode, not an i386 kernel.
            if (cpu.Cs is { } cs && (cs.Flags & LongModeCodeSegment) != 0) continue;
            // CR0.PG off: no paging to follow. CR4 unknown (QMP without it): try both modes.
            if (cpu.Cr0 is { } cr0 && (cr0 & (1UL << 31)) == 0) continue;
            PagingMode[] modes = cpu.Cr4 is { } cr4 ? [(cr4 & (1UL << 5)) != 0 ? PagingMode.Pae32 : PagingMode.Legacy32] : [PagingMode.Pae32, PagingMode.Legacy32];
            foreach (var mode in modes)
            {
                tried++;
                if (TryVerify(memory, cr3, mode, out ulong pageOffset, out ulong textVa, out string? why, limits))
                    return new Found(DiscoveryMethod.Cr3, Root(cr3, mode), mode, pageOffset, textVa, textVa - pageOffset,
                        $"CR3 0x{cr3:x} of vCPU {cpu.Index} ({cpu.Source}), {Describe(mode)}: maps PAGE_OFFSET 0x{pageOffset:x} linearly onto RAM");
                failures.Add($"32-bit CR3: 0x{cr3:x} as {Describe(mode)}: {why}");
            }
        }
        // Nothing tried (an x86-64 guest in 64-bit code, or no registers): the x86-64 CR3 failure already says why.
        return null;
    }

    /// <summary>VMCOREINFO's SYMBOL(swapper_pg_dir) is a lowmem address: physical = virtual − PAGE_OFFSET, tried for each
    /// PAGE_OFFSET candidate; CONFIG_X86_PAE=y in the note picks the mode, both are tried without it.</summary>
    private static Found? FromVmcoreInfo(IPhysicalMemory memory, VmcoreInfoHints hints, List<string> failures, IntrospectionLimits limits)
    {
        if (hints.SwapperPgDir is not { } va || va > uint.MaxValue)
        {
            failures.Add("32-bit VMCOREINFO: no 32-bit SYMBOL(swapper_pg_dir)");
            return null;
        }
        foreach (ulong candidate in PageOffsetCandidates)
        {
            if (va < candidate) continue;
            foreach (var mode in new[] { PagingMode.Pae32, PagingMode.Legacy32 })
            {
                ulong pa = va - candidate;
                if (TryVerify(memory, pa, mode, out ulong pageOffset, out ulong textVa, out _, limits) && pageOffset == candidate)
                    return new Found(DiscoveryMethod.VmcoreInfo, pa, mode, pageOffset, textVa, textVa - pageOffset,
                        $"SYMBOL(swapper_pg_dir)=0x{va:x} − PAGE_OFFSET 0x{pageOffset:x}, {Describe(mode)}, verified by the direct map it holds");
            }
        }
        failures.Add($"32-bit VMCOREINFO: swapper_pg_dir 0x{va:x} is not a page directory mapping lowmem at any PAGE_OFFSET candidate");
        return null;
    }

    public static string Describe(PagingMode mode) => mode == PagingMode.Pae32 ? "PAE paging" : "32-bit non-PAE paging";

    private static ulong Root(ulong cr3, PagingMode mode) => mode == PagingMode.Pae32 ? cr3 & LegacyPaging.PaeRootMask : cr3 & LegacyPaging.FrameMask;

    /// <summary>Whether <paramref name="cr3"/> read as <paramref name="mode"/> maps some PAGE_OFFSET candidate linearly onto
    /// lowmem and holds a kernel image there.</summary>
    public static bool TryVerify(IPhysicalMemory memory, ulong cr3, PagingMode mode, out ulong pageOffset, out ulong textVa, out string? why,
        IntrospectionLimits? limits = null)
    {
        limits ??= IntrospectionLimits.Default;
        pageOffset = textVa = 0;
        ulong root = Root(cr3, mode);
        if (root >= memory.Map.RamEnd) { why = $"root 0x{root:x} lies beyond RAM"; return false; }
        var space = new AddressSpace(memory, root, mode);
        var samples = LowmemSamples(memory.Map);
        foreach (ulong candidate in PageOffsetCandidates)
        {
            if (!space.TryTranslate(candidate, out ulong zero) || zero != 0) continue;
            ulong limit = Math.Min(MaxLowmemBytes, 0x1_0000_0000UL - candidate);
            if (!samples.Where(pa => pa < limit).All(pa => space.TryTranslate(candidate + pa, out ulong got) && got == pa)) continue;
            if (FindText(space, candidate, Math.Min(limit, memory.Map.RamEnd), limits.MaxLowmemTextSearchLeaves) is not { } text)
            {
                why = $"PAGE_OFFSET 0x{candidate:x} maps lowmem, but no read-only executable kernel text was found in it";
                return false;
            }
            pageOffset = candidate;
            textVa = text;
            why = null;
            return true;
        }
        why = "maps no PAGE_OFFSET candidate linearly onto RAM";
        return false;
    }

    /// <summary>Sixteen page addresses spread over RAM (the same spread the 64-bit direct-map search uses).</summary>
    private static List<ulong> LowmemSamples(PhysicalMemoryMap map)
    {
        var samples = new List<ulong>();
        var ram = map.Ram.ToArray();
        ulong total = map.RamBytes, acc = 0;
        for (int k = 1; k <= 16; k++)
        {
            ulong target = total / 17 * (ulong)k;
            acc = 0;
            foreach (var r in ram)
            {
                if (target < acc + r.Length) { samples.Add((r.Start + (target - acc)) & ~0xfffUL); break; }
                acc += r.Length;
            }
        }
        return samples;
    }

    /// <summary>The lowest 2 MiB-aligned address above PAGE_OFFSET + 1 MiB that starts at least 1 MiB of read-only,
    /// executable mappings. Bounded: one enumeration of the lowmem mappings, at most IntrospectionLimits.MaxLowmemTextSearchLeaves leaves.</summary>
    private static ulong? FindText(AddressSpace space, ulong pageOffset, ulong lowmemBytes, int maxLeaves)
    {
        ulong runStart = 0, runEnd = 0;
        foreach (var range in space.EnumerateMappings(pageOffset + (1UL << 20), pageOffset + lowmemBytes, maxLeaves: maxLeaves))
        {
            bool text = (range.Flags & PageFlags.Executable) != 0 && (range.Flags & PageFlags.Writable) == 0;
            if (!text) { runEnd = 0; continue; }
            if (runEnd != range.VirtualAddress)
            {
                runStart = (range.VirtualAddress + ImageAlignment - 1) & ~(ImageAlignment - 1);
            }
            runEnd = range.VirtualEnd;
            if (runEnd > runStart && runEnd - runStart >= MinimumTextBytes) return runStart;
        }
        return null;
    }

    public static KernelLayout ToLayout(Found found, long pagesRead, List<string> failures, DiscoveryLog log)
    {
        log.Fact("paging mode", Describe(found.Mode), "CR4.PAE and a page directory that maps lowmem at PAGE_OFFSET");
        log.Fact("kernel PGD", $"0x{found.Pgd:x}", $"{found.Method.Describe()}: {found.How}");
        log.Fact("PAGE_OFFSET", $"0x{found.PageOffset:x}", "the PAGE_OFFSET candidate that translates to physical 0 and stays linear at sample pages across RAM");
        log.Fact("_text", $"0x{found.TextVa:x} (physical 0x{found.TextPa:x})", "first 2 MiB boundary where lowmem turns read-only and executable");
        log.Fact("discovery", $"{found.Method.Describe()}, {pagesRead} pages read", failures.Count == 0 ? "first method tried" : $"after: {string.Join("; ", failures)}");
        return new KernelLayout
        {
            Mode = found.Mode, KernelPgd = found.Pgd, TextVa = found.TextVa, TextPa = found.TextPa, PageOffsetBase = found.PageOffset,
            FoundBy = found.Method, DiscoveryPagesRead = pagesRead,
        };
    }

    /// <summary>kallsyms of an i386 kernel: the same tables as on x86-64, with 4-byte longs and 4-aligned labels,
    /// decoded from the physically contiguous image at _text.</summary>
    public static unsafe Kallsyms.KallsymsResult? DecodeKallsyms(IDirectPhysicalMemory memory, KernelLayout layout, IntrospectionLimits limits,
        ICollection<string> diagnostics)
    {
        byte* p = memory.GetPointer(layout.TextPa, out ulong available);
        if (p == null)
        {
            diagnostics.Add($"kernel image at physical 0x{layout.TextPa:x} is not backed by the memory source");
            return null;
        }
        var image = new ReadOnlySpan<byte>(p, (int)Math.Min(available, (ulong)limits.MaxKernelImageBytes));
        return Kallsyms.KallsymsDecoder.Decode(image, layout.TextVa, limits, diagnostics, pointerSize: 4);
    }
}
