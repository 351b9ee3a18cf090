using Periscope.Memory;

namespace Periscope.Linux.Model;

/// <summary>
/// Reads the entries of a maple tree (Linux 6.1+, mm->mm_mt holds the VMAs). Only the root pointer carries the
/// "internal node" tag; child pointers inside nodes are plain encoded nodes. The metadata end byte bounds the slots
/// in use, so stale pointers past it are never taken for live entries. Node types are enum maple_type values from
/// BTF; the pointer encoding is in <see cref="KernelMacros"/>. Every node is drawn from the work budget.
/// </summary>
public sealed class MapleTree(GuestReader reader, MapleOffsets offsets, IntrospectionLimits limits, Diagnostics diagnostics)
{
    private const ulong NodeMask = ~KernelMacros.MAPLE_NODE_MASK;
    private enum NodeType { Dense, Leaf64, Range64, Arange64, Unknown }

    private NodeType TypeOf(ulong encoded)
    {
        int raw = (int)((encoded >> KernelMacros.MAPLE_NODE_TYPE_SHIFT) & KernelMacros.MAPLE_NODE_TYPE_MASK);
        return raw == offsets.TypeLeaf64 ? NodeType.Leaf64 : raw == offsets.TypeRange64 ? NodeType.Range64
            : raw == offsets.TypeArange64 ? NodeType.Arange64 : raw == offsets.TypeDense ? NodeType.Dense : NodeType.Unknown;
    }

    /// <summary>Non-null leaf entries in index order. <paramref name="cap"/> bounds the count.</summary>
    public List<ulong> Entries(ulong root, int cap)
    {
        var result = new List<ulong>();
        if (root == 0) return result;
        if (!IsInternalNode(root))
        {
            // A tree with a single entry stores it directly in the root.
            if (reader.IsKernelPointer(root)) result.Add(root);
            return result;
        }
        var seen = new HashSet<ulong>();
        Walk(root, ulong.MaxValue, 0, result, seen, cap);
        return result;
    }

    /// <summary>xa_is_node: the root's tag for "points to a node" (see <see cref="KernelMacros.MAPLE_NODE_MASK"/>).</summary>
    private static bool IsInternalNode(ulong entry) => (entry & 3) == 2 && entry > 4096;

    private void Walk(ulong encoded, ulong max, int depth, List<ulong> result, HashSet<ulong> seen, int cap)
    {
        if (depth > limits.MaxMapleTreeDepth) { diagnostics.ReportIncomplete("maple tree", $"deeper than {limits.MaxMapleTreeDepth} levels", encoded); return; }
        ulong node = encoded & NodeMask;
        if (!reader.IsKernelPointer(node)) { diagnostics.ReportIncomplete("maple tree", $"node pointer 0x{encoded:x} is not a kernel address"); return; }
        if (!seen.Add(node)) { diagnostics.ReportIncomplete("maple tree", "node visited twice (cycle)", node); return; }
        if (!reader.Budget.TryConsume(WorkKind.MapleNodes)) { diagnostics.ReportIncomplete("maple tree", reader.Budget.Describe(WorkKind.MapleNodes), node); return; }
        var type = TypeOf(encoded);
        int pivotOff, slotOff, metaOff, slots;
        switch (type)
        {
            case NodeType.Leaf64:
            case NodeType.Range64:
                (pivotOff, slotOff, metaOff, slots) = (offsets.RangePivot, offsets.RangeSlot, offsets.RangeMeta, offsets.RangeSlots);
                break;
            case NodeType.Arange64:
                (pivotOff, slotOff, metaOff, slots) = (offsets.ArangePivot, offsets.ArangeSlot, offsets.ArangeMeta, offsets.ArangeSlots);
                break;
            default:
                diagnostics.ReportIncomplete("maple tree", $"unexpected node type {(encoded >> KernelMacros.MAPLE_NODE_TYPE_SHIFT) & KernelMacros.MAPLE_NODE_TYPE_MASK}", node);
                return;
        }
        int end = UsedSlots(node, type, pivotOff, metaOff, slots, max);
        bool leaf = type == NodeType.Leaf64;
        for (int i = 0; i < end; i++)
        {
            if (result.Count >= cap) { diagnostics.ReportIncomplete("maple tree", $"more than {cap} entries", node); return; }
            if (!reader.TryPointer(node + (ulong)slotOff + (ulong)(i * reader.PointerSize), out ulong slot)) { diagnostics.ReportIncomplete("maple tree", "unreadable slot", node); return; }
            if (slot == 0) continue;
            if (leaf)
            {
                // Leaves may also hold internal values (small tagged integers); only real pointers are entries.
                if ((slot & 3) == 0 && reader.IsKernelPointer(slot)) result.Add(slot);
                else diagnostics.Report("maple tree", $"leaf slot {i} holds 0x{slot:x}, not an entry pointer", node);
            }
            else
            {
                // A child's upper bound is its pivot; the last child inherits this node's bound.
                // Pivots and slots are unsigned longs and pointers: the guest's word size apart.
                ulong childMax = max;
                if (i < slots - 1 && reader.TryULong(node + (ulong)pivotOff + (ulong)(i * reader.PointerSize), out ulong pivot) && pivot != 0) childMax = pivot;
                Walk(slot, childMax, depth + 1, result, seen, cap);
            }
        }
    }

    /// <summary>How many slots hold data, as the kernel's ma_data_end decides: arange nodes always keep metadata;
    /// range/leaf nodes keep it while the last pivot is 0; a last pivot equal to the node's maximum means the final
    /// slot is unused (it holds the metadata); otherwise every slot is used.</summary>
    private int UsedSlots(ulong node, NodeType type, int pivotOff, int metaOff, int slots, ulong max)
    {
        if (type != NodeType.Arange64)
        {
            reader.TryULong(node + (ulong)pivotOff + (ulong)((slots - 2) * reader.PointerSize), out ulong lastPivot);
            if (lastPivot == max) return slots - 1;
            if (lastPivot != 0) return slots;
        }
        if (!reader.TryU8(node + (ulong)metaOff + (ulong)offsets.MetaEnd, out byte end)) return 0;
        return Math.Min(end + 1, slots);
    }
}
