using Periscope.Memory.Formats;
using Periscope.UnitTests.Support;
using Periscope.X86;
using static Periscope.UnitTests.Support.PageTableBuilder;

namespace Periscope.UnitTests.X86;

public class AddressSpaceTests
{
    private const int MemSize = 8 << 20;

    private static (TempFile, MemoryImage, AddressSpace) Open(PageTableBuilder b)
    {
        var f = new TempFile(b.Memory);
        var image = MemoryImage.Open(f.Path);
        return (f, image, new AddressSpace(image, b.Root, b.Mode));
    }

    [Theory]
    [InlineData(PagingMode.FourLevel)]
    [InlineData(PagingMode.FiveLevel)]
    public void Translates_4K_2M_and_1G_leaves(PagingMode mode)
    {
        var b = new PageTableBuilder(new byte[MemSize], mode, 0x100000);
        ulong kernel = mode.KernelHalfStart();
        b.Map(0x400000, 0x300000, 4096, P | W | U);
        b.Map(kernel + 0x40000000, 0x400000, 2UL << 20, P | W | NX);
        b.Map(kernel + 0x80000000, 0, 1UL << 30, P);
        var (f, image, space) = Open(b);
        using (f) using (image)
        {
            Assert.True(space.TryTranslate(0x400123, out Translation t));
            Assert.Equal(0x300123UL, t.PhysicalAddress);
            Assert.Equal(4096UL, t.PageSize);
            Assert.Equal(PageFlags.Writable | PageFlags.User | PageFlags.Executable, t.Flags);

            Assert.True(space.TryTranslate(kernel + 0x40000000 + 0x12345, out t));
            Assert.Equal(0x412345UL, t.PhysicalAddress);
            Assert.Equal(2UL << 20, t.PageSize);
            Assert.Equal(PageFlags.Writable, t.Flags); // NX set, user bit off in the leaf

            Assert.True(space.TryTranslate(kernel + 0x80000000 + 0x3456789, out ulong pa));
            Assert.Equal(0x3456789UL, pa);

            Assert.False(space.TryTranslate(0x800000, out pa));
            // Non-canonical addresses never translate.
            Assert.False(space.TryTranslate(mode == PagingMode.FourLevel ? 0x0000800000000000UL : 0x0100000000000000UL, out pa));
        }
    }

    [Fact]
    public void Large_page_frame_masks_PAT_and_high_bits()
    {
        var b = new PageTableBuilder(new byte[MemSize], PagingMode.FourLevel, 0x100000);
        b.Map(0xffff888000000000, 0x200000, 2UL << 20);
        // Set PAT (bit 12 in a large leaf), a protection key (bit 60) and a software bit (bit 55).
        ulong table = b.Root;
        for (int shift = 39; shift > 21; shift -= 9) table = b.Read(table + ((0xffff888000000000UL >> shift) & 511) * 8) & PageTableEntry.AddressMask;
        ulong slot = table + ((0xffff888000000000UL >> 21) & 511) * 8;
        b.Write(slot, b.Read(slot) | (1UL << 12) | (1UL << 60) | (1UL << 55));
        var (f, image, space) = Open(b);
        using (f) using (image)
        {
            Assert.True(space.TryTranslate(0xffff888000000010, out ulong pa));
            Assert.Equal(0x200010UL, pa);
        }
    }

    [Fact]
    public void Reads_cross_page_boundaries_and_stop_at_unmapped()
    {
        var b = new PageTableBuilder(new byte[MemSize], PagingMode.FourLevel, 0x100000);
        for (int i = 0; i < 4096 * 2; i++) b.Memory[0x500000 + i] = (byte)i;
        b.Memory[0x700000] = 0xAB;
        b.Map(0x10000, 0x500fff & ~0xfffUL, 4096);
        b.Map(0x11000, 0x700000, 4096);
        var (f, image, space) = Open(b);
        using (f) using (image)
        {
            var buf = new byte[8];
            Assert.Equal(8, space.Read(0x10ffc, buf));
            Assert.Equal(new byte[] { 0xfc, 0xfd, 0xfe, 0xff, 0xAB, 0, 0, 0 }, buf);
            Assert.Equal(4, space.Read(0x11ffc, buf));
            Assert.True(space.TryReadUInt64(0x10ff8, out _));
        }
    }

