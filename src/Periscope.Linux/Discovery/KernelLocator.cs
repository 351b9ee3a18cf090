using Periscope.Memory;
using Periscope.X86;

namespace Periscope.Linux.Discovery;

/// <summary>
/// Finds the kernel: the kernel PGD, 4- or 5-level paging, the KASLR text base (virtual and physical) and the direct-map
/// base, reading as little as it can. It starts from what the target offers and verifies it, cheapest first:
/// a vCPU's CR3, then VMCOREINFO, then a search of the first MiB whose cost does not grow with RAM, and only when all
/// of those failed the old scan of every RAM page (<see cref="DiscoveryMethod"/>). Whatever found a PGD, the kernel PGD
/// used is init_top_pgt when it can be found next to the image's own page table, never the real-mode trampoline's copy.
/// </summary>
public static class KernelLocator
{
    /// <summary>The first MiB: the real-mode trampoline lives there (the kernel allocates it below 1 MiB).</summary>
    private const ulong LowMemoryEnd = 1UL << 20;

    private sealed record Found(DiscoveryMethod Method, ulong Pgd, PagingMode Mode, ulong TextVa, ulong TextPa, string How,
        IReadOnlyList<ulong> Group);

    public static KernelLayout Locate(IPhysicalMemory memory, IReadOnlyList<CpuState> cpus, DiscoveryLog log) =>
        Locate(memory, new DiscoveryInputs { Cpus = cpus }, IntrospectionLimits.Default, log);

    public static KernelLayout Locate(IPhysicalMemory memory, DiscoveryInputs inputs, IntrospectionLimits limits, DiscoveryLog log)
    {
        var counted = new PageCountingMemory(memory, limits.MaxDiscoveryPagesCounted);
        var failures = new List<string>();
        var hints = VmcoreInfoHints.Parse(inputs.VmcoreInfo);
        var methods = inputs.Methods;
        Found? found = null;
        long scanned = 0;
        using (log.Stage("kernel PGD"))
        {
            if (methods.Allows(DiscoveryMethod.Cr3)) found = FromCr3(counted, inputs.Cpus, limits, failures);
            if (found is null && methods.Allows(DiscoveryMethod.VmcoreInfo)) found = FromVmcoreInfo(counted, inputs.VmcoreInfo, hints, failures);
            if (found is null && methods.Allows(DiscoveryMethod.LowMemorySearch)) found = FromLowMemory(counted, limits, failures);
            // An i386 kernel: before the x86-64 full scan, which cannot find one.
            if (found is null && Kernel32Locator.Locate(counted, inputs.Cpus, hints, methods, failures, limits) is { } found32)
                return Kernel32Locator.ToLayout(found32, counted.PagesRead, failures, log);
            if (found is null && methods.Allows(DiscoveryMethod.FullScan)) found = FromFullScan(memory, counted, inputs.Cpus, limits, failures, out scanned);
        }
        if (found is null)
            throw new KernelNotFoundException(failures.Count == 0 ? "no discovery method was allowed" : string.Join("; ", failures));

        ulong pgd = found.Pgd;
        var mode = found.Mode;
        log.Fact("paging mode", $"{(int)mode}-level", "structure of the kernel PGD: [511]→[510] reaches a PD of 2 MiB kernel-image pages" + (mode == PagingMode.FiveLevel ? " one level down" : ""));
        log.Fact("kernel PGD", $"0x{pgd:x}", $"{found.Method.Describe()}: {found.How}");
        log.Fact("_text", $"0x{found.TextVa:x} (physical 0x{found.TextPa:x})", "first present 2 MiB entry of the kernel-image PD");
        CrossCheck(counted, found, inputs.Cpus, hints, log);

        var space = new AddressSpace(counted, pgd, mode);
        ulong? directMap = log.Time("direct-map search", () => FindDirectMapBase(space, memory.Map, limits));
        if (directMap is { } dm) log.Fact("page_offset_base", $"0x{dm:x}", "lowest kernel-half 1 GiB slot that maps physical 0 linearly");
        long pages = counted.PagesRead + scanned;
        log.Fact("discovery", $"{found.Method.Describe()}, {pages} pages read",
            found.Method == DiscoveryMethod.FullScan
                ? $"fell back to reading one qword of each of {scanned} RAM pages, because: {string.Join("; ", failures)}"
                : failures.Count == 0 ? "first method tried" : $"after: {string.Join("; ", failures)}");
        return new KernelLayout
        {
            Mode = mode, KernelPgd = pgd, KernelPgdGroup = found.Group, TextVa = found.TextVa, TextPa = found.TextPa,
            PageOffsetBase = directMap, FoundBy = found.Method, DiscoveryPagesRead = pages,
        };
    }

