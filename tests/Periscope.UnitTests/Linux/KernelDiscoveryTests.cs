using System.Buffers.Binary;
using System.Globalization;
using Periscope.Linux.Discovery;
using Periscope.Memory;
using Periscope.UnitTests.Support;
using Periscope.X86;
using static Periscope.UnitTests.Support.PageTableBuilder;

namespace Periscope.UnitTests.Linux;

/// <summary>
/// Discovery's cost and order on a synthetic kernel laid out like Linux's: init_top_pgt and the image's own page
/// tables inside the image (head_64.S order), the real-mode trampoline's copy below 1 MiB, a process PGD elsewhere.
/// </summary>
public class KernelDiscoveryTests
{
    private const ulong TextPa = 0x1000000;
    private const ulong ImageBytes = 6UL << 20;
    private const ulong TrampolinePgd = 0x9c000;
    private const ulong ProcessPgd = 0x800000;
    /// <summary>Direct-map bases the guests of linux-discovery.md §3.3 had (randomised in 1 GiB steps).</summary>
    private static ulong DirectMapOf(PagingMode mode) => mode == PagingMode.FiveLevel ? 0xff2ca01b40000000UL : 0xffff88fb40000000UL;
    private const int BackingBytes = 24 << 20;

    private sealed record Kernel(byte[] Memory, ulong InitTopPgt, ulong TextVa, PagingMode Mode, ulong DirectMap);

    /// <param name="directMapBytes">RAM the direct map covers (1 GiB pages), so a synthetic RAM of that size is linear.</param>
    /// <param name="trampoline">Whether the first MiB holds the trampoline's copy of the kernel half.</param>
    private static Kernel Build(PagingMode mode, ulong textVa = 0xffffffff8dc00000UL, ulong directMapBytes = 1UL << 30, bool trampoline = true,
        ulong? directMapBase = null)
    {
        ulong directMap = directMapBase ?? DirectMapOf(mode);
        // Page tables from 4 MiB into the image: init_top_pgt first, then level4/level3_kernel_pgt, then the PD.
        var b = new PageTableBuilder(new byte[BackingBytes], mode, TextPa + (4UL << 20));
        b.MapRange(textVa, TextPa, ImageBytes, 2UL << 20, P | W);
        for (ulong off = 0; off < directMapBytes; off += 1UL << 30) b.Map(directMap + off, off, 1UL << 30, P | W | NX);
        CopyKernelHalf(b, b.Root, ProcessPgd);
        b.Write(ProcessPgd, 0); // a process's own user half would go here
        if (trampoline)
        {
            CopyKernelHalf(b, b.Root, TrampolinePgd);
            b.Write(TrampolinePgd, b.Read(b.Root + 273 * 8)); // the trampoline's identity entry: some sane table
        }
        return new Kernel(b.Memory, b.Root, textVa, mode, directMap);
    }

    private static void CopyKernelHalf(PageTableBuilder b, ulong from, ulong to)
    {
        for (ulong i = 256; i < 512; i++) b.Write(to + i * 8, b.Read(from + i * 8));
    }

    private static string VmcoreInfo(Kernel k, long physBaseDelta = 0) =>
        $"OSRELEASE=6.1.0-57-amd64\nSYMBOL(init_top_pgt)={k.TextVa + (k.InitTopPgt - TextPa):x}\n"
        + $"NUMBER(phys_base)={((long)TextPa - (long)(k.TextVa - KernelLayout.KernelImageLinkBase) + physBaseDelta).ToString(CultureInfo.InvariantCulture)}\n"
        + $"NUMBER(pgtable_l5_enabled)={(k.Mode == PagingMode.FiveLevel ? 1 : 0)}\nKERNELOFFSET={k.TextVa - KernelLayout.DefaultTextVa:x}\n";

    private static KernelLayout Locate(IPhysicalMemory memory, DiscoveryInputs inputs, out DiscoveryLog log)
    {
        log = new DiscoveryLog();
        return KernelLocator.Locate(memory, inputs, IntrospectionLimits.Default, log);
    }

    private static void AssertSameKernel(Kernel k, KernelLayout layout)
    {
        Assert.Equal(k.Mode, layout.Mode);
        Assert.Equal(k.InitTopPgt, layout.KernelPgd);
        Assert.Equal(k.TextVa, layout.TextVa);
        Assert.Equal(TextPa, layout.TextPa);
        Assert.Equal(k.DirectMap, layout.PageOffsetBase);
    }

