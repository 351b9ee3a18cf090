using System.Buffers.Binary;
using Periscope.Memory.Formats;
using Periscope.UnitTests.Support;
using Periscope.X86;

namespace Periscope.UnitTests.X86;

/// <summary>32-bit PAE and non-PAE page walks over page tables built by hand in a raw image.</summary>
public class LegacyPagingTests
{
    private const ulong P = 1, W = 2, U = 4, PS = 0x80, Pat = 1UL << 12, NX = 1UL << 63;
    private const int MemSize = 16 << 20;

    private static void W64(byte[] m, ulong pa, ulong v) => BinaryPrimitives.WriteUInt64LittleEndian(m.AsSpan((int)pa), v);
    private static void W32(byte[] m, ulong pa, ulong v) => BinaryPrimitives.WriteUInt32LittleEndian(m.AsSpan((int)pa), (uint)v);

    private static T With<T>(byte[] memory, ulong root, PagingMode mode, Func<AddressSpace, T> test)
    {
        using var f = new TempFile(memory);
        using var image = MemoryImage.Open(f.Path);
        return test(new AddressSpace(image, root, mode));
    }

    /// <summary>PAE: PDPT at 0x100020 (32-byte aligned, not page aligned, as a pgd_cache PGD is), PD at 0x101000 for
    /// 0xC0000000–0xFFFFFFFF, PT at 0x102000; PD at 0x103000 for the user quarter 0–0x3FFFFFFF.</summary>
    private static byte[] PaeTables()
    {
        var m = new byte[MemSize];
        W64(m, 0x100020 + 3 * 8, 0x101000 | P);          // PDPTE 3: kernel quarter (PDPTEs carry no R/W/U)
        W64(m, 0x100020 + 0 * 8, 0x103000 | P);          // PDPTE 0: user quarter
        W64(m, 0x101000 + 0 * 8, 0x000000 | P | W | PS | NX); // 0xC0000000 → 0 (2 MiB, NX)
        W64(m, 0x101000 + 1 * 8, 0x200000 | P | W | PS | Pat); // 0xC0200000 → 0x200000, PAT set (bit 12 not in the frame)
        W64(m, 0x101000 + 2 * 8, 0x102000 | P | W);      // 0xC0400000 → PT
        W64(m, 0x102000 + 5 * 8, 0x500000 | P);          // 0xC0405000 → 0x500000 read-only, executable
        W64(m, 0x103000 + 4 * 8, 0x104000 | P | W | U);  // 0x00800000 → PT at 0x104000
        W64(m, 0x104000 + 0 * 8, 0x600000 | P | W | U | NX);
        W64(m, 0x104000 + 1 * 8, 0x601000 | P | W | U | NX);
        return m;
    }

    [Fact]
    public void Pae_translates_4K_and_2M_pages_and_drops_PAT_from_the_frame()
    {
        With(PaeTables(), 0x100020, PagingMode.Pae32, space =>
        {
            Assert.Equal(0x100020UL, space.Root);
            Assert.True(space.TryTranslate(0xC0012345, out Translation t));
            Assert.Equal(0x12345UL, t.PhysicalAddress);
            Assert.Equal(2UL << 20, t.PageSize);
            Assert.Equal(PageFlags.Writable, t.Flags);

            Assert.True(space.TranslateWithoutCache(0xC02ABCDE, out t));
            Assert.Equal(0x2ABCDEUL, t.PhysicalAddress);
            Assert.Equal(PageFlags.Writable | PageFlags.Executable, t.Flags);

            Assert.True(space.TryTranslate(0xC0405FF8, out t));
            Assert.Equal(0x500FF8UL, t.PhysicalAddress);
            Assert.Equal(4096UL, t.PageSize);
            Assert.Equal(PageFlags.Executable, t.Flags);

            Assert.True(space.TryTranslate(0x00801010, out t));
            Assert.Equal(0x601010UL, t.PhysicalAddress);
            Assert.Equal(PageFlags.Writable | PageFlags.User, t.Flags);
            return 0;
        });
    }

