using Periscope.Linux.Model;

namespace Periscope.Linux.Inference;

/// <summary>
/// What a workqueue worker's fields look like without BTF (kernel/workqueue_internal.h): desc is char[WORKER_DESC_LEN]
/// holding a workqueue name (or a set_worker_desc() text), NUL-terminated inside the array and possibly empty (a worker
/// that never ran a work item); kthread.full_name holds a kernel thread's whole name when the 16-byte comm cut it; a
/// rescuer's worker.rescue_wq leads to its workqueue, which points back to it (workqueue_struct.rescuer) and holds the
/// name its comm was made from.
/// </summary>
public static class WorkerRule
{
    /// <summary>WORKER_DESC_LEN: struct worker's desc is char[24] in 6.1, char[32] in 6.12 and 7.x (commit "workqueue:
    /// Increase worker desc's length to 32"). The inference reads <see cref="MaxDescLength"/> bytes and wants the NUL
    /// within them; the size the names read is the room up to rescue_wq, declared right after desc, when that was
    /// inferred (the field and its padding: the kernel's strscpy NUL-terminates inside the field), this one otherwise.</summary>
    public const int DescLength = 24;
    /// <summary>The longest WORKER_DESC_LEN of the kernels above.</summary>
    public const int MaxDescLength = 32;

    /// <summary>A desc field: printable ASCII up to a NUL inside the first <see cref="MaxDescLength"/> bytes (empty
    /// allowed). An unterminated field, a control byte or a byte of a pointer (0x80 and up) is no desc.</summary>
    public static bool IsDesc(ReadOnlySpan<byte> field, out bool empty)
    {
        empty = false;
        if (field.Length < MaxDescLength) return false;
        int n = field[..MaxDescLength].IndexOf((byte)0);
        if (n < 0) return false;
        foreach (byte c in field[..n]) if (c is < 0x20 or >= 0x7f) return false;
        empty = n == 0;
        return true;
    }

    /// <summary>
    /// A kthread full_name for a task whose comm is <paramref name="comm"/>: the comm itself, or, when the 16-byte comm
    /// cut the name (15 characters), a longer name starting with it. Upstream kthread_create keeps a full_name only for
    /// names longer than the comm; Debian's 6.12+ kernels keep one for every kernel thread it names, short names included
    /// (seen on 6.12.117: "ksoftirqd/0", "kworker/0:1"), and /proc shows it either way.
    /// </summary>
    public static bool IsFullNameOf(string? fullName, string comm) =>
        fullName is { Length: > 0 } && fullName.All(c => c is >= ' ' and < '\x7f')
        && (fullName == comm || IsLongerNameOf(fullName, comm));

    /// <summary>One way a worker's task reaches its struct worker and back: task_struct.worker_private (the link),
    /// kthread.data and worker.task.</summary>
    public readonly record struct WorkerCycle(int Link, int Data, int Task);

    /// <summary>
    /// Every (link, data, task) offset triple that leads from the workqueue worker <paramref name="task"/> back to
    /// itself: a word of the task (within <paramref name="taskBytes"/>) points to another object (struct kthread), one of
    /// whose first <paramref name="maxDataWords"/> words points to a third object (struct worker) that holds the task
    /// within <paramref name="objectBytes"/>. Each object is its own allocation: a pointer back into the task, and a word
    /// of an empty list_head (which points to the head itself), are no other object. That matters since 7.x: struct
    /// kthread holds its task (kthread.task), so a cycle through one of its own empty list heads (kthread.parked or
    /// .exited, which task->vfork_done also points into) would close for every kernel thread (a tie seen on 7.3.4).
    /// <paramref name="step"/> charges the caller's work budget.
    /// </summary>
    public static List<WorkerCycle> WorkerCycles(GuestReader reader, ulong task, int taskBytes, int objectBytes, int maxDataWords, Action<long> step)
    {
        var found = new List<WorkerCycle>();
        int p = reader.PointerSize;
        byte[]? Window(ulong va, int size)
        {
            step(size / 64 + 1);
            if (!reader.IsKernelPointer(va)) return null;
            var bytes = new byte[size];
            return reader.Read(va, bytes) < 2 * p ? null : bytes;
        }
        if (Window(task, taskBytes) is not { } tw) return found;
        for (int x = 0; x + p <= tw.Length; x += p)
        {
            step(1);
            ulong kthread = WordLayout.ReadWord(tw, x, p);
            // struct kthread is its own allocation: a pointer into the task_struct itself is a list head or the like.
            if (kthread <= 0xfff || kthread - task < (ulong)tw.Length || Window(kthread, objectBytes) is not { } kw) continue;
            for (int d = 0; d < maxDataWords && (d + 1) * p <= kw.Length; d++)
            {
                ulong w = WordLayout.ReadWord(kw, d * p, p), at = kthread + (ulong)(d * p);
                if (w <= 0xfff || w == kthread || w == task || w == at || w + (ulong)p == at || Window(w, objectBytes) is not { } ww) continue;
                for (int b = 0; b + p <= ww.Length; b += p)
                    if (WordLayout.ReadWord(ww, b, p) == task) found.Add(new WorkerCycle(x, d * p, b));
            }
        }
        return found;
    }

    /// <summary>How much of a kthread full_name is read (proc_task_name shows 63 characters).</summary>
    public const int MaxFullNameRead = 64;

