using Periscope.Memory;
using Periscope.X86;

namespace Periscope.Linux.Discovery;

/// <summary>
/// Finds the kernel in physical memory alone: the kernel PGD, 4- or 5-level paging, the KASLR text base (virtual and
/// physical) and the direct-map base. CPU registers, when present, are only a cross-check.
/// </summary>
public static class KernelLocator
{
    public static KernelLayout Locate(IDirectPhysicalMemory memory, IReadOnlyList<CpuState> cpus, DiscoveryLog log)
    {
        var groups = log.Time("page-table scan", () => PageTableScanner.FindTopLevelGroups(memory));
        if (groups.Count == 0) throw new KernelNotFoundException("no x86-64 top-level page table found in RAM (is this an x86-64 Linux guest?)");

        ulong? cr3Root = cpus.Select(c => c.Cr3).FirstOrDefault(c => c is not null) is { } cr3 ? ControlRegister3.KernelRoot(cr3) : null;
        ulong? cr4 = cpus.Select(c => c.Cr4).FirstOrDefault(c => c is not null);

        foreach (var group in groups)
        {
            // init_top_pgt and a process PGD agree on the kernel half; any member will do, but prefer CR3's.
            ulong pgd = cr3Root is { } r && group.Tables.Contains(r) ? r : group.Tables[0];
            if (!TryFindKernelImage(memory, pgd, out var mode, out ulong textVa, out ulong textPa)) continue;
            log.Fact("paging mode", $"{(int)mode}-level", "structure of the kernel PGD: [511]→[510] reaches a PD of 2 MiB kernel-image pages" + (mode == PagingMode.FiveLevel ? " one level down" : ""));
            log.Fact("kernel PGD", $"0x{pgd:x}", $"page-table scan: {group.Tables.Count} top-level tables share its kernel half ({groups.Count} groups)");
            log.Fact("_text", $"0x{textVa:x} (physical 0x{textPa:x})", "first present 2 MiB entry of the kernel-image PD");
            if (cr4 is { } c4 && PagingModes.FromCr4(c4) != mode)
                log.Warn($"CR4.LA57 says {(int)PagingModes.FromCr4(c4)}-level paging but the page tables say {(int)mode}-level");
            if (cr3Root is { } root)
            {
                if (group.Tables.Contains(root)) log.Fact("CR3 cross-check", "consistent", $"CR3 root 0x{root:x} is in the kernel PGD group");
                else log.Warn($"CR3 root 0x{root:x} is not among the {group.Tables.Count} kernel PGDs found by scanning");
            }
            var space = new AddressSpace(memory, pgd, mode);
            ulong? directMap = log.Time("direct-map search", () => FindDirectMapBase(space, memory.Map));
            if (directMap is { } dm) log.Fact("page_offset_base", $"0x{dm:x}", "lowest kernel-half 1 GiB slot that maps physical 0 linearly");
            return new KernelLayout
            {
                Mode = mode, KernelPgd = pgd, KernelPgdGroup = group.Tables, TextVa = textVa, TextPa = textPa, PageOffsetBase = directMap,
            };
        }
        throw new KernelNotFoundException($"found {groups.Count} groups of top-level page tables but none maps a Linux kernel image at 0xffffffff80000000–0xffffffffc0000000");
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
    public static ulong? FindDirectMapBase(AddressSpace space, PhysicalMemoryMap map)
    {
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
        foreach (var range in space.EnumerateMappings(space.Mode.KernelHalfStart(), KernelLayout.KernelImageLinkBase, maxLeaves: 1 << 20))
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
