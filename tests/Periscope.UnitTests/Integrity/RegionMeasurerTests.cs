using Periscope.Integrity.Measurement;
using Periscope.Integrity.Regions;
using Periscope.Memory.Formats;
using Periscope.UnitTests.Support;
using Periscope.X86;
using static Periscope.UnitTests.Support.PageTableBuilder;

namespace Periscope.UnitTests.Integrity;

/// <summary>Which pages of a region are present comes from walking the page tables over it: 4 KiB and 2 MiB leaves
/// inside a 64 MiB region are measured with their content; everything else is recorded as not present.</summary>
public sealed class RegionMeasurerTests
{
    [Theory]
    [InlineData(PagingMode.FourLevel)]
    [InlineData(PagingMode.FiveLevel)]
    public void Only_mapped_pages_of_a_region_are_present(PagingMode mode)
    {
        var b = new PageTableBuilder(new byte[8 << 20], mode, 0x100000);
        ulong start = 0xffffffff80000000UL - (64UL << 20) + 0x800;   // not page aligned: the first page is partial
        ulong page = start & ~0xfffUL;
        b.Map(page, 0x300000, 4096);
        b.Map(page + 0x5000, 0x301000, 4096);
        ulong large = (start + (16UL << 20)) & ~((2UL << 20) - 1);
        b.Map(large, 0x400000, 2UL << 20);
        b.Memory[0x300000 + 0x800] = 0xaa;
        b.Memory[0x400000 + 0x1234] = 0xbb;
        using var f = new TempFile(b.Memory);
        using var image = MemoryImage.Open(f.Path);
        var space = new AddressSpace(image, b.Root, mode);
        var region = new MeasuredRegion("test", RegionKind.KernelText, start, 64UL << 20);
        foreach (var measured in new[] { RegionMeasurer.Measure(space, region, sha256: true, keepContent: true),
                     RegionMeasurer.MeasureAll(space, [region], sha256: true, keepContent: true, parallelism: 2)[0] })
        {
            Assert.Equal((int)((region.End - page + 4095) / 4096), measured.Pages.Count);
            var present = measured.Pages.Where(p => p.Present).ToList();
            Assert.Equal(2 + 512, present.Count);
            Assert.Equal(start, present[0].VirtualAddress);
            Assert.Equal(4096 - 0x800, present[0].Length);
            Assert.Equal(0xaa, present[0].Content![0]);
            Assert.Equal(page + 0x5000, present[1].VirtualAddress);
            Assert.Equal(0x301000UL, present[1].PhysicalAddress);
            var inLarge = present.Single(p => p.VirtualAddress == large + 0x1000);
            Assert.Equal(0xbb, inLarge.Content![0x234]);
            Assert.Equal(0x401000UL, inLarge.PhysicalAddress);
            Assert.All(measured.Pages.Where(p => !p.Present), p => Assert.Null(p.Content));
            Assert.All(measured.Pages.Select((p, i) => (p, i)), x => Assert.Equal(x.i, x.p.Index));
        }
    }
}