    private static Found? FromCr3(IPhysicalMemory memory, IReadOnlyList<CpuState> cpus, IntrospectionLimits limits, List<string> failures)
    {
        var tried = new HashSet<ulong>();
        foreach (var cpu in cpus)
        {
            if (cpu.Cr3 is not { } cr3) continue;
            // With PTI bit 12 selects the user copy of an 8 KiB pair; without PTI a PGD may sit on an odd page.
            foreach (ulong root in new[] { ControlRegister3.KernelRoot(cr3), ControlRegister3.Root(cr3) })
            {
                if (!tried.Add(root)) continue;
                if (!TryVerifyPgd(memory, root, out var mode, out ulong textVa, out ulong textPa)) continue;
                ulong? init = FindInitTopPgt(memory, root, mode, textVa, textPa, limits);
                string how = $"CR3 0x{cr3:x} of vCPU {cpu.Index} ({cpu.Source}), root 0x{root:x} reaches the kernel image; "
                    + (init is { } i ? $"init_top_pgt at 0x{i:x} next to the image's own page table" : "init_top_pgt not found next to the image's page table, CR3's root used");
                return new Found(DiscoveryMethod.Cr3, init ?? root, mode, textVa, textPa, how, []);
            }
        }
        failures.Add(tried.Count == 0 ? "CR3: the target carries no vCPU CR3"
            : $"CR3: none of {tried.Count} CR3 root(s) ({string.Join(", ", tried.Take(4).Select(r => $"0x{r:x}"))}) is a top-level table reaching a kernel image");
        return null;
    }

    private static Found? FromVmcoreInfo(IPhysicalMemory memory, string? text, VmcoreInfoHints hints, List<string> failures)
    {
        if (text is null) { failures.Add("VMCOREINFO: the target carries none"); return null; }
        if (hints.PgdPhysical is not { } pa)
        {
            failures.Add("VMCOREINFO: no SYMBOL(init_top_pgt) with NUMBER(phys_base)");
            return null;
        }
        if ((pa & 0xfff) != 0 || !TryVerifyPgd(memory, pa, out var mode, out ulong textVa, out ulong textPa))
        {
            failures.Add($"VMCOREINFO: init_top_pgt 0x{hints.PgdVirtual:x} with phys_base {hints.PhysBase} gives physical 0x{pa:x}, not a top-level table reaching a kernel image");
            return null;
        }
        return new Found(DiscoveryMethod.VmcoreInfo, pa, mode, textVa, textPa,
            $"SYMBOL(init_top_pgt)=0x{hints.PgdVirtual:x} − 0x{VmcoreInfoHints.StartKernelMap:x} + NUMBER(phys_base)={hints.PhysBase}, verified by the kernel image it reaches", []);
    }

    /// <summary>
    /// The real-mode trampoline's top-level table: setup_real_mode() allocates it below 1 MiB and copies init_top_pgt's
    /// kernel half into it, whatever the RAM size and wherever KASLR put the kernel (the physical KASLR range is all of
    /// RAM up to MAXMEM, so probing the image's possible 2 MiB slots would grow with RAM). Its entry 511 leads to the
    /// image's own page table, next to which init_top_pgt sits; the trampoline's table itself is never used as the
    /// kernel PGD (since 6.16 its kernel half can be stale). Cost: at most 256 qwords plus a few verified pages.
    /// </summary>
    private static Found? FromLowMemory(IPhysicalMemory memory, IntrospectionLimits limits, List<string> failures)
    {
        ulong ramEnd = memory.Map.RamEnd;
        ulong end = limits.MaxLowMemorySearchBytes;
        string? note = null;
        foreach (var range in memory.Map.Ram)
        {
            if (range.Start >= end) break;
            ulong stop = Math.Min(range.End, end);
            for (ulong pa = (range.Start + 0xfff) & ~0xfffUL; pa + 4096 <= stop; pa += 4096)
            {
                if (!memory.TryReadUInt64(pa + 511 * 8, out ulong e511) || !PageTableScanner.IsSaneUpperEntry(e511, ramEnd)) continue;
                if (!TryVerifyPgd(memory, pa, out var mode, out ulong textVa, out ulong textPa)) continue;
                if (FindInitTopPgt(memory, pa, mode, textVa, textPa, limits) is not { } init)
                {
                    note ??= $" (the table at 0x{pa:x} reaches the image but init_top_pgt is not next to the image's page table)";
                    continue;
                }
                return new Found(DiscoveryMethod.LowMemorySearch, init, mode, textVa, textPa,
                    $"the top-level table at 0x{pa:x} in the first MiB (real-mode trampoline) reaches the kernel image; init_top_pgt at 0x{init:x} next to the image's own page table", []);
            }
        }
        failures.Add($"low-memory search: no top-level table below 0x{end:x} leads to a kernel image and its init_top_pgt{note}");
        return null;
    }

