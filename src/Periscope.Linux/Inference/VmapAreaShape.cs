using Periscope.Linux.Model;

namespace Periscope.Linux.Inference;

/// <summary>Offsets in struct vmap_area relative to its list node (list_head address): what the data alone can tell.</summary>
public readonly record struct VmapAreaBounds(int Start, int End);

/// <summary>
/// Recognises lists of busy vmalloc areas (struct vmap_area on vmap_area_list, or on a 6.9+ vmap_node's busy list) by what
/// their data satisfies: on every node, two words at fixed distances from the list link hold a page-aligned kernel
/// address range start &lt; end, and along each list the ranges ascend without overlapping (the kernel keeps the busy
/// list sorted by address). The rb_node is the word triple whose parent (low two bits masked) and children point at the
/// same member of other areas on the lists. Word-size aware (i386 and x86-64); every walk is a proper cycle checked
/// link by link and capped.
/// </summary>
public static class VmapAreaShape
{
    /// <summary>Words searched on each side of the list link: struct vmap_area is 6-9 words (va_start, va_end, rb_node,
    /// list, a union, flags), so its every member lies within this distance of the link.</summary>
    public const int WindowWords = 12;
    /// <summary>Areas needed before a shape is believed: a booted kernel has hundreds (stacks, module cores, ioremaps).</summary>
    public const int MinAreas = 8;
    private const ulong PageMask = 0xfff;

    /// <summary>The list links on the cycle at <paramref name="head"/> (head excluded), or null if it is not a proper
    /// cycle (a link not pointing back, a non-kernel pointer, a revisit) within <paramref name="cap"/> nodes.</summary>
    public static List<ulong>? Links(GuestReader r, ulong head, int cap)
    {
        var seen = new HashSet<ulong> { head };
        var links = new List<ulong>();
        ulong node = head;
        int p = r.PointerSize;
        for (int i = 0; i <= cap; i++)
        {
            if (!r.TryPointer(node, out ulong next)) return null;
            if (next == head) return links;
            if (next <= 0xfff || !r.IsKernelPointer(next) || !seen.Add(next)) return null;
            if (!r.TryPointer(next + (ulong)p, out ulong prev) || prev != node) return null;
            links.Add(next);
            node = next;
        }
        return null;
    }

    /// <summary>Windows of <see cref="WindowWords"/> words either side of each link (zero where unreadable).</summary>
    public static ulong[][] Windows(GuestReader r, IReadOnlyList<ulong> links)
    {
        int p = r.PointerSize;
        var result = new ulong[links.Count][];
        for (int i = 0; i < links.Count; i++)
        {
            var w = new ulong[2 * WindowWords];
            for (int k = 0; k < w.Length; k++)
                w[k] = r.TryPointer(links[i] - (ulong)(WindowWords * p) + (ulong)(k * p), out ulong v) ? v : 0;
            result[i] = w;
        }
        return result;
    }

    /// <summary>Every (start, end) word pair, as byte distances from the link, that each list's areas satisfy.</summary>
    public static List<VmapAreaBounds> Bounds(GuestReader r, IReadOnlyList<ulong[][]> lists)
    {
        int p = r.PointerSize;
        var found = new List<VmapAreaBounds>();
        if (lists.Sum(l => l.Length) < MinAreas) return found;
        for (int s = 0; s < 2 * WindowWords; s++)
            for (int e = 0; e < 2 * WindowWords; e++)
            {
                if (s == e) continue;
                bool ok = true;
                foreach (var list in lists)
                {
                    ulong previousEnd = 0;
                    foreach (var w in list)
                    {
                        ulong start = w[s], end = w[e];
                        if (start <= 0xfff || !r.IsKernelPointer(start) || end <= start || (start & PageMask) != 0 || (end & PageMask) != 0 || start < previousEnd)
                        { ok = false; break; }
                        previousEnd = end;
                    }
                    if (!ok) break;
                }
                if (ok) found.Add(new VmapAreaBounds((s - WindowWords) * p, (e - WindowWords) * p));
            }
        return found;
    }

    /// <summary>Distances from the link of an rb_node (__rb_parent_color, rb_right, rb_left) whose parent and children are
    /// each zero or the same member of another listed area, with at least one child link and one root per list at most.</summary>
    public static List<int> RbNodes(GuestReader r, IReadOnlyList<IReadOnlyList<ulong>> links, IReadOnlyList<ulong[][]> windows)
    {
        int p = r.PointerSize;
        var all = links.SelectMany(l => l).ToHashSet();
        var found = new List<int>();
        for (int k = 0; k + 2 < 2 * WindowWords; k++)
        {
            long d = (long)(k - WindowWords) * p;
            int roots = 0;
            bool ok = true, anyChild = false;
            foreach (var list in windows)
                foreach (var w in list)
                {
                    ulong parent = w[k] & ~3UL, right = w[k + 1], left = w[k + 2];
                    if (parent == 0) roots++;
                    else if (!all.Contains((ulong)((long)parent - d))) { ok = false; break; }
                    foreach (ulong child in (ReadOnlySpan<ulong>)[right, left])
                    {
                        if (child == 0) continue;
                        if (!all.Contains((ulong)((long)child - d))) { ok = false; break; }
                        anyChild = true;
                    }
                    if (!ok) break;
                }
            if (ok && anyChild && roots >= 1 && roots <= links.Count) found.Add((int)d);
        }
        return found;
    }

    /// <summary>True when the cycle at <paramref name="head"/> is a list of busy areas with the given bounds (an empty list
    /// qualifies); used to tell the right list head among candidates.</summary>
    public static bool IsAreaList(GuestReader r, ulong head, VmapAreaBounds bounds, int cap, bool allowEmpty)
    {
        if (Links(r, head, cap) is not { } links) return false;
        if (links.Count == 0) return allowEmpty;
        var w = Windows(r, links);
        int p = r.PointerSize;
        int s = bounds.Start / p + WindowWords, e = bounds.End / p + WindowWords;
        if (s is < 0 or >= 2 * WindowWords || e is < 0 or >= 2 * WindowWords) return false;
        ulong previousEnd = 0;
        foreach (var x in w)
        {
            ulong start = x[s], end = x[e];
            if (start <= 0xfff || !r.IsKernelPointer(start) || end <= start || (start & PageMask) != 0 || (end & PageMask) != 0 || start < previousEnd) return false;
            previousEnd = end;
        }
        return true;
    }
}
