using Periscope.Linux.Inference;
using Periscope.Linux.Model;
using Periscope.Memory;

namespace Periscope.UnitTests.Linux;

/// <summary>The busy vmalloc areas (both eras) and the struct vmap_area shape inferred from them, over synthetic memory,
/// hostile data included: cycles, bad links, unsorted areas, absurd node counts.</summary>
public class VmallocAreasTests
{
    // struct vmap_area as on 6.1 x86-64: va_start 0, va_end 8, rb_node 16 (24 bytes), list 40, 72 bytes in all.
    private const int AreaSize = 72, VaEnd = 8, RbNode = 16, List = 40;
    private const ulong Areas = SyntheticGuest.Base + 0x10_0000, Head = SyntheticGuest.Base + 0x1000;
    private const ulong Vmalloc = 0xffff_c900_0000_0000;
    private static readonly VmallocOffsets Offsets = new() { VaStart = 0, VaEnd = VaEnd, List = List, RbNode = RbNode };

    private static ulong Area(int i) => Areas + (ulong)(i * AreaSize);

    /// <summary><paramref name="count"/> areas of two pages each, ascending, on a list at <paramref name="head"/>, their
    /// rb_nodes a right-leaning chain (each node's right child the next).</summary>
    private static void WriteAreas(SyntheticGuest g, ulong head, int first, int count)
    {
        for (int i = first; i < first + count; i++)
        {
            g.U64(Area(i), Vmalloc + (ulong)i * 0x3000);
            g.U64(Area(i) + VaEnd, Vmalloc + (ulong)i * 0x3000 + 0x2000);
            g.U64(Area(i) + RbNode, i == first ? 0 : Area(i - 1) + RbNode);
            g.U64(Area(i) + RbNode + 8, i + 1 < first + count ? Area(i + 1) + RbNode : 0);
        }
        g.CircularList([head, .. Enumerable.Range(first, count).Select(i => Area(i) + List)]);
    }

    private static bool NoSymbols(string name, out ulong address) { address = 0; return false; }

    [Fact]
    public void Shape_of_a_sorted_list_is_va_start_va_end_and_rb_node_at_their_distances_from_the_link()
    {
        using var g = new SyntheticGuest();
        WriteAreas(g, Head, 0, 20);
        var r = g.Reader(IntrospectionLimits.Default);

        var links = VmapAreaShape.Links(r, Head, 1000)!;
        Assert.Equal(20, links.Count);
        var windows = VmapAreaShape.Windows(r, links);
        Assert.Equal([new VmapAreaBounds(-List, VaEnd - List)], VmapAreaShape.Bounds(r, [windows]));
        Assert.Equal([RbNode - List], VmapAreaShape.RbNodes(r, [links], [windows]));
    }

    [Fact]
    public void Unsorted_areas_have_no_shape()
    {
        using var g = new SyntheticGuest();
        WriteAreas(g, Head, 0, 20);
        g.U64(Area(7), Vmalloc); // overlaps area 0..1: not the kernel's sorted busy list
        var r = g.Reader(IntrospectionLimits.Default);

        var links = VmapAreaShape.Links(r, Head, 1000)!;
        Assert.Empty(VmapAreaShape.Bounds(r, [VmapAreaShape.Windows(r, links)]));
    }

    [Fact]
    public void A_cycle_that_misses_the_head_or_a_link_into_nowhere_is_no_list()
    {
        using var g = new SyntheticGuest();
        WriteAreas(g, Head, 0, 20);
        g.U64(Area(19) + List, Area(5) + List); // loops back into the middle, never to the head
        WriteAreas(g, Head + 0x100, 20, 10);
        g.U64(Area(25) + List, 0x4141_4141_4141_4141); // not a kernel pointer
        var r = g.Reader(IntrospectionLimits.Default);

        Assert.Null(VmapAreaShape.Links(r, Head, 1000));
        Assert.Null(VmapAreaShape.Links(r, Head + 0x100, 1000));
    }

    [Fact]
    public void Area_list_era_walks_vmap_area_list_and_reads_each_range()
    {
        using var g = new SyntheticGuest();
        WriteAreas(g, Head, 0, 12);
        var r = g.Reader(IntrospectionLimits.Default);
        bool Symbols(string name, out ulong address) { address = Head; return name == "vmap_area_list"; }

        var areas = VmallocAreas.Open(r, new ListWalker(r, new Diagnostics()), Offsets, Symbols, IntrospectionLimits.Default, out _)!;
        Assert.Equal(VmallocEra.AreaList, areas.Era);
        var all = areas.Walk(1000).ToList();
        Assert.Equal(Enumerable.Range(0, 12).Select(i => new VmallocArea(Area(i), Vmalloc + (ulong)i * 0x3000, Vmalloc + (ulong)i * 0x3000 + 0x2000)), all);
    }

    // 6.9+: two struct vmap_node of NodeSize bytes at Nodes, each with its busy list head at BusyHead.
    private const int NodeSize = 0x180, BusyHead = 0x108;
    private const ulong Nodes = SyntheticGuest.Base + 0x2000, NodesPointer = SyntheticGuest.Base + 0x8000, NodeCount = NodesPointer + 8;