    private static Found? FromFullScan(IPhysicalMemory memory, IPhysicalMemory counted, IReadOnlyList<CpuState> cpus, IntrospectionLimits limits,
        List<string> failures, out long scanned)
    {
        var groups = PageTableScanner.FindTopLevelGroups(memory, out scanned);
        if (groups.Count == 0)
        {
            failures.Add("full RAM scan: no x86-64 top-level page table found in RAM (is this an x86-64 Linux guest?)");
            return null;
        }
        var roots = cpus.Where(c => c.Cr3 is not null).Select(c => ControlRegister3.KernelRoot(c.Cr3!.Value)).ToHashSet();
        foreach (var group in groups)
        {
            // CR3's member first, then tables above the first MiB: the trampoline's copy only leads the way.
            var route = group.Tables.OrderByDescending(roots.Contains).ThenBy(t => t < LowMemoryEnd).Take(limits.MaxScanTablesTriedPerGroup);
            foreach (ulong table in route)
            {
                if (!TryVerifyPgd(counted, table, out var mode, out ulong textVa, out ulong textPa)) continue;
                ulong pgd = FindInitTopPgt(counted, table, mode, textVa, textPa, limits) ?? table;
                var own = groups.FirstOrDefault(g => g.Tables.Contains(pgd)) ?? group;
                return new Found(DiscoveryMethod.FullScan, pgd, mode, textVa, textPa,
                    $"{own.Tables.Count} top-level tables share its kernel half ({groups.Count} groups)" + (pgd != table ? $"; init_top_pgt found next to the image's page table via 0x{table:x}" : ""),
                    own.Tables);
            }
        }
        failures.Add($"full RAM scan: found {groups.Count} groups of top-level page tables but none maps a Linux kernel image at 0xffffffff80000000–0xffffffffc0000000");
        return null;
    }

    /// <summary>A candidate PGD is accepted when its page is a sane top-level table and its [511] path reaches a PD that maps
    /// a kernel image with 2 MiB pages.</summary>
    public static bool TryVerifyPgd(IPhysicalMemory memory, ulong pgd, out PagingMode mode, out ulong textVa, out ulong textPa)
    {
        mode = default; textVa = textPa = 0;
        Span<byte> page = stackalloc byte[4096];
        if ((pgd & 0xfff) != 0 || memory.Read(pgd, page) != page.Length || !PageTableScanner.IsTopLevelTable(page, memory.Map.RamEnd)) return false;
        return TryFindKernelImage(memory, pgd, out mode, out textVa, out textPa);
    }

    /// <summary>
    /// init_top_pgt lives in the image's .data just below the image's own top table (level4_kernel_pgt on 5-level,
    /// level3_kernel_pgt on 4-level, both page-aligned, head_64.S order), which every PGD's entry 511 points to. Search
    /// the image pages below that table, nearest first, for a top-level table whose [511] points to it too and that reaches
    /// the same image. Bounded by <see cref="IntrospectionLimits.MaxInitTopPgtSearchPages"/> and by _text.
    /// </summary>
    public static ulong? FindInitTopPgt(IPhysicalMemory memory, ulong anyPgd, PagingMode mode, ulong textVa, ulong textPa, IntrospectionLimits limits)
    {
        if (!memory.TryReadUInt64(anyPgd + 511 * 8, out ulong e511)) return null;
        ulong anchor = e511 & PageTableEntry.AddressMask;
        if (anchor <= textPa) return null;
        ulong pages = Math.Min((ulong)limits.MaxInitTopPgtSearchPages, (anchor - textPa) / 4096);
        for (ulong i = 1; i <= pages; i++)
        {
            ulong pa = anchor - i * 4096;
            if (!memory.TryReadUInt64(pa + 511 * 8, out ulong e) || (e & PageTableEntry.Present) == 0 || (e & PageTableEntry.AddressMask) != anchor) continue;
            if (TryVerifyPgd(memory, pa, out var m, out ulong tv, out ulong tp) && m == mode && tv == textVa && tp == textPa) return pa;
        }
        return null;
    }