    [Theory]
    [InlineData(PagingMode.FourLevel)]
    [InlineData(PagingMode.FiveLevel)]
    public void Cr3_of_a_process_leads_to_init_top_pgt_without_a_scan(PagingMode mode)
    {
        var k = Build(mode);
        var memory = new SyntheticRam(k.Memory, BackingBytes);
        // PTI user copy (bit 12) with a PCID in the low bits, as a vCPU caught in user mode shows it.
        var cpus = new[] { new CpuState { Cr3 = ProcessPgd | 0x1000 | 5, Cr4 = mode == PagingMode.FiveLevel ? 1UL << 12 : 0 } };
        var layout = Locate(memory, new DiscoveryInputs { Cpus = cpus }, out var log);
        AssertSameKernel(k, layout);
        Assert.Equal(DiscoveryMethod.Cr3, layout.FoundBy);
        Assert.Empty(layout.KernelPgdGroup);
        Assert.InRange(layout.DiscoveryPagesRead, 1, 32);
        Assert.Contains(log.Facts, f => f.Name == "CR3 cross-check" && f.Value == "consistent");
        Assert.Empty(log.Warnings);
    }

    [Theory]
    [InlineData(PagingMode.FourLevel)]
    [InlineData(PagingMode.FiveLevel)]
    public void Vmcoreinfo_gives_init_top_pgt_from_its_symbol_and_phys_base(PagingMode mode)
    {
        var k = Build(mode, trampoline: false);
        var layout = Locate(new SyntheticRam(k.Memory, BackingBytes), new DiscoveryInputs { VmcoreInfo = VmcoreInfo(k) }, out var log);
        AssertSameKernel(k, layout);
        Assert.Equal(DiscoveryMethod.VmcoreInfo, layout.FoundBy);
        Assert.InRange(layout.DiscoveryPagesRead, 1, 32);
        Assert.Empty(log.Warnings);
    }

    [Theory]
    [InlineData(PagingMode.FourLevel)]
    [InlineData(PagingMode.FiveLevel)]
    public void Without_registers_or_vmcoreinfo_the_first_MiB_leads_to_init_top_pgt(PagingMode mode)
    {
        var k = Build(mode);
        var layout = Locate(new SyntheticRam(k.Memory, BackingBytes), new DiscoveryInputs(), out var log);
        AssertSameKernel(k, layout);
        Assert.Equal(DiscoveryMethod.LowMemorySearch, layout.FoundBy);
        Assert.NotEqual(TrampolinePgd, layout.KernelPgd);
        Assert.Empty(log.Warnings);
    }

    [Theory]
    [InlineData(PagingMode.FourLevel, DiscoveryMethods.Cr3)]
    [InlineData(PagingMode.FourLevel, DiscoveryMethods.VmcoreInfo)]
    [InlineData(PagingMode.FourLevel, DiscoveryMethods.LowMemorySearch)]
    [InlineData(PagingMode.FiveLevel, DiscoveryMethods.Cr3)]
    [InlineData(PagingMode.FiveLevel, DiscoveryMethods.VmcoreInfo)]
    [InlineData(PagingMode.FiveLevel, DiscoveryMethods.LowMemorySearch)]
    public void Each_cheap_method_finds_what_the_full_scan_finds(PagingMode mode, DiscoveryMethods method)
    {
        var k = Build(mode);
        var memory = new SyntheticRam(k.Memory, BackingBytes);
        var inputs = new DiscoveryInputs { Cpus = [new CpuState { Cr3 = ProcessPgd }], VmcoreInfo = VmcoreInfo(k) };
        var scan = Locate(memory, inputs with { Methods = DiscoveryMethods.FullScan }, out _);
        var cheap = Locate(memory, inputs with { Methods = method }, out var log);
        Assert.Equal(DiscoveryMethod.FullScan, scan.FoundBy);
        Assert.Equal((int)method, 1 << (int)cheap.FoundBy);
        Assert.Equal((scan.Mode, scan.KernelPgd, scan.TextVa, scan.TextPa, scan.PageOffsetBase),
            (cheap.Mode, cheap.KernelPgd, cheap.TextVa, cheap.TextPa, cheap.PageOffsetBase));
        Assert.Equal(k.InitTopPgt, cheap.KernelPgd);
        Assert.True(cheap.DiscoveryPagesRead * 20 < scan.DiscoveryPagesRead, $"{cheap.DiscoveryPagesRead} pages vs the scan's {scan.DiscoveryPagesRead}");
        Assert.Empty(log.Warnings);
    }

