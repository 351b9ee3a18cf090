using Periscope.Linux.Model;

namespace Periscope.Linux.Inference;

/// <summary>
/// Workqueue workers' names without BTF (`kworker/0:1-rcu_gp`, as /proc shows them): to_kthread()'s link in task_struct
/// (worker_private since 5.17), kthread.data (the worker), worker.task, current_work, pool and desc, and kthread.full_name.
/// The evidence is the workers themselves (PF_WQ_WORKER, which the flags rule already settled): the link, kthread.data
/// and worker.task form a cycle back to each worker's own task_struct, the closing constraint that settles all three.
/// </summary>
public sealed partial class OffsetInference
{
    /// <summary>struct kthread declares flags, cpu, result, threadfn, then data: data lies within its first words.</summary>
    private const int MaxKthreadDataWords = 8;
    /// <summary>How much of a kthread full_name is read (proc_task_name shows 63 characters).</summary>
    private const int MaxFullNameRead = 64;

    private readonly record struct WorkerCycle(int Link, int Data, int Task);

    private void InferWorkers(TaskEvidence ev)
    {
        var kthreads = new List<(ulong Task, bool Worker)>();
        var users = new List<ulong>();
        foreach (ulong t in ev.AllLeaders.Where(t => t != ev.Init))
        {
            Step();
            if (!_r.TryU32(t + (ulong)ev.Flags, out uint flags)) continue;
            if ((flags & KernelMacros.PF_KTHREAD) == 0) users.Add(t);
            else kthreads.Add((t, (flags & KernelMacros.PF_WQ_WORKER) != 0));
        }
        var workers = kthreads.Where(k => k.Worker).Select(k => k.Task).ToList();
        int? link = null, data = null;
        List<ulong> workerObjects = [];
        if (workers.Count > 0)
        {
            const string rule = "the cycle task -> struct kthread -> data (struct worker) -> worker.task == the task, in every PF_WQ_WORKER task; "
                + "checked: every other kernel thread has a kernel pointer there (its struct kthread), no user task has one";
            var cycles = WorkerCycles(workers[0]).Where(c =>
                workers.All(w => ClosesCycle(w, c))
                && kthreads.All(k => IsKernel(Ptr(k.Task + (ulong)c.Link)))
                && users.All(u => { Step(); return !IsKernel(Ptr(u + (ulong)c.Link)); })).ToList();
            link = _report.Add(Task, "worker_private", cycles.Select(c => c.Link).Distinct().ToList(), rule);
            if (link is { } l)
            {
                var withLink = cycles.Where(c => c.Link == l).ToList();
                data = _report.Add("kthread", "data", withLink.Select(c => c.Data).Distinct().ToList(), rule);
                if (data is { } d && _report.Add("worker", "task", withLink.Where(c => c.Data == d).Select(c => c.Task).Distinct().ToList(), rule) is { } back)
                {
                    workerObjects = workers.Select(w => Ptr(Ptr(w + (ulong)l) + (ulong)d)).ToList();
                    InferWorkerFields(workerObjects, back);
                }
            }
        }
        else _report.AddUnknown(Task, "worker_private", "needs a workqueue worker (PF_WQ_WORKER) on the task list");
        if (data is null) _report.AddUnknown("kthread", "data", "needs task_struct.worker_private");
        if (workerObjects.Count == 0)
            foreach (var m in new[] { "task", "current_work", "pool", "desc" }.Where(m => _report.Find("worker", m) is null))
                _report.AddUnknown("worker", m, "needs task_struct.worker_private and kthread.data");
        InferKthreadFullName(ev, kthreads.Select(k => k.Task).ToList(), link, data);
    }

    /// <summary>Every (link, data, task) offset triple that leads from <paramref name="worker"/> back to itself.</summary>
    private List<WorkerCycle> WorkerCycles(ulong worker)
    {
        var found = new List<WorkerCycle>();
        if (TaskWindow(worker) is not { } tw) return found;
        for (int x = 0; x + _p <= tw.Length; x += _p)
        {
            Step();
            ulong kthread = Word(tw, x);
            // struct kthread is its own allocation: a pointer into the task_struct itself is a list head or the like.
            if (!IsKernel(kthread) || kthread - worker < (ulong)tw.Length || SmallWindow(kthread) is not { } kw) continue;
            for (int d = 0; d < MaxKthreadDataWords && (d + 1) * _p <= kw.Length; d++)
            {
                ulong w = Word(kw, d * _p);
                if (!IsKernel(w) || w == kthread || w == worker || SmallWindow(w) is not { } ww) continue;
                for (int b = 0; b + _p <= ww.Length; b += _p)
                    if (Word(ww, b) == worker) found.Add(new WorkerCycle(x, d * _p, b));
            }
        }
        return found;
    }

    private bool ClosesCycle(ulong task, WorkerCycle c)
    {
        Step();
        ulong kthread = Ptr(task + (ulong)c.Link);
        if (!IsKernel(kthread)) return false;
        ulong worker = Ptr(kthread + (ulong)c.Data);
        return IsKernel(worker) && Ptr(worker + (ulong)c.Task) == task;
    }