    [Fact]
    public void Enumerates_coalesced_mappings()
    {
        var b = new PageTableBuilder(new byte[MemSize], PagingMode.FourLevel, 0x100000);
        b.MapRange(0x400000, 0x300000, 0x4000, 4096, P | U);
        b.Map(0x404000, 0x600000, 4096, P | U);            // not physically contiguous
        b.Map(0xffffffff81000000, 0x200000, 2UL << 20, P | W);
        var (f, image, space) = Open(b);
        using (f) using (image)
        {
            var ranges = space.EnumerateMappings().ToList();
            Assert.Equal(3, ranges.Count);
            Assert.Equal(new MappedRange(0x400000, 0x300000, 0x4000, 4096, PageFlags.User | PageFlags.Executable), ranges[0]);
            Assert.Equal(0x404000UL, ranges[1].VirtualAddress);
            Assert.Equal(0xffffffff81000000UL, ranges[2].VirtualAddress);
            Assert.Single(space.EnumerateMappings(0xffff800000000000));
        }
    }

    /// <summary>A walk over a window starts at the window's entry in each table and stops at its end (issue 9: the
    /// process-code sweep walks one window per executable mapping): every window, including ones that start and end
    /// inside a table and ones in the kernel half, yields exactly the full enumeration's pages inside it.</summary>
    [Theory]
    [InlineData(PagingMode.FourLevel)]
    [InlineData(PagingMode.FiveLevel)]
    public void Windowed_walk_yields_exactly_the_pages_inside_the_window(PagingMode mode)
    {
        var b = new PageTableBuilder(new byte[MemSize], mode, 0x100000);
        ulong kernel = mode.KernelHalfStart();
        // Pages scattered over several tables at every level, low and high half, none physically contiguous.
        ulong[] vas = [0x400000, 0x401000, 0x5ff000, 0x600000, 0x7f0000200000, 0x7f0000201000, 0x7fff_ffff_f000,
            kernel + 0x1000, kernel + 0x40000000, kernel + 0x40003000, unchecked(0UL - 0x1000)];
        for (int i = 0; i < vas.Length; i++) b.Map(vas[i], 0x400000 + (ulong)i * 0x2000, 4096, P | U);
        var (f, image, space) = Open(b);
        using (f) using (image)
        {
            var all = space.EnumerateMappings().SelectMany(Pages).ToList();
            Assert.Equal(vas.Order(), all.Select(p => p.Va));
            (ulong Start, ulong End)[] windows = [(0x400800, 0x5ff001), (0x401000, 0x401000), (0x5ff000, 0x600000), (0x7f0000201000, 0x7fffffffffff),
                (0, 0x400000), (kernel, kernel + 0x40003000), (kernel + 0x40000fff, ulong.MaxValue), (0x600001, kernel)];
            foreach (var (start, end) in windows)
            {
                var expected = all.Where(p => p.Va + 4095 >= start && p.Va < end).ToList();
                var walked = space.EnumerateMappings(start, end).SelectMany(Pages).ToList();
                Assert.Equal(expected, walked);
            }
        }

        static IEnumerable<(ulong Va, ulong Pa)> Pages(MappedRange r)
        {
            for (ulong o = 0; o < r.Length; o += 4096) yield return (r.VirtualAddress + o, r.PhysicalAddress + o);
        }
    }

    [Fact]
    public void Hostile_self_referencing_tables_terminate()
    {
        var mem = new byte[MemSize];
        var b = new PageTableBuilder(mem, PagingMode.FourLevel, 0x100000);
        // Every entry of the root points back at the root: a cycle at every level.
        for (ulong i = 0; i < 512; i++) b.Write(b.Root + i * 8, b.Root | P | W | U);
        var (f, image, space) = Open(b);
        using (f) using (image)
        {
            var ranges = space.EnumerateMappings(maxLeaves: 100_000).Take(1_000_000).ToList();
            Assert.True(ranges.Count <= 100_000);
            space.TryTranslate(0x1234, out ulong _);
        }
    }

    [Fact]
    public void Cr3_decoding_drops_pcid_and_pti_bit()
    {
        Assert.Equal(0x2a3e000UL, ControlRegister3.KernelRoot(0x2a3f000 | 0x5));
        Assert.Equal(0x2a3f000UL, ControlRegister3.Root(0x2a3f000 | 0x5));
        Assert.Equal(PagingMode.FiveLevel, PagingModes.FromCr4(0x751ef0));
        Assert.True(PagingMode.FiveLevel.IsKernelAddress(0xff2ca01b4f600000));
        Assert.False(PagingMode.FourLevel.IsKernelAddress(0xff2ca01b4f600000));
    }
}
