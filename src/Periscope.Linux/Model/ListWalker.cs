using Periscope.Memory;

namespace Periscope.Linux.Model;

/// <summary>
/// Bounded, cycle-checked walks of the kernel's circular doubly linked lists (struct list_head). The back link's
/// offset (list_head.prev) comes from BTF. A walk that stops before returning to its head reports an incomplete
/// diagnostic; a walk given a <see cref="WorkKind"/> also draws every node from the kernel's <see cref="WorkBudget"/>.
/// </summary>
public sealed class ListWalker(GuestReader reader, Diagnostics diagnostics, int prevOffset = 8)
{
    /// <summary>
    /// Follows a circular list_head from <paramref name="head"/>, yielding container addresses (node − offset) and
    /// including the head's own container. Stops at the head, at a revisited node (cycle), at an unreadable or
    /// non-kernel pointer, at the cap, or when the budget family <paramref name="budget"/> is spent.
    /// </summary>
    public IEnumerable<ulong> Walk(ulong head, int nodeOffset, int cap, string what, bool includeHead = true, WorkKind? budget = null)
    {
        var seen = new HashSet<ulong> { head };
        if (includeHead)
        {
            if (!Take(budget, what, head)) yield break;
            yield return head - (ulong)nodeOffset;
        }
        ulong node = head;
        for (int i = 0; ; i++)
        {
            if (i >= cap) { diagnostics.ReportIncomplete(what, $"walk stopped at the limit of {cap} entries", head); yield break; }
            if (!reader.TryPointer(node, out ulong next)) { diagnostics.ReportIncomplete(what, "unreadable list link", node); yield break; }
            if (next == head) yield break;
            if (!reader.IsKernelPointer(next)) { diagnostics.ReportIncomplete(what, $"link 0x{next:x} is not a kernel pointer", node); yield break; }
            if (!seen.Add(next)) { diagnostics.ReportIncomplete(what, $"cycle: 0x{next:x} revisited without returning to the head", node); yield break; }
            if (reader.TryPointer(next + (ulong)prevOffset, out ulong prev) && prev != node)
                diagnostics.Report(what, $"inconsistent links: next 0x{next:x} has prev 0x{prev:x}, expected 0x{node:x}", node);
            if (!Take(budget, what, next)) yield break;
            yield return next - (ulong)nodeOffset;
            node = next;
        }
    }

    private bool Take(WorkKind? budget, string what, ulong at)
    {
        if (budget is not { } kind || reader.Budget.TryConsume(kind)) return true;
        diagnostics.ReportIncomplete(what, $"walk stopped: {reader.Budget.Describe(kind)}", at);
        return false;
    }
}
