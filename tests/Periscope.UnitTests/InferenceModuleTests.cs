using System.Buffers.Binary;
using Periscope.Linux.Inference;
using Periscope.Linux.Model;
using Periscope.Memory;

namespace Periscope.UnitTests;

/// <summary>
/// The 6.4+ module layout without BTF (struct module_memory mem[7]) on synthetic struct modules: the rule must find the
/// array, its stride and where size sits (after base, or after bool is_rox since 6.13), and Build must assemble mem[]
/// offsets from it. Before this rule only core_layout (6.1..6.3) was searched, so modules failed without BTF on 6.4+.
/// </summary>
public class InferenceModuleTests
{
    private static readonly VirtualRange Area = new(0xffff_ffff_c000_0000, 0xffff_ffff_ff00_0000);
    private const int MemAt = 0x150, Stride = 72;

    /// <summary>A struct module window at module address <paramref name="module"/> (inside its data), mem[] as 6.4+ lays it out.</summary>
    private static (ulong Address, byte[] Window, bool Live) Module(int index, int sizeOffset, bool treeNode = true, bool initLeft = false)
    {
        ulong text = 0xffff_ffff_c010_0000 + (ulong)index * 0x10_0000, data = text + 0x4000, rodata = text + 0x8000;
        ulong module = data + 0x40 + (ulong)index * 0x80;
        var w = new byte[4096];
        BinaryPrimitives.WriteInt32LittleEndian(w, 0); // MODULE_STATE_LIVE
        "abcdefgh"u8.CopyTo(w.AsSpan(0x18));
        (ulong Base, uint Size)[] mem = [(text, 0x2000 + (uint)index * 0x1000), (data, 0x3000), (rodata, 0x1000), (0, 0), (initLeft ? text + 0xc000 : 0, initLeft ? 0x1000u : 0), (0, 0), (0, 0)];
        int stride = treeNode ? Stride : 16;
        for (int i = 0; i < mem.Length; i++)
        {
            int e = MemAt + i * stride;
            BinaryPrimitives.WriteUInt64LittleEndian(w.AsSpan(e), mem[i].Base);
            BinaryPrimitives.WriteUInt32LittleEndian(w.AsSpan(e + sizeOffset), mem[i].Size);
            if (sizeOffset == 12 && i == 0) w[e + 8] = 1; // is_rox on the text
            if (treeNode)
            {
                BinaryPrimitives.WriteUInt64LittleEndian(w.AsSpan(e + 16), module);
                // latch_tree_node: two rb_nodes of kernel pointers, as noise a wrong stride would read
                for (int k = 24; k < 72; k += 8) BinaryPrimitives.WriteUInt64LittleEndian(w.AsSpan(e + k), 0xffff_8880_0123_4000 + (ulong)(k * 8));
            }
        }
        return (module, w, true);
    }

    [Theory]
    [InlineData(8)]   // 6.4 .. 6.12: { base, size, mtn }
    [InlineData(12)]  // 6.13+: { base, is_rox, size, mtn }
    public void The_mem_array_is_found_with_its_stride_and_where_size_sits(int sizeOffset)
    {
        var modules = Enumerable.Range(0, 3).Select(i => Module(i, sizeOffset)).ToList();
        var found = ModuleMemoryRule.Candidates(modules, Area, 0x18, _ => { });
        Assert.Equal([new ModuleMemoryLayout(MemAt, sizeOffset, Stride, TreeNode: true)], found);
    }

    [Fact]
    public void Without_the_tree_node_the_16_byte_stride_is_taken()
    {
        var modules = Enumerable.Range(0, 3).Select(i => Module(i, 8, treeNode: false)).ToList();
        var found = ModuleMemoryRule.Candidates(modules, Area, 0x18, _ => { });
        Assert.Equal([new ModuleMemoryLayout(MemAt, 8, 16, TreeNode: false)], found);
    }

    [Fact]
    public void A_live_module_whose_init_memory_is_still_there_fits_no_layout()
    {
        var modules = new[] { Module(0, 8), Module(1, 8, initLeft: true) };
        Assert.Empty(ModuleMemoryRule.Candidates(modules, Area, 0x18, _ => { }));
    }

    [Fact]
    public void A_6_1_core_layout_module_fits_no_mem_layout()
    {
        // core_layout { base, size, text_size, ro_size, ... } at 0x140: base and size, then more sizes, no mtn back-pointer
        var w = new byte[4096];
        ulong b = 0xffff_ffff_c020_0000, module = b + 0x1000;
        BinaryPrimitives.WriteUInt64LittleEndian(w.AsSpan(0x140), b);
        BinaryPrimitives.WriteUInt32LittleEndian(w.AsSpan(0x148), 0x5000);
        BinaryPrimitives.WriteUInt32LittleEndian(w.AsSpan(0x14c), 0x2000);
        BinaryPrimitives.WriteUInt32LittleEndian(w.AsSpan(0x150), 0x3000);
        Assert.Empty(ModuleMemoryRule.Candidates([(module, w, true)], Area, 0x18, _ => { }));
    }

    [Fact]
    public void Build_assembles_the_6_4_module_offsets_from_mem()
    {
        var members = InferenceCacheTests.Debian61.Where(m => m.Member != "core_layout")
            .Append(("module", "mem", 0x150)).Append(("module_memory", "size", 12)).Append(("module_memory", InferenceReport.SizeOfMember, 72));
        var report = InferenceCacheTests.Parse(InferenceCacheTests.Entry(members), out string? error);
        Assert.True(report is not null, error);
        var o = OffsetInference.Build(report!, IntrospectionLimits.Default).Module;
        Assert.Null(o.CoreLayout);
        Assert.Equal(0x150, o.Mem);
        Assert.Equal(7, o.MemCount);
        Assert.Equal(72, o.MemSize);
        Assert.Equal(12, o.LayoutSize);
        Assert.Equal(0, o.MemText);
        Assert.Equal(2, o.MemRodata);
    }

    [Fact]
    public void Build_refuses_a_mem_array_without_its_stride()
    {
        var members = InferenceCacheTests.Debian61.Where(m => m.Member != "core_layout").Append(("module", "mem", 0x150)).Append(("module_memory", "size", 8));
        var report = InferenceCacheTests.Parse(InferenceCacheTests.Entry(members), out _)!;
        var e = Assert.ThrowsAny<KernelModelException>(() => OffsetInference.Build(report, IntrospectionLimits.Default));
        Assert.Contains("module_memory layout", e.Message);
    }
}
