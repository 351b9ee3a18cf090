using Periscope.Linux.Kallsyms;
using Periscope.Linux.Model;
namespace Periscope.Linux.Inference;

/// <summary>init_task without data symbols (CONFIG_KALLSYMS_ALL=n): found by its own structure in the kernel image.</summary>
public sealed partial class OffsetInference
{
    /// <summary>init_task found by its structure alone (whatever kallsyms says): see <see cref="FindInitTaskByStructure"/>.</summary>
    public static ulong FindInitTask(GuestReader reader, KernelSymbols symbols, Discovery.KernelLayout layout, Periscope.Memory.IntrospectionLimits limits, VirtualRange moduleArea)
    {
        var search = new OffsetInference(reader, symbols, layout, limits, moduleArea);
        try { return search.FindInitTaskByStructure(); }
        catch (StepBudgetExhausted) { throw new KernelModelException($"init_task search stopped after {search._steps} tests (IntrospectionLimits.MaxInferenceSteps = {limits.MaxInferenceSteps})"); }
    }

    /// <summary>
    /// "swapper/0\0" in the image (init_task.comm), a list_head at a fixed distance d from it that cycles through nodes
    /// each having a printable comm at the same distance (the task list), and a pointer at a fixed distance from comm
    /// that init_task and the next two tasks (init, kthreadd: both children of the idle task) all hold: that value is
    /// &amp;init_task (real_parent/parent), 64-byte aligned, at most MaxInferenceTaskBytes before the comm.
    /// </summary>
    private ulong FindInitTaskByStructure()
    {
        const int Chunk = 1 << 20;
        var needle = "swapper/0\0"u8;
        var hits = new List<ulong>();
        var buffer = new byte[Chunk + 16];
        for (long off = 0; off < _limits.MaxKernelImageBytes; off += Chunk)
        {
            Step(Chunk / 4096);
            int n = _r.Space.Physical.Read(_layout.TextPa + (ulong)off, buffer);
            if (n <= 0) break;
            var span = buffer.AsSpan(0, n);
            for (int at = 0; ;)
            {
                int i = span[at..].IndexOf(needle);
                if (i < 0 || at + i >= Chunk) break;
                hits.Add(_layout.TextVa + (ulong)(off + at + i));
                at += i + 1;
            }
            if (n < buffer.Length) break;
        }

        var found = new List<ulong>();
        foreach (ulong comm in hits)
        {
            for (long d = -_taskBytes; d < _taskBytes; d += _p)
            {
                ulong head = (ulong)((long)_w.AlignDown(comm) + d);
                var commAddresses = WalkCommList(head, (long)comm - (long)head);
                if (commAddresses is not { Count: >= 3 }) continue;
                for (long k = -_taskBytes; k < _taskBytes; k += _p)
                {
                    Step(3);
                    ulong b0 = Ptr((ulong)((long)_w.AlignDown(commAddresses[0]) + k));
                    if (b0 == 0 || (b0 & 63) != 0 || b0 > comm || comm - b0 >= (ulong)_taskBytes) continue;
                    if (Ptr((ulong)((long)_w.AlignDown(commAddresses[1]) + k)) == b0 && Ptr((ulong)((long)_w.AlignDown(commAddresses[2]) + k)) == b0
                        && !found.Contains(b0)) found.Add(b0);
                }
            }
        }
        if (found.Count == 1) return found[0];
        throw new KernelModelException(found.Count == 0
            ? $"init_task is not in kallsyms and was not found by its structure ({hits.Count} \"swapper/0\" string(s) in the kernel image)"
            : $"init_task is not in kallsyms and its structure matches {found.Count} addresses ({string.Join(", ", found.Select(a => $"0x{a:x}"))}): ambiguous");
    }

    /// <summary>Comm addresses along a list_head cycle whose nodes have a printable comm at <paramref name="commFromNode"/>.</summary>
    private List<ulong>? WalkCommList(ulong head, long commFromNode)
    {
        ulong node = head;
        var seen = new HashSet<ulong> { head };
        var result = new List<ulong> { (ulong)((long)head + commFromNode) };
        for (int i = 0; i < _limits.MaxTasks; i++)
        {
            Step();
            ulong next = Ptr(node);
            if (next == head) return result;
            if (!IsKernel(next) || !seen.Add(next) || Ptr(next + (ulong)_w.ListHeadPrev) != node) return null;
            ulong comm = (ulong)((long)next + commFromNode);
            if (!ReadsComm(comm, 0)) return null;
            result.Add(comm);
            node = next;
        }
        return null;
    }
}