    private static bool NodeSymbols(string name, out ulong address)
    {
        address = name == "vmap_nodes" ? NodesPointer : NodeCount;
        return name is "vmap_nodes" or "nr_vmap_nodes";
    }

    [Fact]
    public void Node_era_walks_every_nodes_busy_list_with_one_cap_for_all()
    {
        using var g = new SyntheticGuest();
        g.U64(NodesPointer, Nodes);
        g.U32(NodeCount, 2);
        WriteAreas(g, Nodes + BusyHead, 0, 6);
        WriteAreas(g, Nodes + NodeSize + BusyHead, 6, 5);
        var r = g.Reader(IntrospectionLimits.Default);
        var offsets = Offsets with { NodeBusyHead = BusyHead, NodeSize = NodeSize };

        var diagnostics = new Diagnostics();
        var areas = VmallocAreas.Open(r, new ListWalker(r, diagnostics), offsets, NodeSymbols, IntrospectionLimits.Default, out _)!;
        Assert.Equal(VmallocEra.Nodes, areas.Era);
        Assert.Equal(11, areas.Walk(1000).Count());
        Assert.Equal(8, areas.Walk(8).Count()); // the cap covers both nodes together
    }

    [Theory]
    [InlineData(0u)]
    [InlineData(5000u)]
    [InlineData(uint.MaxValue)]
    public void An_absurd_node_count_is_refused_before_anything_is_read(uint count)
    {
        using var g = new SyntheticGuest();
        g.U64(NodesPointer, Nodes);
        g.U32(NodeCount, count);
        var r = g.Reader(IntrospectionLimits.Default);
        var offsets = Offsets with { NodeBusyHead = BusyHead, NodeSize = NodeSize };

        Assert.Null(VmallocAreas.Open(r, new ListWalker(r, new Diagnostics()), offsets, NodeSymbols, IntrospectionLimits.Default, out string reason));
        Assert.Contains("nr_vmap_nodes", reason);
    }

    [Fact]
    public void Several_nodes_without_a_known_node_size_are_refused()
    {
        using var g = new SyntheticGuest();
        g.U64(NodesPointer, Nodes);
        g.U32(NodeCount, 2);
        var r = g.Reader(IntrospectionLimits.Default);

        Assert.Null(VmallocAreas.Open(r, new ListWalker(r, new Diagnostics()), Offsets with { NodeBusyHead = BusyHead }, NodeSymbols, IntrospectionLimits.Default, out string reason));
        Assert.Contains("sizeof(struct vmap_node)", reason);
    }

    [Fact]
    public void Neither_era_found_says_so()
    {
        using var g = new SyntheticGuest();
        var r = g.Reader(IntrospectionLimits.Default);
        Assert.Null(VmallocAreas.Open(r, new ListWalker(r, new Diagnostics()), Offsets, NoSymbols, IntrospectionLimits.Default, out string reason));
        Assert.Contains("vmap_area_list", reason);
    }

    [Fact]
    public void A_cyclic_busy_list_stops_with_a_diagnostic()
    {
        using var g = new SyntheticGuest();
        WriteAreas(g, Head, 0, 12);
        g.U64(Area(11) + List, Area(3) + List);
        var r = g.Reader(IntrospectionLimits.Default);
        bool Symbols(string name, out ulong address) { address = Head; return name == "vmap_area_list"; }
        var diagnostics = new Diagnostics();

        var areas = VmallocAreas.Open(r, new ListWalker(r, diagnostics), Offsets, Symbols, IntrospectionLimits.Default, out _)!;
        Assert.Equal(12, areas.Walk(1000).Count());
        Assert.True(diagnostics.IsIncomplete);
    }

    [Fact]
    public void Code_finder_collects_each_immediate_and_absolute_or_rip_relative_address_once()
    {
        // i386: mov eax, 0xcad06424; mov edx, [0xcdce9fa4]; mov eax, 0xcad06424; ret
        byte[] code32 = [0xB8, 0x24, 0x64, 0xD0, 0xCA, 0x8B, 0x15, 0xA4, 0x9F, 0xCE, 0xCD, 0xB8, 0x24, 0x64, 0xD0, 0xCA, 0xC3];
        Assert.Equal([0xcad06424UL, 0xcdce9fa4UL], VmapAreaListSearch.DataAddresses(code32, 0xc100_0000, 4));
        // x86-64: mov rax, [rip + 0x10]; ret
        byte[] code64 = [0x48, 0x8B, 0x05, 0x10, 0x00, 0x00, 0x00, 0xC3];
        Assert.Equal([0xffff_ffff_8100_0017UL], VmapAreaListSearch.DataAddresses(code64, 0xffff_ffff_8100_0000, 8));
        // Garbage decodes to invalid instructions and is skipped, never thrown on.
        Assert.NotNull(VmapAreaListSearch.DataAddresses([.. Enumerable.Repeat((byte)0xFF, 64)], 0xc100_0000, 4).ToList());
    }
}
