using System.Buffers.Binary;
using Periscope.Linux.Discovery;
using Periscope.Memory;
using Periscope.Memory.Formats;
using Periscope.UnitTests.Support;
using Periscope.X86;

namespace Periscope.UnitTests.Linux;

/// <summary>i386 kernel discovery on hand-built page directories: lowmem mapped linearly at PAGE_OFFSET, the image's
/// text read-only and executable in it, everything else writable (and NX under PAE).</summary>
public class Kernel32LocatorTests
{
    private const ulong P = 1, W = 2, PS = 0x80, NX = 1UL << 63;
    private const int Ram = 32 << 20;
    private const ulong Root = 0x100000;

    /// <summary>PAE: PDPT at 0x100000, PDs from 0x101000; lowmem [0, 32 MiB) at <paramref name="pageOffset"/> in 2 MiB
    /// pages, text at physical 8–10 MiB, rodata 10–12 MiB.</summary>
    private static byte[] Pae(ulong pageOffset)
    {
        var m = new byte[Ram];
        ulong pd = 0x101000;
        BinaryPrimitives.WriteUInt64LittleEndian(m.AsSpan((int)(Root + ((pageOffset >> 30) & 3) * 8)), pd | P);
        for (ulong pa = 0; pa < Ram; pa += 2UL << 20)
        {
            ulong flags = pa == 8UL << 20 ? P | PS : pa == 10UL << 20 ? P | PS | NX : P | W | PS | NX;
            ulong va = pageOffset + pa;
            BinaryPrimitives.WriteUInt64LittleEndian(m.AsSpan((int)(pd + ((va >> 21) & 511) * 8)), pa | flags);
        }
        return m;
    }

    /// <summary>Non-PAE: page directory at 0x100000, 4 MiB pages, text (read-only) at physical 8–12 MiB.</summary>
    private static byte[] NonPae()
    {
        var m = new byte[Ram];
        for (ulong pa = 0; pa < Ram; pa += 4UL << 20)
        {
            ulong flags = pa == 8UL << 20 ? P | PS : P | W | PS;
            BinaryPrimitives.WriteUInt32LittleEndian(m.AsSpan((int)(Root + ((0xC0000000 + pa) >> 22) * 4)), (uint)(pa | flags));
        }
        return m;
    }

    private static T With<T>(byte[] memory, Func<IPhysicalMemory, T> test)
    {
        using var f = new TempFile(memory);
        using var image = MemoryImage.Open(f.Path);
        return test(image);
    }

    [Theory]
    [InlineData(0xC0000000UL)]
    [InlineData(0x80000000UL)]
    public void Pae_directory_gives_page_offset_and_text(ulong pageOffset)
    {
        var (ok, po, text, why) = With(Pae(pageOffset), m =>
            (Kernel32Locator.TryVerify(m, Root, PagingMode.Pae32, out ulong po, out ulong text, out string? why), po, text, why));
        Assert.True(ok, why);
        Assert.Equal(pageOffset, po);
        Assert.Equal(pageOffset + (8UL << 20), text);
    }

    [Fact]
    public void NonPae_directory_gives_text_where_lowmem_turns_read_only()
    {
        var (ok, po, text) = With(NonPae(), m => (Kernel32Locator.TryVerify(m, Root, PagingMode.Legacy32, out ulong po, out ulong text, out _), po, text));
        Assert.True(ok);
        Assert.Equal(0xC0000000UL, po);
        Assert.Equal(0xC0800000UL, text);
    }

    [Fact]
    public void Cr4_PAE_picks_the_mode_and_the_layout_names_cr3()
    {
        var cpu = new CpuState { Cr0 = 0x80050033, Cr3 = Root, Cr4 = 0x20, Source = "test" };
        var layout = With(Pae(0xC0000000), m => KernelLocator.Locate(m, new DiscoveryInputs { Cpus = [cpu], Methods = DiscoveryMethods.Cr3 }, IntrospectionLimits.Default, new DiscoveryLog()));
        Assert.Equal(PagingMode.Pae32, layout.Mode);
        Assert.Equal(DiscoveryMethod.Cr3, layout.FoundBy);
        Assert.Equal(Root, layout.KernelPgd);
        Assert.Equal(0xC0800000UL, layout.TextVa);
        Assert.Equal(8UL << 20, layout.TextPa);
        Assert.Equal(0xC0000000UL, layout.PageOffsetBase);
    }

    [Fact]
    public void Vmcoreinfo_swapper_pg_dir_is_found_without_registers()
    {
        var layout = With(NonPae(), m => KernelLocator.Locate(m,
            new DiscoveryInputs { VmcoreInfo = "OSRELEASE=6.1.0-50-686\nSYMBOL(swapper_pg_dir)=c0100000\n", Methods = DiscoveryMethods.VmcoreInfo },
            IntrospectionLimits.Default, new DiscoveryLog()));
        Assert.Equal(PagingMode.Legacy32, layout.Mode);
        Assert.Equal(DiscoveryMethod.VmcoreInfo, layout.FoundBy);
        Assert.Equal(Root, layout.KernelPgd);
        Assert.Equal(0xC0800000UL, layout.TextVa);
    }

    [Fact]
    public void Writable_lowmem_without_text_is_not_a_kernel()
    {
        var m = Pae(0xC0000000);
        // Make the text page writable: no read-only executable run is left.
        ulong slot = 0x101000 + ((0xC0800000UL >> 21) & 511) * 8;
        BinaryPrimitives.WriteUInt64LittleEndian(m.AsSpan((int)slot), (8UL << 20) | P | W | PS);
        var (ok, why) = With(m, mem => (Kernel32Locator.TryVerify(mem, Root, PagingMode.Pae32, out _, out _, out string? why), why));
        Assert.False(ok);
        Assert.Contains("no read-only executable kernel text", why);
    }

    [Fact]
    public void Self_referencing_directory_is_rejected_within_bounds()
    {
        var m = new byte[Ram];
        for (ulong i = 0; i < 1024; i++) BinaryPrimitives.WriteUInt32LittleEndian(m.AsSpan((int)(Root + i * 4)), (uint)(Root | P | W));
        var (ok, why) = With(m, mem => (Kernel32Locator.TryVerify(mem, Root, PagingMode.Legacy32, out _, out _, out string? why), why));
        Assert.False(ok);
        Assert.Contains("maps no PAGE_OFFSET candidate", why);
    }

    [Fact]
    public void A_vcpu_in_64_bit_code_is_not_read_as_an_i386_kernel()
    {
        // Same tables, but CS.L says long mode: the 32-bit reading is not tried, so nothing is found by CR3.
        var cpu = new CpuState { Cr0 = 0x80050033, Cr3 = Root, Cr4 = 0x20, Cs = new SegmentState(0x10, 0xffffffff, 0x00af9b00, 0), Source = "test" };
        var e = With(Pae(0xC0000000), m => Assert.Throws<KernelNotFoundException>(() =>
            KernelLocator.Locate(m, new DiscoveryInputs { Cpus = [cpu], Methods = DiscoveryMethods.Cr3 }, IntrospectionLimits.Default, new DiscoveryLog())));
        Assert.DoesNotContain("32-bit CR3", e.Message);
    }
}