    /// <summary>CR4.LA57 against the mode; CR3's kernel half against the kernel PGD's (Linux copies the kernel half into
    /// every PGD and keeps it in sync); VMCOREINFO's init_top_pgt and pgtable_l5_enabled against what was found.</summary>
    private static void CrossCheck(IPhysicalMemory memory, Found found, IReadOnlyList<CpuState> cpus, VmcoreInfoHints hints, DiscoveryLog log)
    {
        ulong? cr3 = cpus.Select(c => c.Cr3).FirstOrDefault(c => c is not null);
        ulong? cr4 = cpus.Select(c => c.Cr4).FirstOrDefault(c => c is not null);
        if (cr4 is { } c4 && PagingModes.FromCr4(c4) != found.Mode)
            log.Warn($"CR4.LA57 says {(int)PagingModes.FromCr4(c4)}-level paging but the page tables say {(int)found.Mode}-level");
        if (cr3 is { } c3)
        {
            ulong root = ControlRegister3.KernelRoot(c3);
            int differ = KernelHalfDifferences(memory, root, found.Pgd);
            if (differ > 0 && ControlRegister3.Root(c3) != root) differ = Math.Min(differ, KernelHalfDifferences(memory, ControlRegister3.Root(c3), found.Pgd));
            if (differ == 0) log.Fact("CR3 cross-check", "consistent", $"CR3 root 0x{root:x} has the kernel PGD's kernel half");
            else log.Warn($"CR3 root 0x{root:x}'s kernel half differs from the kernel PGD 0x{found.Pgd:x}'s in {(differ < 0 ? "unreadable" : differ.ToString())} of 256 entries");
        }
        if (found.Method != DiscoveryMethod.VmcoreInfo && hints.PgdPhysical is { } vpa)
        {
            if (vpa == found.Pgd) log.Fact("VMCOREINFO PGD cross-check", "consistent", $"SYMBOL(init_top_pgt) and NUMBER(phys_base) give 0x{vpa:x}");
            else log.Warn($"VMCOREINFO's init_top_pgt and phys_base give physical 0x{vpa:x}, but the kernel PGD found is 0x{found.Pgd:x}");
        }
        if (hints.FiveLevel is { } l5 && l5 != (found.Mode == PagingMode.FiveLevel))
            log.Warn($"VMCOREINFO NUMBER(pgtable_l5_enabled)={(l5 ? 1 : 0)} disagrees with the {(int)found.Mode}-level paging found");
    }

    /// <summary>Entries 256–511 that differ between two top-level tables, ignoring the Accessed bit the CPU sets per walk;
    /// -1 when either is unreadable.</summary>
    private static int KernelHalfDifferences(IPhysicalMemory memory, ulong a, ulong b)
    {
        Span<byte> x = stackalloc byte[2048], y = stackalloc byte[2048];
        if (memory.Read(a + 2048, x) != 2048 || memory.Read(b + 2048, y) != 2048) return -1;
        int n = 0;
        for (int i = 0; i < 2048; i += 8)
        {
            ulong ex = System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(x[i..]), ey = System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(y[i..]);
            if (((ex ^ ey) & ~PageTableEntry.Accessed) != 0) n++;
        }
        return n;
    }

    /// <summary>
    /// kallsyms's init_top_pgt, translated through the contiguous image, must be the kernel PGD found. When discovery had
    /// to settle for CR3's own root (init_top_pgt not next to the image's table), the symbol's table replaces it once it
    /// verifies: a process PGD is freed when the process exits, init_top_pgt lives as long as the kernel.
    /// </summary>
    public static KernelLayout ConfirmWithSymbols(IPhysicalMemory memory, KernelLayout layout, Periscope.Linux.Kallsyms.KernelSymbols symbols, DiscoveryLog log)
    {
        if (!symbols.TryGetAddress("init_top_pgt", out ulong va)) return layout;
        ulong pa = layout.ImageVaToPa(va);
        if (pa == layout.KernelPgd)
        {
            log.Fact("init_top_pgt cross-check", "consistent", $"kallsyms init_top_pgt 0x{va:x} is the kernel PGD");
            return layout;
        }
        if (TryVerifyPgd(memory, pa, out var mode, out ulong textVa, out ulong textPa) && mode == layout.Mode && textVa == layout.TextVa && textPa == layout.TextPa)
        {
            log.Fact("kernel PGD", $"0x{pa:x}", $"kallsyms init_top_pgt 0x{va:x}, verified; replaces 0x{layout.KernelPgd:x} that {layout.FoundBy.Describe()} found");
            return layout with { KernelPgd = pa };
        }
        log.Warn($"kallsyms init_top_pgt 0x{va:x} (physical 0x{pa:x}) is not a top-level table mapping this kernel image; kernel PGD 0x{layout.KernelPgd:x} kept");
        return layout;
    }