    [Fact]
    public void Pae_not_present_at_each_level_and_addresses_above_4G_do_not_translate()
    {
        With(PaeTables(), 0x100020, PagingMode.Pae32, space =>
        {
            Assert.False(space.TryTranslate(0x40000000, out ulong _));  // PDPTE 1 not present
            Assert.False(space.TryTranslate(0xC0600000, out ulong _));  // PDE 3 not present
            Assert.False(space.TryTranslate(0xC0406000, out ulong _));  // PTE 6 not present
            Assert.False(space.TryTranslate(0x1_C0000000, out ulong _)); // beyond 32 bits: no wrap-around into PDPTE 3
            return 0;
        });
    }

    [Fact]
    public void Pae_enumeration_coalesces_neighbours_and_respects_the_range()
    {
        var ranges = With(PaeTables(), 0x100020, PagingMode.Pae32, space => space.EnumerateMappings().ToList());
        Assert.Equal(
        [
            new MappedRange(0x00800000, 0x600000, 0x2000, 4096, PageFlags.Writable | PageFlags.User),
            new MappedRange(0xC0000000, 0, 2UL << 20, 2UL << 20, PageFlags.Writable),
            new MappedRange(0xC0200000, 0x200000, 2UL << 20, 2UL << 20, PageFlags.Writable | PageFlags.Executable),
            new MappedRange(0xC0405000, 0x500000, 4096, 4096, PageFlags.Executable),
        ], ranges);
        var kernelOnly = With(PaeTables(), 0x100020, PagingMode.Pae32, space => space.EnumerateMappings(0xC0000000).ToList());
        Assert.Equal(3, kernelOnly.Count);
    }

    /// <summary>Non-PAE: PD at 0x100000 (1024 4-byte entries), PT at 0x101000.</summary>
    private static byte[] NonPaeTables()
    {
        var m = new byte[MemSize];
        W32(m, 0x100000 + (0xC0000000 >> 22) * 4, 0x000000 | P | W | PS);        // 0xC0000000 → 0 (4 MiB)
        W32(m, 0x100000 + (0xC0400000 >> 22) * 4, 0x400000 | P | W | PS | Pat);  // 0xC0400000 → 0x400000, PAT set
        W32(m, 0x100000 + (0xC0800000 >> 22) * 4, 0x101000 | P | W | U);         // 0xC0800000 → PT
        W32(m, 0x101000 + 3 * 4, 0x800000 | P);                                   // 0xC0803000 → 0x800000 (PDE allows U, PTE not)
        W32(m, 0x101000 + 4 * 4, 0x9ff000 | P | W | U);
        return m;
    }

    [Fact]
    public void NonPae_translates_4K_and_4M_pages_and_stops_at_not_present()
    {
        With(NonPaeTables(), 0x100000, PagingMode.Legacy32, space =>
        {
            Assert.True(space.TryTranslate(0xC0123456, out Translation t));
            Assert.Equal(0x123456UL, t.PhysicalAddress);
            Assert.Equal(4UL << 20, t.PageSize);
            Assert.Equal(PageFlags.Writable | PageFlags.Executable, t.Flags); // no NX without PAE

            Assert.True(space.TranslateWithoutCache(0xC07FFFFF, out t));
            Assert.Equal(0x7FFFFFUL, t.PhysicalAddress);
            // The 2 MiB software TLB serves the second half of a 4 MiB page from its own piece.
            Assert.True(space.TryTranslate(0xC0612345, out t));
            Assert.Equal(0x612345UL, t.PhysicalAddress);
            Assert.True(space.TryTranslate(0xC0412345, out ulong pa));
            Assert.Equal(0x412345UL, pa);

            Assert.True(space.TryTranslate(0xC0803ABC, out t));
            Assert.Equal(0x800ABCUL, t.PhysicalAddress);
            Assert.Equal(PageFlags.Executable, t.Flags);
            Assert.True(space.TryTranslate(0xC0804001, out t));
            Assert.Equal(0x9ff001UL, t.PhysicalAddress);
            Assert.Equal(PageFlags.Writable | PageFlags.User | PageFlags.Executable, t.Flags);

            Assert.False(space.TryTranslate(0xC0805000, out pa));  // PTE not present
            Assert.False(space.TryTranslate(0xC0C00000, out pa));  // PDE not present
            Assert.False(space.TryTranslate(0x1_C0000000, out pa));
            return 0;
        });
    }

