using Periscope.Linux.Model;

namespace Periscope.UnitTests.Linux;

public sealed class KernelVmcoreInfoTests
{
    /// <summary>The printk lines of Debian's 6.1 686-pae kernel's VMCOREINFO (4-byte words), as the kernel printed them.</summary>
    private const string I386Printk = """
        OSRELEASE=6.1.0-50-686-pae
        SYMBOL(prb)=cac7d444
        SYMBOL(vmap_area_list)=cad06424
        SIZE(printk_ringbuffer)=44
        OFFSET(printk_ringbuffer.desc_ring)=0
        OFFSET(printk_ringbuffer.text_data_ring)=24
        OFFSET(printk_ringbuffer.fail)=40
        SIZE(prb_desc_ring)=24
        OFFSET(prb_desc_ring.count_bits)=0
        OFFSET(prb_desc_ring.descs)=4
        OFFSET(prb_desc_ring.infos)=8
        OFFSET(prb_desc_ring.head_id)=12
        OFFSET(prb_desc_ring.tail_id)=16
        SIZE(prb_desc)=12
        OFFSET(prb_desc.state_var)=0
        OFFSET(prb_desc.text_blk_lpos)=4
        SIZE(prb_data_blk_lpos)=8
        OFFSET(prb_data_blk_lpos.begin)=0
        OFFSET(prb_data_blk_lpos.next)=4
        SIZE(printk_info)=88
        OFFSET(printk_info.seq)=0
        OFFSET(printk_info.ts_nsec)=8
        OFFSET(printk_info.text_len)=16
        OFFSET(printk_info.caller_id)=20
        OFFSET(printk_info.dev_info)=24
        SIZE(prb_data_ring)=16
        OFFSET(prb_data_ring.size_bits)=0
        OFFSET(prb_data_ring.data)=4
        OFFSET(prb_data_ring.head_lpos)=8
        OFFSET(prb_data_ring.tail_lpos)=12
        """;

    [Fact]
    public void Symbols_offsets_and_sizes_are_read_by_name()
    {
        var info = KernelVmcoreInfo.Parse(I386Printk, "test");
        Assert.Equal("6.1.0-50-686-pae", info.OsRelease);
        Assert.True(info.TryGetSymbol("prb", out ulong prb));
        Assert.Equal(0xcac7d444UL, prb);
        Assert.True(info.TryGetOffset("printk_info", "caller_id", out int caller));
        Assert.Equal(20, caller);
        Assert.True(info.TryGetSize("printk_info", out int size));
        Assert.Equal(88, size);
        Assert.True(info.DescribesStruct("prb_desc"));
        Assert.False(info.DescribesStruct("prb"));
        Assert.False(info.TryGetSymbol("init_pid_ns", out _));
    }

    [Theory]
    [InlineData("OFFSET(a.b)=-4")]
    [InlineData("OFFSET(a.b)=99999999999")]
    [InlineData("OFFSET(a.b)=0x10")]
    [InlineData("OFFSET()=4")]
    [InlineData("OFFSET(a.b=4")]
    [InlineData("=4")]
    public void Malformed_or_implausible_offsets_are_dropped(string line)
    {
        var info = KernelVmcoreInfo.Parse(line, "test");
        Assert.False(info.TryGetOffset("a", "b", out _));
    }

    [Fact]
    public void The_first_statement_of_a_name_wins_and_text_past_the_cap_is_not_read()
    {
        var info = KernelVmcoreInfo.Parse("SYMBOL(x)=10\nSYMBOL(x)=20\n", "test");
        Assert.True(info.TryGetSymbol("x", out ulong x));
        Assert.Equal(0x10UL, x);

        string huge = new string('A', KernelVmcoreInfo.MaxBytes) + "\nSYMBOL(late)=1\n";
        Assert.False(KernelVmcoreInfo.Parse(huge, "test").TryGetSymbol("late", out _));
        string manyLines = string.Concat(Enumerable.Repeat("x\n", 2000)) + "SYMBOL(late)=1\n";
        Assert.False(KernelVmcoreInfo.Parse(manyLines, "test").TryGetSymbol("late", out _));
    }

    [Fact]
    public void Printk_layout_from_VMCOREINFO_places_facility_and_level_after_text_len()
    {
        var l = PrintkLayout.FromVmcoreInfo(KernelVmcoreInfo.Parse(I386Printk, "test"), word: 4);
        Assert.Equal((12, 0, 4, 8), (l.DescSize, l.StateVar, l.Begin, l.Next));
        Assert.Equal((88, 16, 18), (l.InfoSize, l.TextLen, l.Facility));
        Assert.Equal((19 * 8 + 5, 3), (l.LevelBitOffset, l.LevelBits));
        Assert.Equal(20, l.CallerId);
        Assert.Equal((24, 0, 4), (l.TextDataRing, l.SizeBits, l.Data));
    }

    [Theory]
    [InlineData("OFFSET(printk_info.caller_id)=20", "OFFSET(printk_info.caller_id)=18")] // no room for facility and level
    [InlineData("SIZE(prb_desc)=12", "SIZE(prb_desc)=6")]                                 // lpos.next outside the descriptor
    [InlineData("OFFSET(prb_desc_ring.tail_id)=16", "OFFSET(prb_desc_ring.tail_id)=4000")] // outside the ring struct
    [InlineData("SIZE(printk_info)=88", "")]                                             // a size the layout needs is missing
    public void A_layout_that_does_not_fit_its_structs_is_refused(string line, string replacement)
    {
        var info = KernelVmcoreInfo.Parse(I386Printk.Replace(line, replacement, StringComparison.Ordinal), "test");
        Assert.Throws<KernelModelException>(() => PrintkLayout.FromVmcoreInfo(info, word: 4));
    }
}
