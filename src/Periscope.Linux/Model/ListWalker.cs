namespace Periscope.Linux.Model;

/// <summary>Bounded, cycle-checked walks of the kernel's circular doubly linked lists (struct list_head).</summary>
public sealed class ListWalker(GuestReader reader, Diagnostics diagnostics)
{
    /// <summary>
    /// Follows a circular list_head from <paramref name="head"/>, yielding container addresses (node − offset) and
    /// including the head's own container. Stops at the head, at a revisited node (cycle), at an unreadable or
    /// non-kernel pointer, or at the cap.
    /// </summary>
    public IEnumerable<ulong> Walk(ulong head, int nodeOffset, int cap, string what, bool includeHead = true)
    {
        var seen = new HashSet<ulong> { head };
        if (includeHead) yield return head - (ulong)nodeOffset;
        ulong node = head;
        for (int i = 0; ; i++)
        {
            if (i >= cap) { diagnostics.Report(what, $"walk stopped at the limit of {cap} entries", head); yield break; }
            if (!reader.TryPointer(node, out ulong next)) { diagnostics.Report(what, "unreadable list link", node); yield break; }
            if (next == head) yield break;
            if (!reader.IsKernelPointer(next)) { diagnostics.Report(what, $"link 0x{next:x} is not a kernel pointer", node); yield break; }
            if (!seen.Add(next)) { diagnostics.Report(what, $"cycle: 0x{next:x} revisited without returning to the head", node); yield break; }
            if (reader.TryPointer(next + 8, out ulong prev) && prev != node)
                diagnostics.Report(what, $"inconsistent links: next 0x{next:x} has prev 0x{prev:x}, expected 0x{node:x}", node);
            yield return next - (ulong)nodeOffset;
            node = next;
        }
    }
}
