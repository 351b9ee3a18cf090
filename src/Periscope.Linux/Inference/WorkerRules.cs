using Periscope.Linux.Model;

namespace Periscope.Linux.Inference;

/// <summary>
/// Workqueue workers' names without BTF (`kworker/0:1-rcu_gp`, as /proc shows them): to_kthread()'s link in task_struct
/// (worker_private since 5.17), kthread.data (the worker), worker.task, current_work, pool and desc, and kthread.full_name.
/// The evidence is the workers themselves (PF_WQ_WORKER, which the flags rule already settled): the link, kthread.data
/// and worker.task form a cycle back to each worker's own task_struct, the closing constraint that settles all three.
/// kthread.data must lead to another object (struct worker is its own allocation): since 7.x struct kthread points back
/// to its task, and a cycle through one of its own empty list heads would otherwise close too (through
/// task->vfork_done, which points to kthread.exited: a tie seen on 7.3.4).
/// </summary>
public sealed partial class OffsetInference
{
    /// <summary>struct kthread declares flags, cpu, result, threadfn, then data: data lies within its first words.</summary>
    private const int MaxKthreadDataWords = 8;

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
                    InferRescuers(workerObjects.Zip(workers, (o, t) => (o, _r.ReadCString(t + (ulong)ev.Comm, StructuralFacts.TaskCommLength) ?? "")).ToList());
                }
            }
        }
        else _report.AddUnknown(Task, "worker_private", "needs a workqueue worker (PF_WQ_WORKER) on the task list");
        if (data is null) _report.AddUnknown("kthread", "data", "needs task_struct.worker_private");
        if (workerObjects.Count == 0)
        {
            foreach (var m in new[] { "task", "current_work", "pool", "desc", "rescue_wq" }.Where(m => _report.Find("worker", m) is null))
                _report.AddUnknown("worker", m, "needs task_struct.worker_private and kthread.data");
            foreach (var m in new[] { "rescuer", "name" })
                _report.AddUnknown("workqueue_struct", m, "needs task_struct.worker_private and kthread.data");
        }
        InferKthreadFullName(ev, kthreads.Select(k => k.Task).ToList(), link, data);
    }

    /// <summary>Every (link, data, task) offset triple that leads from <paramref name="worker"/> back to itself.</summary>
    private List<WorkerRule.WorkerCycle> WorkerCycles(ulong worker) =>
        WorkerRule.WorkerCycles(_r, worker, _taskBytes, _smallBytes, MaxKthreadDataWords, Step);

    private bool ClosesCycle(ulong task, WorkerRule.WorkerCycle c)
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
        var field = new byte[WorkerRule.MaxDescLength];
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
            "char[WORKER_DESC_LEN] (24 in 6.1, 32 in 6.12) after node, last_active, flags, id (and sleeping before 6.6): printable and NUL-terminated within 32 bytes in every worker, a workqueue name in one",
            c => c.Min(), "the lowest: the string's start (a higher candidate lies inside the same text)");
    }

    /// <summary>
    /// worker.rescue_wq, workqueue_struct.rescuer and workqueue_struct.name, which /proc's name of a 6.10+ rescuer is made
    /// of ("kworker/R-" and the workqueue's name, which the comm cuts): <see cref="WorkerRule.RescuerLayouts"/> on every
    /// worker; the rescuers are the workers it finds a workqueue for, the others must hold NULL there.
    /// </summary>
    private void InferRescuers(List<(ulong Worker, string Comm)> workers)
    {
        const string rule = "every worker holds NULL there or (a rescuer, some but not all workers) its own workqueue, which points back to it "
            + "at one offset (wq->rescuer) and holds at one offset the name its comm was made from (\"kworker/R-<name>\" since 6.8, the bare name before, cut to 15 characters)";
        var layouts = WorkerRule.RescuerLayouts(_r, workers, _smallBytes, _smallBytes, () => Step());
        if (layouts.Count == 0)
        {
            const string why = "no worker offset leads to a workqueue that points back to the worker and holds the name of its comm (no rescuer, or another layout)";
            _report.AddUnknown("worker", "rescue_wq", why);
            _report.AddUnknown("workqueue_struct", "rescuer", why);
            _report.AddUnknown("workqueue_struct", "name", why);
            return;
        }
        if (_report.Add("worker", "rescue_wq", layouts.Select(l => l.RescueWq).Distinct().ToList(), rule) is not { } rescueWq)
        {
            _report.AddUnknown("workqueue_struct", "rescuer", "needs worker.rescue_wq");
            _report.AddUnknown("workqueue_struct", "name", "needs worker.rescue_wq");
            return;
        }
        var withLink = layouts.Where(l => l.RescueWq == rescueWq).ToList();
        _report.Add("workqueue_struct", "rescuer", withLink.Select(l => l.Rescuer).Distinct().ToList(), rule);
        _report.Add("workqueue_struct", "name", withLink.Select(l => l.Name).Distinct().ToList(), rule);
    }

    /// <summary>kthread.full_name: the pointer every kernel thread's struct kthread holds after data, NULL or its whole name
    /// (its comm, or longer than its full comm, which it starts with: <see cref="WorkerRule.IsFullNameOf"/>); some kernel
    /// thread must have one.</summary>
    private void InferKthreadFullName(TaskEvidence ev, List<ulong> kthreads, int? link, int? data)
    {
        if (link is not { } l || data is not { } d)
        {
            _report.AddUnknown("kthread", "full_name", "needs task_struct.worker_private and kthread.data");
            return;
        }
        var objects = kthreads.Select(t => (Kthread: Ptr(t + (ulong)l), Comm: _r.ReadCString(t + (ulong)ev.Comm, StructuralFacts.TaskCommLength) ?? "")).ToList();
        var candidates = WorkerRule.FullNameCandidates(_r, objects, d + _p, _smallBytes, () => Step());
        if (candidates.Count == 0 && !objects.Any(k => k.Comm.Length == StructuralFacts.TaskCommLength - 1))
            _report.AddUnknown("kthread", "full_name", "no kernel thread's comm is full (15 characters): no long name to find; names are the comms");
        else _report.Add("kthread", "full_name", candidates,
            "after data: in every kernel thread's struct kthread NULL or its whole name (its comm, or longer than its 15-character comm, which it starts with), set in one");
    }
}
