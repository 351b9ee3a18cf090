using Periscope.Linux.Discovery;
using Periscope.Memory;
using Periscope.Memory.Formats;
using Periscope.UnitTests.Support;
using Periscope.X86;
using static Periscope.UnitTests.Support.PageTableBuilder;

namespace Periscope.UnitTests.Linux;

public class KernelLocatorTests
{
    private const int MemSize = 24 << 20;
    private const ulong TextPa = 0x1000000;

    /// <summary>A miniature Linux kernel half: the image at a KASLR slot with 2 MiB pages, the direct map with 4 KiB pages
    /// for the first 2 MiB and 2 MiB pages after, plus a second PGD sharing the kernel half (a process).</summary>
    private static (byte[] Memory, ulong Pgd, ulong ProcessPgd) BuildKernel(PagingMode mode, ulong textVa, ulong directMap)
    {
        var b = new PageTableBuilder(new byte[MemSize], mode, 0x200000);
        b.MapRange(textVa, TextPa, 6UL << 20, 2UL << 20, P | W);
        b.MapRange(directMap, 0, 2UL << 20, 4096, P | W | NX);
        b.MapRange(directMap + (2UL << 20), 2UL << 20, MemSize - (2UL << 20), 2UL << 20, P | W | NX);
        // A fixmap-like neighbour in slot 511 so the kernel half has more than the image.
        ulong process = b.NewTable();
        if ((process & 0x1000) != 0) process = b.NewTable(); // Linux allocates PGDs 8 KiB aligned (PTI pairs)
        for (ulong i = 256; i < 512; i++) b.Write(process + i * 8, b.Read(b.Root + i * 8));
        b.Map(0x400000, 0x300000, 4096, P | U); // process-only user mapping in the root too
        b.Write(process, b.Read(b.Root));
        return (b.Memory, b.Root, process);
    }

    [Theory]
    [InlineData(PagingMode.FourLevel, 0xffffffff8dc00000UL, 0xffff88fb40000000UL)]
    [InlineData(PagingMode.FiveLevel, 0xffffffff9ce00000UL, 0xff2ca01b40000000UL)]
    public void Finds_paging_mode_text_base_and_direct_map_without_registers(PagingMode mode, ulong textVa, ulong directMap)
    {
        var (mem, pgd, process) = BuildKernel(mode, textVa, directMap);
        using var f = new TempFile(mem);
        using var image = MemoryImage.Open(f.Path);
        var log = new DiscoveryLog();
        var layout = KernelLocator.Locate(image, [], log);
        Assert.Equal(mode, layout.Mode);
        Assert.Equal(textVa, layout.TextVa);
        Assert.Equal(TextPa, layout.TextPa);
        Assert.Equal(directMap, layout.PageOffsetBase);
        Assert.Contains(pgd, layout.KernelPgdGroup);
        Assert.Contains(process, layout.KernelPgdGroup);
        Assert.Equal(TextPa + 0x1234, layout.ImageVaToPa(textVa + 0x1234));
        Assert.Empty(log.Warnings);
    }

    [Fact]
    public void Registers_cross_check_and_report_disagreement()
    {
        var (mem, pgd, process) = BuildKernel(PagingMode.FourLevel, 0xffffffff81000000, 0xffff888000000000);
        using var f = new TempFile(mem);
        using var image = MemoryImage.Open(f.Path);
        var log = new DiscoveryLog();
        // CR3 of the process with the PTI user bit and a PCID; CR4 claims LA57, which the tables contradict.
        var layout = KernelLocator.Locate(image, [new CpuState { Cr3 = process | 0x1000 | 3, Cr4 = 1UL << 12 }], log);
        Assert.Equal(process, layout.KernelPgd);
        Assert.Contains(log.Facts, x => x.Name == "CR3 cross-check");
        Assert.Contains(log.Warnings, w => w.Contains("CR4.LA57"));
        _ = pgd;
    }

    [Fact]
    public void Memory_without_a_kernel_is_a_clear_error()
    {
        using var f = new TempFile(new byte[1 << 20]);
        using var image = MemoryImage.Open(f.Path);
        var e = Assert.Throws<KernelNotFoundException>(() => KernelLocator.Locate(image, [], new DiscoveryLog()));
        Assert.Contains("no x86-64 top-level page table", e.Message);
    }
}
