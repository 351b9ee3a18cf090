using Periscope.Linux.Inference;

namespace Periscope.Linux.Model;

/// <summary>One busy vmalloc area (struct vmap_area): [Start, End) of kernel virtual memory.</summary>
public readonly record struct VmallocArea(ulong Address, ulong Start, ulong End);

/// <summary>How the kernel keeps its busy vmalloc areas.</summary>
public enum VmallocEra
{
    /// <summary>Before 6.9: one sorted list, vmap_area_list, of every busy area.</summary>
    AreaList,
    /// <summary>6.9+: nr_vmap_nodes struct vmap_node at vmap_nodes, each with its own busy tree and list (busy.head).</summary>
    Nodes,
}

/// <summary>
/// The busy vmalloc areas (module cores on x86-64, and every vmalloc allocation), read the way the running kernel keeps
/// them: vmap_area_list before 6.9, the per-node busy lists since ("mm: vmalloc: add a per-node busy tree"). The era is
/// chosen by which data object the kernel has; every offset comes by name from <see cref="KernelLayouts"/> (BTF or
/// inferred). Walks are word-size aware and bounded: nr_vmap_nodes is capped before use, all lists share one cap.
/// </summary>
public sealed class VmallocAreas
{
    private readonly GuestReader _reader;
    private readonly ListWalker _lists;
    private readonly int _listOffset, _startOffset, _endOffset;
    private readonly IReadOnlyList<ulong> _heads;

    private VmallocAreas(VmallocEra era, GuestReader reader, ListWalker lists, IReadOnlyList<ulong> heads, int list, int start, int end)
    {
        Era = era;
        _reader = reader;
        _lists = lists;
        _heads = heads;
        (_listOffset, _startOffset, _endOffset) = (list, start, end);
    }

    public VmallocEra Era { get; }

    /// <summary>List heads walked: vmap_area_list, or each node's busy.head.</summary>
    public IReadOnlyList<ulong> Heads => _heads;

    /// <summary>The kernel's busy-area lists, or null with the reason (a missing object or member, a corrupt node count).</summary>
    public static VmallocAreas? Open(LinuxKernel kernel, out string reason)
    {
        var layouts = kernel.Layouts;
        if (!layouts.TryOffset("vmap_area", "list", out int list) || !layouts.TryOffset("vmap_area", "va_start", out int start)
            || !layouts.TryOffset("vmap_area", "va_end", out int end))
        {
            reason = layouts.FromBtf ? "BTF lacks struct vmap_area's list, va_start or va_end" : "struct vmap_area (list, va_start, va_end) was not inferred";
            return null;
        }
        int? busy = layouts.TryOffset("vmap_node", "busy.head", out int b) ? b : null;
        int? size = kernel.Btf?.FindStruct("vmap_node")?.Size ?? (layouts.TryOffset("vmap_node", InferenceReport.SizeOfMember, out int s) ? s : null);
        var offsets = new VmallocOffsets { List = list, VaStart = start, VaEnd = end, NodeBusyHead = busy, NodeSize = size };
        return Open(kernel.Reader, kernel.Lists, offsets, kernel.DataAddresses.TryGetAddress, kernel.Limits, out reason);
    }

    /// <summary>The walk over explicit inputs (tests give synthetic memory); <paramref name="offsets"/> from BTF or inference.</summary>
    public static VmallocAreas? Open(GuestReader reader, ListWalker lists, VmallocOffsets offsets, TryAddress address,
        Periscope.Memory.IntrospectionLimits limits, out string reason)
    {
        reason = "";
        var (list, start, end) = (offsets.List, offsets.VaStart, offsets.VaEnd);
        if (address("vmap_area_list", out ulong head))
            return new VmallocAreas(VmallocEra.AreaList, reader, lists, [head], list, start, end);
        if (!address("vmap_nodes", out ulong nodesPointer) || !address("nr_vmap_nodes", out ulong countAddress))
        {
            reason = "neither vmap_area_list (before 6.9) nor vmap_nodes and nr_vmap_nodes (6.9+) found";
            return null;
        }
        if (offsets.NodeBusyHead is not { } busyHead)
        {
            reason = "vmap_node.busy.head is unknown (not in BTF, or not inferred)";
            return null;
        }
        if (!reader.TryPointer(nodesPointer, out ulong nodes) || !reader.TryU32(countAddress, out uint count))
        {
            reason = $"vmap_nodes at 0x{nodesPointer:x} or nr_vmap_nodes at 0x{countAddress:x} is unreadable";
            return null;
        }
        if (count == 0 || count > limits.MaxVmapNodes)
        {
            reason = $"nr_vmap_nodes = {count} is not in 1..{limits.MaxVmapNodes}";
            return null;
        }
        if (!reader.IsKernelPointer(nodes))
        {
            reason = $"vmap_nodes = 0x{nodes:x} is not a kernel pointer";
            return null;
        }
        // The stride matters only past node 0 (one node, as on a single-CPU guest, needs no size).
        int nodeSize = offsets.NodeSize ?? 0;
        if (count > 1 && (nodeSize <= busyHead || nodeSize > limits.MaxVmapNodeBytes))
        {
            reason = $"sizeof(struct vmap_node) = {nodeSize} is not in {busyHead + 1}..{limits.MaxVmapNodeBytes} ({count} nodes)";
            return null;
        }
        var heads = new ulong[count];
        for (uint i = 0; i < count; i++) heads[i] = nodes + (ulong)i * (ulong)nodeSize + (ulong)busyHead;
        return new VmallocAreas(VmallocEra.Nodes, reader, lists, heads, list, start, end);
    }

    /// <summary>A data object's address by name (kallsyms, else found by structure).</summary>
    public delegate bool TryAddress(string name, out ulong address);

    /// <summary>
    /// Every busy area on every list, at most <paramref name="cap"/> in all. An area whose bounds cannot be read is
    /// passed to <paramref name="unreadable"/> and skipped; a broken list is a diagnostic of the list walker.
    /// </summary>
    public IEnumerable<VmallocArea> Walk(int cap, Action<ulong>? unreadable = null)
    {
        int left = cap;
        foreach (ulong head in _heads)
        {
            if (left <= 0) yield break;
            foreach (ulong va in _lists.Walk(head, _listOffset, left, "vmap area list", includeHead: false))
            {
                left--;
                if (!_reader.TryPointer(va + (ulong)_startOffset, out ulong s) || !_reader.TryPointer(va + (ulong)_endOffset, out ulong e))
                {
                    unreadable?.Invoke(va);
                    continue;
                }
                yield return new VmallocArea(va, s, e);
            }
        }
    }
}