    /// <summary>4-level: T[511]→PDPT, PDPT[510]→PD. 5-level: T[511]→P4D, P4D[511]→PDPT, PDPT[510]→PD. The right reading
    /// reaches a PD that maps the kernel image with 2 MiB pages.</summary>
    public static bool TryFindKernelImage(IPhysicalMemory memory, ulong pgd, out PagingMode mode, out ulong textVa, out ulong textPa)
    {
        ulong ramEnd = memory.Map.RamEnd;
        foreach (var m in new[] { PagingMode.FourLevel, PagingMode.FiveLevel })
        {
            mode = m;
            ulong table = pgd;
            int[] path = m == PagingMode.FourLevel ? [511, 510] : [511, 511, 510];
            bool ok = true;
            foreach (int index in path)
            {
                if (!memory.TryReadUInt64(table + (ulong)index * 8, out ulong e) || !PageTableScanner.IsSaneUpperEntry(e, ramEnd)) { ok = false; break; }
                table = e & PageTableEntry.AddressMask;
            }
            if (ok && TryReadKernelImagePd(memory, table, ramEnd, out int firstIndex, out textPa))
            {
                textVa = KernelLayout.KernelImageLinkBase + (ulong)firstIndex * (2UL << 20);
                return true;
            }
        }
        mode = default; textVa = textPa = 0;
        return false;
    }

    private static bool TryReadKernelImagePd(IPhysicalMemory memory, ulong pd, ulong ramEnd, out int firstIndex, out ulong firstPa)
    {
        firstIndex = -1; firstPa = 0;
        int large = 0;
        for (int i = 0; i < 512; i++)
        {
            if (!memory.TryReadUInt64(pd + (ulong)i * 8, out ulong e)) return false;
            if ((e & PageTableEntry.Present) == 0) continue;
            ulong pa = e & PageTableEntry.AddressMask;
            if (pa >= ramEnd) return false;
            if ((e & PageTableEntry.LargePage) != 0)
            {
                large++;
                if (firstIndex < 0) { firstIndex = i; firstPa = pa & ~((2UL << 20) - 1); }
            }
            else if (firstIndex < 0) return false; // the image starts with a 2 MiB page; cleanup_highmap removed what is below _text
        }
        return large >= 2;
    }

    /// <summary>
    /// Without symbols: walk present upper-level entries of the kernel half below the image at 1 GiB granularity; the
    /// lowest slot that translates to physical 0 and stays linear at sample addresses across RAM is page_offset_base.
    /// </summary>
    public static ulong? FindDirectMapBase(AddressSpace space, PhysicalMemoryMap map, IntrospectionLimits? limits = null)
    {
        int maxLeaves = (limits ?? IntrospectionLimits.Default).MaxDirectMapSearchLeaves;
        var samples = new List<ulong>();
        var ram = map.Ram.ToArray();
        ulong total = map.RamBytes;
        for (int k = 1; k <= 16; k++)
        {
            ulong target = total / 17 * (ulong)k, acc = 0;
            foreach (var r in ram)
            {
                if (target < acc + r.Length) { samples.Add((r.Start + (target - acc)) & ~0xfffUL); break; }
                acc += r.Length;
            }
        }
        foreach (var range in space.EnumerateMappings(space.Mode.KernelHalfStart(), KernelLayout.KernelImageLinkBase, maxLeaves: maxLeaves))
        {
            if (range.PhysicalAddress != 0) continue;
            ulong va = range.VirtualAddress;
            if ((va & ((1UL << 30) - 1)) != 0) continue;
            if (samples.All(pa => space.TryTranslate(va + pa, out ulong got) && got == pa)) return va;
        }
        return null;
    }
}

public sealed class KernelNotFoundException(string message) : Exception(message);