    [Fact]
    public void Bounded_search_reads_the_same_few_pages_for_256_MiB_and_64_GiB_of_RAM()
    {
        var seen = new List<IReadOnlySet<ulong>>();
        int Pages(ulong ramBytes, out KernelLayout layout)
        {
            // A direct map in one 512 GiB top-level slot for both sizes: one crossing a slot boundary reads one more table.
            var k = Build(PagingMode.FourLevel, directMapBytes: Math.Max(ramBytes, 1UL << 30), directMapBase: 0xffff888000000000UL);
            var counting = new CountingMemory(new SyntheticRam(k.Memory, ramBytes));
            layout = Locate(counting, new DiscoveryInputs(), out _);
            AssertSameKernel(k, layout);
            Assert.Equal(DiscoveryMethod.LowMemorySearch, layout.FoundBy);
            seen.Add(counting.Pages);
            return counting.DistinctPages;
        }
        int small = Pages(256UL << 20, out var smallLayout);
        int big = Pages(64UL << 30, out var bigLayout);
        Assert.True(small == big, string.Join(",", seen[0].Except(seen[1]).Select(p => $"+{p:x}").Concat(seen[1].Except(seen[0]).Select(p => $"-{p:x}"))));
        Assert.InRange(big, 0x9c000 / 4096, 300); // the first MiB up to the trampoline (one qword a page) plus a few tables
        Assert.True(big * 50_000L < (64L << 30) / 4096, $"{big} pages read of {(64L << 30) / 4096}");
        // What info reports is what was read.
        Assert.Equal(small, smallLayout.DiscoveryPagesRead);
        Assert.Equal(big, bigLayout.DiscoveryPagesRead);
    }

    [Fact]
    public void Full_scan_is_the_reported_fallback_when_cr3_vmcoreinfo_and_the_bounded_search_fail()
    {
        var k = Build(PagingMode.FourLevel, trampoline: false);
        var memory = new CountingMemory(new SyntheticRam(k.Memory, BackingBytes));
        var inputs = new DiscoveryInputs
        {
            Cpus = [new CpuState { Cr3 = 0x300000 }], // an empty page: not a top-level table
            VmcoreInfo = VmcoreInfo(k, physBaseDelta: 0x200000), // a phys_base that misses the table by 2 MiB
        };
        var layout = Locate(memory, inputs, out var log);
        AssertSameKernel(k, layout);
        Assert.Equal(DiscoveryMethod.FullScan, layout.FoundBy);
        Assert.Contains(k.InitTopPgt, layout.KernelPgdGroup);
        Assert.Contains(ProcessPgd, layout.KernelPgdGroup);
        Assert.True(memory.DistinctPages >= BackingBytes / 4096, $"the scan read {memory.DistinctPages} pages");
        Assert.True(layout.DiscoveryPagesRead >= BackingBytes / 4096);
        var how = Assert.Single(log.Facts, f => f.Name == "discovery");
        Assert.StartsWith("full RAM scan", how.Value);
        Assert.Contains("fell back", how.How);
        Assert.Contains("CR3: none of", how.How);
        Assert.Contains("VMCOREINFO: init_top_pgt", how.How);
        Assert.Contains("low-memory search:", how.How);
        // The cross-checks still run: CR3 and VMCOREINFO disagree with what the scan found.
        Assert.Contains(log.Warnings, w => w.Contains("CR3 root 0x300000"));
        Assert.Contains(log.Warnings, w => w.Contains("VMCOREINFO's init_top_pgt"));
    }

    /// <summary>Linux 6.16+: the trampoline's table (and a stale early copy) carry a kernel half that no longer matches
    /// init_top_pgt's and, having more entries, made the old scan pick 0x9c000 and warn about CR3 falsely.</summary>
    [Theory]
    [InlineData(DiscoveryMethods.FullScan)]
    [InlineData(DiscoveryMethods.All)]
    [InlineData(DiscoveryMethods.LowMemorySearch)]
    public void A_stale_trampoline_table_is_never_the_kernel_PGD(DiscoveryMethods methods)
    {
        var k = Build(PagingMode.FourLevel);
        var b = new PageTableBuilder(k.Memory, PagingMode.FourLevel, 0xa00000); // its own table area; root unused
        const ulong Stale = 0xa02000;
        CopyKernelHalf(b, TrampolinePgd, Stale);
        ulong extra = 0xa04000 | P | W;
        b.Write(TrampolinePgd + 300 * 8, extra);
        b.Write(Stale + 300 * 8, extra);
        var memory = new SyntheticRam(k.Memory, BackingBytes);
        var layout = Locate(memory, new DiscoveryInputs { Cpus = [new CpuState { Cr3 = ProcessPgd | 0x1000 }], Methods = methods }, out var log);
        AssertSameKernel(k, layout);
        Assert.Empty(log.Warnings);
        if (methods == DiscoveryMethods.FullScan)
            Assert.Equal(new[] { k.InitTopPgt, ProcessPgd }.Order(), layout.KernelPgdGroup.Order());
    }

