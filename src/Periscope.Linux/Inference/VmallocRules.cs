namespace Periscope.Linux.Inference;

/// <summary>struct vmap_area (and 6.9+'s struct vmap_node) from the busy-area lists: see <see cref="VmapAreaShape"/>.</summary>
public sealed partial class OffsetInference
{
    private const string VmapArea = "vmap_area", VmapNode = "vmap_node";
    /// <summary>Cache-line alignment of struct vmap_node (____cacheline_aligned, 64 bytes on x86): its size, the stride
    /// of the vmap_nodes array, is a multiple of it.</summary>
    private const int VmapNodeAlignment = 64;

    private void InferVmalloc()
    {
        int cap = _limits.MaxVmapAreas;
        var heads = new List<ulong>();
        string source;
        if (_symbols.TryGetAddress("vmap_area_list", out ulong listHead)) { heads.Add(listHead); source = "vmap_area_list"; }
        else if (_symbols.TryGetAddress("vmap_nodes", out ulong nodesAt) && _symbols.TryGetAddress("nr_vmap_nodes", out ulong countAt))
        {
            if (!InferVmapNodes(nodesAt, countAt, cap, heads)) return;
            source = "each vmap_node's busy list";
        }
        else if (VmapAreaListSearch.Find(_r, _symbols, cap, out string why) is { } found) { heads.Add(found); source = $"vmap_area_list found by code ({why})"; }
        else
        {
            _report.AddUnknown(VmapArea, "va_start", $"needs vmap_area_list or vmap_nodes: not in kallsyms, and by code: {why}");
            return;
        }
        var links = new List<IReadOnlyList<ulong>>();
        foreach (ulong h in heads)
        {
            Step();
            if (VmapAreaShape.Links(_r, h, cap) is not { } l) { _report.AddUnknown(VmapArea, "va_start", $"the list at 0x{h:x} ({source}) is not a proper cycle"); return; }
            links.Add(l);
        }
        Step(links.Sum(l => l.Count) * 4L * VmapAreaShape.WindowWords * VmapAreaShape.WindowWords);
        var windows = links.Select(l => VmapAreaShape.Windows(_r, l)).ToList();
        var bounds = VmapAreaShape.Bounds(_r, windows);
        string rule = $"over {links.Sum(l => l.Count)} areas on {source}: every area's [start, end) page-aligned, start < end, ascending along the list";
        if (bounds.Count != 1)
        {
            _report.Add(VmapArea, "list", bounds.Select(b => -b.Start).Distinct().ToList(), rule);
            return;
        }
        // Distances from the link are all the data gives; the struct begins with va_start (mm/vmalloc.c since 2.6.28:
        // "unsigned long va_start; unsigned long va_end;" first), which anchors every other member.
        var b = bounds[0];
        int list = -b.Start;
        if (list < 0) { _report.AddUnknown(VmapArea, "list", $"{rule}: va_start would follow the list link"); return; }
        _report.AddStructural(VmapArea, "va_start", 0, "the first member of struct vmap_area (mm/vmalloc.c)");
        _report.Add(VmapArea, "list", [list], rule + "; list = the link's distance after va_start");
        _report.Add(VmapArea, "va_end", [b.End - b.Start], rule);
        var rb = VmapAreaShape.RbNodes(_r, links, windows).Select(d => d + list).Where(o => o >= 0).ToList();
        _report.Add(VmapArea, "rb_node", rb, "parent and children are zero or another listed area's rb_node, one root per tree");
    }

    /// <summary>
    /// 6.9+: busy.head in struct vmap_node is the list head in node 0 preceded by an rb_root pointing into its own list
    /// (busy.root) whose areas have the vmap_area shape; lazy (the same shape, after busy) holds areas waiting to be
    /// purged, so the first such head is busy. With several nodes, the stride is the multiple of the node alignment
    /// at which every node's busy.head heads a non-empty list of areas of the same shape (areas spread over the nodes by
    /// address: a booted kernel has hundreds).
    /// </summary>
    private bool InferVmapNodes(ulong nodesAt, ulong countAt, int cap, List<ulong> heads)
    {
        ulong node0 = Ptr(nodesAt);
        if (!_r.TryU32(countAt, out uint count) || count == 0 || count > _limits.MaxVmapNodes || !IsKernel(node0))
        {
            _report.AddUnknown(VmapNode, "busy.head", $"vmap_nodes = 0x{node0:x} or nr_vmap_nodes ({count}) is unusable (at most {_limits.MaxVmapNodes} nodes)");
            return false;
        }
        var busy = new List<int>();
        VmapAreaBounds? shape = null;
        for (int h = _p; h + 2 * _p <= _limits.MaxVmapNodeBytes; h += _p)
        {
            Step();
            ulong head = node0 + (ulong)h;
            ulong root = Ptr(head - (ulong)_p);
            if (!IsKernel(root)) continue;
            if (VmapAreaShape.Links(_r, head, cap) is not { Count: > 0 } links) continue;
            Step(links.Count * 4L * VmapAreaShape.WindowWords * VmapAreaShape.WindowWords);
            var w = VmapAreaShape.Windows(_r, links);
            var bounds = links.Count >= VmapAreaShape.MinAreas ? VmapAreaShape.Bounds(_r, [w]) : [];
            if (bounds.Count != 1) continue;
            var rb = VmapAreaShape.RbNodes(_r, [links], [w]);
            if (!rb.Any(d => links.Contains((ulong)((long)root - d)))) continue;
            busy.Add(h);
            shape = bounds[0];
            break; // the first: busy is declared before lazy
        }
        if (_report.Add(VmapNode, "busy.head", busy, "node 0's first list head after an rb_root into its own list of vmap areas (busy precedes lazy)") is not { } busyHead)
            return false;
        if (count == 1)
        {
            heads.Add(node0 + (ulong)busyHead); // one node: its size, the array's stride, is never used (nor inferred)
            return true;
        }
        var strides = new List<int>();
        for (int size = VmapNodeAlignment; size <= _limits.MaxVmapNodeBytes; size += VmapNodeAlignment)
        {
            if (size <= busyHead) continue;
            Step(count);
            bool all = true;
            for (uint i = 1; i < count && all; i++)
                all = VmapAreaShape.IsAreaList(_r, node0 + (ulong)i * (ulong)size + (ulong)busyHead, shape!.Value, cap, allowEmpty: false);
            if (all) strides.Add(size);
        }
        if (_report.Add(VmapNode, InferenceReport.SizeOfMember, strides, $"the stride (a multiple of {VmapNodeAlignment}) at which all {count} nodes' busy.head lead to areas of the same shape") is not { } stride)
            return false;
        for (uint i = 0; i < count; i++) heads.Add(node0 + (ulong)i * (ulong)stride + (ulong)busyHead);
        return true;
    }
}