    [Fact]
    public void NonPae_reads_cross_a_4M_page_and_enumerates_every_leaf()
    {
        var m = NonPaeTables();
        m[0x3FFFFE] = 0x11; m[0x3FFFFF] = 0x22; m[0x400000] = 0x33; m[0x400001] = 0x44;
        With(m, 0x100000, PagingMode.Legacy32, space =>
        {
            Assert.True(space.TryReadUInt64(0xC03FFFFE, out ulong v));
            Assert.Equal(0x44332211UL, v & 0xffffffff);
            Assert.Equal(4, ((IVirtualMemory)space).PointerSize);
            var ranges = space.EnumerateMappings().ToList();
            Assert.Equal(
            [
                new MappedRange(0xC0000000, 0, 8UL << 20, 4UL << 20, PageFlags.Writable | PageFlags.Executable),
                new MappedRange(0xC0803000, 0x800000, 4096, 4096, PageFlags.Executable),
                new MappedRange(0xC0804000, 0x9ff000, 4096, 4096, PageFlags.Writable | PageFlags.User | PageFlags.Executable),
            ], ranges);
            return 0;
        });
    }

    [Theory]
    [InlineData(0x00C00083u, 0x00C00000UL)]              // plain 4 MiB page
    [InlineData(0x00C01083u, 0x00C00000UL)]              // PAT (bit 12) is not an address bit
    [InlineData(0x00C0A083u, 0x5_00C00000UL)]            // PSE-36: bits 20:13 = 0b101 → physical bits 39:32
    [InlineData(0xFFDFE083u, 0xFF_FFC00000UL)]           // every PSE-36 bit
    public void NonPae_large_frame_decodes_PSE36_and_ignores_PAT(uint pde, ulong frame) =>
        Assert.Equal(frame, LegacyPaging.LargeFrame(pde));

    [Theory]
    [InlineData(PagingMode.Legacy32)]
    [InlineData(PagingMode.Pae32)]
    public void A_directory_whose_every_entry_points_at_itself_stops_at_the_budget(PagingMode mode)
    {
        var m = new byte[1 << 20];
        ulong pd = 0x10000;
        if (mode == PagingMode.Pae32)
        {
            for (ulong i = 0; i < 4; i++) W64(m, 0x20000 + i * 8, pd | P);
            for (ulong i = 0; i < 512; i++) W64(m, pd + i * 8, pd | P | W | U);
        }
        else for (ulong i = 0; i < 1024; i++) W32(m, pd + i * 4, pd | P | W | U);
        ulong root = mode == PagingMode.Pae32 ? 0x20000 : pd;
        var ranges = With(m, root, mode, space => space.EnumerateMappings(maxLeaves: 5_000).ToList());
        // Tables count against the budget too; every leaf maps the directory itself.
        Assert.InRange(ranges.Count, 4_000, 4_999);
        Assert.All(ranges, r => Assert.Equal(pd, r.PhysicalAddress));
        Assert.Equal(4096UL, ranges[1].VirtualAddress - ranges[0].VirtualAddress);
    }

    [Fact]
    public void Modes_describe_32_bit_addresses()
    {
        Assert.True(PagingMode.Pae32.Is32Bit());
        Assert.False(PagingMode.FourLevel.Is32Bit());
        Assert.True(PagingMode.Legacy32.IsCanonical(0xFFFFFFFF));
        Assert.False(PagingMode.Pae32.IsCanonical(0x1_0000_0000));
        Assert.Equal(4, PagingMode.Pae32.PointerSize());
        Assert.Equal(8, PagingMode.FourLevel.PointerSize());
        Assert.Equal(PagingMode.Pae32, PagingModes.FromControlRegisters(0x80000011, 0x20, longMode: false));
        Assert.Equal(PagingMode.Legacy32, PagingModes.FromControlRegisters(0x80000011, 0x10, longMode: false));
        Assert.Null(PagingModes.FromControlRegisters(0x11, 0x20, longMode: false));
    }
}
