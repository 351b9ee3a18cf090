using Periscope.Memory.Formats;
using Periscope.UnitTests.Support;
using Periscope.X86;
using static Periscope.UnitTests.Support.PageTableBuilder;

namespace Periscope.UnitTests.X86;

/// <summary>Page tables a compromised guest can build: the walk must stop at its budget, whatever the shape.</summary>
public class HostileTableTests
{
    [Theory]
    [InlineData(PagingMode.FourLevel)]
    [InlineData(PagingMode.FiveLevel)]
    public void A_table_whose_every_entry_points_at_itself_stops_at_the_budget(PagingMode mode)
    {
        var b = new PageTableBuilder(new byte[1 << 20], mode, 0x10000);
        for (ulong i = 0; i < 512; i++) b.Write(b.Root + i * 8, b.Root | P | W | U);
        using var f = new TempFile(b.Memory);
        using var image = MemoryImage.Open(f.Path);
        var space = new AddressSpace(image, b.Root, mode);

        var ranges = space.EnumerateMappings(maxLeaves: 5_000).ToList();

        // Tables count against the budget too, so fewer than 5,000 leaves come out; every one maps the table itself.
        Assert.InRange(ranges.Count, 4_000, 5_000);
        Assert.All(ranges, r => Assert.Equal(b.Root, r.PhysicalAddress));
        Assert.Equal(0UL, ranges[0].VirtualAddress);
        Assert.Equal(4096UL, ranges[1].VirtualAddress);
        // The same tables still translate: the walk is bounded by its depth.
        Assert.True(space.TranslateWithoutCache(0x12345678, out var t));
        Assert.Equal(b.Root | 0x678, t.PhysicalAddress);
    }
}