    /// <summary>
    /// Every pointer-aligned offset from <paramref name="from"/> (after kthread.data) within <paramref name="windowBytes"/>
    /// where every kernel thread's struct kthread holds NULL or a kernel pointer to its full name
    /// (<see cref="IsFullNameOf"/>), and one holds a name. <paramref name="kthreads"/> are the struct kthread of every
    /// kernel thread with its comm; <paramref name="step"/> charges the caller's work budget.
    /// </summary>
    public static List<int> FullNameCandidates(GuestReader reader, IReadOnlyList<(ulong Kthread, string Comm)> kthreads, int from, int windowBytes, Action step)
    {
        var candidates = new List<int>();
        int p = reader.PointerSize;
        for (int o = from; o + p <= windowBytes; o += p)
        {
            bool any = false, holds = true;
            foreach (var (kthread, comm) in kthreads)
            {
                step();
                // (an unreadable struct kthread says nothing about the offset; the link rule vouched for the others)
                if (!reader.TryPointer(kthread + (ulong)o, out ulong name) || name == 0) continue;
                if (!reader.IsKernelPointer(name) || !IsFullNameOf(reader.ReadCString(name, MaxFullNameRead), comm)) { holds = false; break; }
                any = true;
            }
            if (holds && any) candidates.Add(o);
        }
        return candidates;
    }

    /// <summary>A name the 16-byte comm cut: the comm holds its first 15 characters.</summary>
    public static bool IsLongerNameOf(string fullName, string comm) =>
        fullName.Length >= StructuralFacts.TaskCommLength && comm.Length == StructuralFacts.TaskCommLength - 1
        && fullName.StartsWith(comm, StringComparison.Ordinal);

    /// <summary>How much of a workqueue name is read: WQ_NAME_LEN is 24 in 6.1 and 32 since (the kernel NUL-terminates
    /// the name inside it, so a longer read stops at the same NUL).</summary>
    public const int MaxWqNameRead = 64;

    /// <summary>
    /// Whether <paramref name="comm"/> is the comm a rescuer of workqueue <paramref name="wqName"/> got: kthread_create
    /// names it "kworker/R-&lt;name&gt;" since the commit "workqueue: Rename rescuer kworker" (6.8), by the bare name
    /// before; either is cut to 15 characters. Both forms are accepted: the comm itself tells which kernel it is.
    /// </summary>
    public static bool IsRescuerCommOf(string comm, string wqName)
    {
        if (wqName.Length == 0 || !wqName.All(c => c is > ' ' and < '\x7f')) return false;
        foreach (string named in new[] { KernelMacros.RescuerCommPrefix + wqName, wqName })
            if (comm == (named.Length < StructuralFacts.TaskCommLength ? named : named[..(StructuralFacts.TaskCommLength - 1)])) return true;
        return false;
    }

    /// <summary>One way the rescuers' links fit: worker.rescue_wq, workqueue_struct.rescuer and workqueue_struct.name.</summary>
    public readonly record struct RescuerLayout(int RescueWq, int Rescuer, int Name);

    /// <summary>
    /// Every (rescue_wq, rescuer, name) offset triple the workers satisfy: at rescue_wq every worker holds NULL (a pool's
    /// worker) or, for some but not all of them, a kernel pointer to an object of its own (each rescuer serves one
    /// workqueue) that points back to the worker at one common offset (wq->rescuer) and holds, at one common byte
    /// offset, a printable name the rescuer's comm was made from (<see cref="IsRescuerCommOf"/>). Pointers into the
    /// worker itself (its list heads) are no workqueue. <paramref name="workers"/> are the PF_WQ_WORKER tasks' struct
    /// worker with their comms; <paramref name="step"/> charges the caller's work budget.
    /// </summary>
    public static List<RescuerLayout> RescuerLayouts(GuestReader reader, IReadOnlyList<(ulong Worker, string Comm)> workers,
        int workerBytes, int wqBytes, Action step)
    {
        var found = new List<RescuerLayout>();
        int p = reader.PointerSize;
        var wqWindow = new byte[wqBytes + MaxWqNameRead];
        for (int o = 0; o + p <= workerBytes; o += p)
        {
            var rescuers = new List<(ulong Worker, string Comm, byte[] Wq)>();
            bool holds = true;
            foreach (var (worker, comm) in workers)
            {
                step();
                if (!reader.TryPointer(worker + (ulong)o, out ulong wq)) { holds = false; break; }
                if (wq == 0) continue;
                if (!reader.IsKernelPointer(wq) || wq - worker < (ulong)workerBytes) { holds = false; break; }
                if (reader.Read(wq, wqWindow) != wqWindow.Length) { holds = false; break; }
                rescuers.Add((worker, comm, (byte[])wqWindow.Clone()));
            }
            if (!holds || rescuers.Count == 0 || rescuers.Count == workers.Count) continue;
            var rescuerAt = new List<int>();
            for (int q = 0; q + p <= wqBytes; q += p)
                if (rescuers.All(r => WordLayout.ReadWord(r.Wq, q, p) == r.Worker)) rescuerAt.Add(q);
            if (rescuerAt.Count == 0) continue;
            var nameAt = new List<int>();
            for (int n = 0; n < wqBytes; n++)
            {
                step();
                if (rescuers.All(r => Text(r.Wq, n) is { } name && IsRescuerCommOf(r.Comm, name))) nameAt.Add(n);
            }
            foreach (int q in rescuerAt)
                foreach (int n in nameAt.Where(n => n < q || n >= q + p))
                    found.Add(new RescuerLayout(o, q, n));
        }
        return found;
    }

    /// <summary>The NUL-terminated text at <paramref name="at"/>, null if no NUL ends it within <see cref="MaxWqNameRead"/> bytes.</summary>
    private static string? Text(byte[] window, int at)
    {
        var span = window.AsSpan(at, Math.Min(MaxWqNameRead, window.Length - at));
        int nul = span.IndexOf((byte)0);
        return nul < 0 ? null : System.Text.Encoding.ASCII.GetString(span[..nul]);
    }
}
