using Periscope.Linux.Btf;
using Periscope.Linux.Inference;

namespace Periscope.Linux.Model;

/// <summary>
/// struct vmap_area (va_start, va_end, rb_node, list) and, on 6.9+, struct vmap_node's busy list and size: what the
/// module-area view walks (<see cref="VmallocAreas"/>). From BTF, or inferred (<see cref="VmapAreaShape"/>); listed by
/// <see cref="OffsetTable"/> under the kernel's names so inferred and BTF offsets compare.
/// </summary>
public sealed record VmallocOffsets
{
    public int VaStart { get; init; }
    public int VaEnd { get; init; }
    public int List { get; init; }
    public int? RbNode { get; init; }
    /// <summary>vmap_node.busy.head (6.9+), null before.</summary>
    public int? NodeBusyHead { get; init; }
    /// <summary>sizeof(struct vmap_node) (6.9+): the stride of the vmap_nodes array; null when unknown (one node needs none).</summary>
    public int? NodeSize { get; init; }

    /// <summary>From BTF; null when it lacks struct vmap_area or one of the members the walk needs.</summary>
    public static VmallocOffsets? FromBtf(BtfTypes btf)
    {
        if (btf.FindStruct("vmap_area") is not { } area || !area.HasMember("va_start") || !area.HasMember("va_end") || !area.HasMember("list"))
            return null;
        var node = btf.FindStruct("vmap_node");
        bool hasNode = node is not null && node.HasMember("busy.head");
        return new VmallocOffsets
        {
            VaStart = (int)area.Offset("va_start"), VaEnd = (int)area.Offset("va_end"), List = (int)area.Offset("list"),
            RbNode = area.HasMember("rb_node") ? (int)area.Offset("rb_node") : null,
            NodeBusyHead = hasNode ? (int)node!.Offset("busy.head") : null, NodeSize = hasNode ? node!.Size : null,
        };
    }

    /// <summary>From an inference report (fresh, or loaded from the offsets cache); null when the areas were not inferred.</summary>
    public static VmallocOffsets? FromReport(InferenceReport report)
    {
        int? O(string s, string m) => report.Find(s, m)?.Offset;
        if (O("vmap_area", "va_start") is not { } start || O("vmap_area", "va_end") is not { } end || O("vmap_area", "list") is not { } list) return null;
        return new VmallocOffsets
        {
            VaStart = start, VaEnd = end, List = list, RbNode = O("vmap_area", "rb_node"),
            NodeBusyHead = O("vmap_node", "busy.head"), NodeSize = O("vmap_node", InferenceReport.SizeOfMember),
        };
    }
}