    [Fact]
    public void Cr3_of_a_non_pti_kernel_on_an_odd_page_is_used_as_it_is()
    {
        var k = Build(PagingMode.FourLevel);
        const ulong OddPgd = 0x803000;
        var b = new PageTableBuilder(k.Memory, PagingMode.FourLevel, 0xa00000);
        CopyKernelHalf(b, k.InitTopPgt, OddPgd);
        var layout = Locate(new SyntheticRam(k.Memory, BackingBytes), new DiscoveryInputs { Cpus = [new CpuState { Cr3 = OddPgd }] }, out var log);
        AssertSameKernel(k, layout);
        Assert.Equal(DiscoveryMethod.Cr3, layout.FoundBy);
        Assert.Empty(log.Warnings);
    }

    [Fact]
    public void Kallsyms_init_top_pgt_replaces_a_cr3_root_used_for_want_of_it_and_a_bad_one_is_a_warning()
    {
        // The synthetic kernel of KernelLocatorTests's kind: tables below the image, so init_top_pgt is not next to it.
        var b = new PageTableBuilder(new byte[BackingBytes], PagingMode.FourLevel, 0x200000);
        const ulong TextVa = 0xffffffff8dc00000UL;
        b.MapRange(TextVa, TextPa, ImageBytes, 2UL << 20, P | W);
        b.Map(0xffff888000000000UL, 0, 1UL << 30, P | W | NX);
        CopyKernelHalf(b, b.Root, ProcessPgd);
        var memory = new SyntheticRam(b.Memory, BackingBytes);
        var layout = Locate(memory, new DiscoveryInputs { Cpus = [new CpuState { Cr3 = ProcessPgd }] }, out _);
        Assert.Equal(ProcessPgd, layout.KernelPgd);

        // A kernel whose image VA of init_top_pgt maps (linearly) to b.Root: the symbol's table is taken, verified.
        ulong initVa = TextVa + (b.Root - TextPa);
        var log = new DiscoveryLog();
        var better = KernelLocator.ConfirmWithSymbols(memory, layout, new Periscope.Linux.Kallsyms.KernelSymbols([new(initVa, 'D', "init_top_pgt")]), log);
        Assert.Equal(b.Root, better.KernelPgd);
        Assert.Contains(log.Facts, f => f.Name == "kernel PGD" && f.Value == $"0x{b.Root:x}");
        Assert.Empty(log.Warnings);

        // A symbol pointing at an empty page: warned about, the PGD found kept.
        log = new DiscoveryLog();
        var kept = KernelLocator.ConfirmWithSymbols(memory, layout, new Periscope.Linux.Kallsyms.KernelSymbols([new(TextVa + 0x100000, 'D', "init_top_pgt")]), log);
        Assert.Equal(ProcessPgd, kept.KernelPgd);
        Assert.Contains(log.Warnings, w => w.Contains("is not a top-level table mapping this kernel image"));
    }