    /// <summary>
    /// struct worker's declaration (workqueue_internal.h, 6.1..7.x): a union of list_head entry and hlist_node hentry,
    /// then current_work; task, then pool, then list_head node, unsigned long last_active, unsigned int flags, int id,
    /// (int sleeping, until 6.6), char desc[24]. Each is checked on every worker before it is reported.
    /// </summary>
    private void InferWorkerFields(List<ulong> workers, int task)
    {
        // current_work after the entry/hentry union: NULL or a work item; the union is an idle-list node (or the empty
        // list alloc_worker made: next->prev == the worker) or, while busy, a busy_hash node (*pprev == the worker), or never
        // linked at all (zero: seen in a rescuer on i386).
        int current = 2 * _p;
        bool currentHolds = workers.All(w =>
        {
            Step();
            ulong next = Ptr(w), second = Ptr(w + (ulong)_p), work = Ptr(w + (ulong)current);
            bool node = IsKernel(next) && Ptr(next + (ulong)_w.ListHeadPrev) == w || IsKernel(second) && Ptr(second) == w || next == 0 && second == 0;
            return node && (work == 0 || IsKernel(work));
        });
        if (currentHolds) _report.AddStructural("worker", "current_work", current,
            "after the union of list_head entry and hlist_node hentry (checked: in every worker that union links back to it or is zero, current_work is NULL or a kernel pointer)");
        else _report.AddUnknown("worker", "current_work", "the words after the entry/hentry union do not look like it in every worker");

        // pool right after task: NULL (a rescuer between rescues, a dying worker) or a pool whose workers list holds the
        // worker's node, declared right after pool.
        int pool = task + _p, node = pool + _p;
        bool poolHolds = workers.All(w =>
        {
            Step();
            ulong p = Ptr(w + (ulong)pool), next = Ptr(w + (ulong)node);
            return p == 0 || IsKernel(p) && IsKernel(next) && Ptr(next + (ulong)_w.ListHeadPrev) == w + (ulong)node;
        });
        if (!poolHolds)
        {
            _report.AddUnknown("worker", "pool", "the word after worker.task is not NULL or a pool whose list holds the worker's node in every worker");
            _report.AddUnknown("worker", "desc", "needs worker.pool");
            return;
        }
        _report.AddStructural("worker", "pool", pool, "declared right after task (checked: NULL, or the worker's node, right after it, is a proper list node)");

        // desc after node (2 words), last_active (a word), flags and id (and sleeping before 6.6): printable and
        // NUL-terminated in every worker, non-empty in one. In 6.1 the lower place is sleeping (0 or 1: never a non-empty
        // string); where desc is the lower one, the higher lies inside it: the lower is the string's start.
        int flags = node + 3 * _p;
        var field = new byte[WorkerRule.DescLength];
        var candidates = new[] { flags + 8, flags + 12 }.Where(o =>
        {
            bool any = false;
            foreach (ulong w in workers)
            {
                Step();
                if (_r.Read(w + (ulong)o, field) != field.Length || !WorkerRule.IsDesc(field, out bool empty)) return false;
                any |= !empty;
            }
            return any;
        }).ToList();
        _report.Add("worker", "desc", candidates,
            "char[24] after node, last_active, flags, id (and sleeping before 6.6): printable and NUL-terminated in every worker, a workqueue name in one",
            c => c.Min(), "the lowest: the string's start (a higher candidate lies inside the same text)");
    }

    /// <summary>kthread.full_name: the pointer every kernel thread's struct kthread holds after data, NULL or its whole name
    /// (longer than its comm, which it starts with); some kernel thread must have one.</summary>
    private void InferKthreadFullName(TaskEvidence ev, List<ulong> kthreads, int? link, int? data)
    {
        if (link is not { } l || data is not { } d)
        {
            _report.AddUnknown("kthread", "full_name", "needs task_struct.worker_private and kthread.data");
            return;
        }
        var objects = kthreads.Select(t => (Kthread: Ptr(t + (ulong)l), Comm: _r.ReadCString(t + (ulong)ev.Comm, StructuralFacts.TaskCommLength) ?? "")).ToList();
        var candidates = new List<int>();
        for (int o = d + _p; o + _p <= _smallBytes; o += _p)
        {
            bool any = false, holds = true;
            foreach (var (kthread, comm) in objects)
            {
                Step();
                ulong name = Ptr(kthread + (ulong)o);
                if (name == 0) continue;
                if (!IsKernel(name) || !WorkerRule.IsFullNameOf(_r.ReadCString(name, MaxFullNameRead), comm)) { holds = false; break; }
                any = true;
            }
            if (holds && any) candidates.Add(o);
        }
        if (candidates.Count == 0 && !objects.Any(k => k.Comm.Length == StructuralFacts.TaskCommLength - 1))
            _report.AddUnknown("kthread", "full_name", "no kernel thread's comm is full (15 characters): no long name to find; names are the comms");
        else _report.Add("kthread", "full_name", candidates,
            "after data: in every kernel thread's struct kthread NULL or its whole name (longer than its 15-character comm, which it starts with), set in one");
    }
}