    [Fact]
    public void Vmcoreinfo_lines_parse_with_a_signed_phys_base_and_garbage_is_ignored()
    {
        var h = VmcoreInfoHints.Parse("SYMBOL(init_top_pgt)=ffffffff9060a000\nNUMBER(phys_base)=-106954752\nNUMBER(pgtable_l5_enabled)=1\n"
            + "KERNELOFFSET=cc00000\nSYMBOL(swapper_pg_dir)=1234\nNUMBER(phys_base=x\n=\nSYMBOL(init_top_pgt\n\0\0");
        Assert.Equal(0xffffffff9060a000UL, h.PgdVirtual);
        Assert.Equal(-106954752L, h.PhysBase);
        Assert.True(h.FiveLevel);
        Assert.Equal(0xcc00000UL, h.KernelOffset);
        Assert.Equal(0x1234UL, h.SwapperPgDir); // stated, but init_top_pgt is the PGD
        Assert.Null(h.InitTask);
        Assert.Equal(0xffffffff82a12940UL, VmcoreInfoHints.Parse("SYMBOL(init_task)=ffffffff82a12940\n").InitTask);
        Assert.Equal(0xffffffff9060a000UL - 0xffffffff80000000UL - 106954752UL, h.PgdPhysical);
        var junk = VmcoreInfoHints.Parse("SYMBOL(init_top_pgt)=zz\nNUMBER(phys_base)=99999999999999999999999\nKERNELOFFSET=\n");
        Assert.Null(junk.PgdPhysical);
        Assert.Null(junk.KernelOffset);
        Assert.Null(VmcoreInfoHints.Parse("SYMBOL(init_top_pgt)=1000\nNUMBER(phys_base)=0").PgdPhysical); // below the image map: not an image VA
    }

    [Fact]
    public void Nothing_allowed_or_nothing_found_is_one_clear_error()
    {
        var memory = new SyntheticRam(new byte[1 << 20], 1 << 20);
        var e = Assert.Throws<KernelNotFoundException>(() => Locate(memory, new DiscoveryInputs { Cpus = [new CpuState { Cr3 = 0xfff000000000 }] }, out _));
        Assert.Contains("CR3: none of 1 CR3 root(s) (0xfff000000000)", e.Message);
        Assert.Contains("VMCOREINFO: the target carries none", e.Message);
        Assert.Contains("no x86-64 top-level page table", e.Message);
    }

    [Fact]
    public void Tables_that_point_to_themselves_are_rejected_with_bounded_reads()
    {
        // A hostile dump: CR3 and the first MiB hold "top-level tables" whose every entry points back at the table.
        var mem = new byte[4 << 20];
        foreach (ulong t in new ulong[] { 0x9c000, 0x200000 })
            for (int i = 0; i < 512; i++) BinaryPrimitives.WriteUInt64LittleEndian(mem.AsSpan((int)t + i * 8), t | P | W);
        var memory = new CountingMemory(new SyntheticRam(mem, (ulong)mem.Length));
        var inputs = new DiscoveryInputs
        {
            Cpus = [new CpuState { Cr3 = 0x200000 }],
            VmcoreInfo = "SYMBOL(init_top_pgt)=ffffffff81200000\nNUMBER(phys_base)=-16777216\n", // points at 0x200000 too
        };
        var e = Assert.Throws<KernelNotFoundException>(() => Locate(memory, inputs, out _));
        Assert.Contains("none maps a Linux kernel image", e.Message);
        Assert.Contains("CR3: none of 1 CR3 root(s) (0x200000)", e.Message);
        Assert.Contains("VMCOREINFO: init_top_pgt", e.Message);
        Assert.True(memory.DistinctPages <= mem.Length / 4096 + 8, $"{memory.DistinctPages} pages read");
    }

    /// <summary>RAM of any declared size: the backing array, then zeros (what an untouched guest page holds).</summary>
    private sealed class SyntheticRam(byte[] backing, ulong ramBytes) : IPhysicalMemory
    {
        public PhysicalMemoryMap Map { get; } = new([new PhysicalRange(0, ramBytes, PhysicalRangeKind.Ram)]);

        public int Read(ulong address, Span<byte> buffer)
        {
            if (address >= ramBytes) return 0;
            int n = (int)Math.Min((ulong)buffer.Length, ramBytes - address);
            buffer[..n].Clear();
            if (address < (ulong)backing.Length)
                backing.AsSpan((int)address, (int)Math.Min((ulong)n, (ulong)backing.Length - address)).CopyTo(buffer);
            return n;
        }
    }

    /// <summary>Counts every distinct page the locator reads through the memory source.</summary>
    private sealed class CountingMemory(IPhysicalMemory inner) : IPhysicalMemory
    {
        private readonly HashSet<ulong> _pages = [];
        public PhysicalMemoryMap Map => inner.Map;
        public int DistinctPages => _pages.Count;
        public IReadOnlySet<ulong> Pages => _pages;

        public int Read(ulong address, Span<byte> buffer)
        {
            int n = inner.Read(address, buffer);
            for (ulong p = address >> 12; n > 0 && p <= (address + (ulong)n - 1) >> 12; p++) _pages.Add(p);
            return n;
        }
    }
}
