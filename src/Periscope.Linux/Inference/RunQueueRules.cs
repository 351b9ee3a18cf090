using Periscope.Linux.Model;

namespace Periscope.Linux.Inference;

/// <summary>
/// struct rq and the scheduler entities the run-queue cross-view walks, without BTF. struct rq is private to the
/// scheduler, so its members come from the scheduler's own code (<see cref="RunQueueCodeDecoder"/>) and are each checked
/// on every CPU's run queue; the entities' places in task_struct come from what every task's data satisfies.
/// </summary>
public sealed partial class OffsetInference
{
    private const string Rq = "rq";

    /// <summary>sched_prio_to_weight[] and sched_prio_to_wmult[] (kernel/sched/core.c, unchanged since 2.6.23): the load
    /// weight and its inverse of each nice level -20..19; a task's se.load holds one pair (the weight scaled by
    /// SCHED_FIXEDPOINT_SHIFT on 64-bit). WEIGHT_IDLEPRIO/WMULT_IDLEPRIO (3, 1431655765) is SCHED_IDLE's.</summary>
    internal static readonly (uint Weight, uint InverseWeight)[] LoadWeights =
    [
        (88761, 48388), (71755, 59856), (56483, 76040), (46273, 92818), (36291, 118348),
        (29154, 147320), (23254, 184698), (18705, 229616), (14949, 287308), (11916, 360437),
        (9548, 449829), (7620, 563644), (6100, 704093), (4904, 875809), (3906, 1099582),
        (3121, 1376151), (2501, 1717300), (1991, 2157191), (1586, 2708050), (1277, 3363326),
        (1024, 4194304), (820, 5237765), (655, 6557202), (526, 8165337), (423, 10153587),
        (335, 12820798), (272, 15790321), (215, 19976592), (172, 24970740), (137, 31350126),
        (110, 39045157), (87, 49367440), (70, 61356676), (56, 76695844), (45, 95443717),
        (36, 119304647), (29, 148102320), (23, 186737708), (18, 238609294), (15, 286331153),
        (3, 1431655765),
    ];

    /// <summary>SCHED_FIXEDPOINT_SHIFT: scale_load() shifts weights left by 10 on 64-bit kernels, not on 32-bit.</summary>
    private const int FixedPointShift = 10;

    /// <summary>rt_prio_array.bitmap: BITS_TO_LONGS(MAX_RT_PRIO + 1) words (16 bytes on both 64-bit and i386).</summary>
    private int RtBitmapBytes => (SchedulerOffsets.MaxRtPrio + 1 + 8 * _p - 1) / (8 * _p) * _p;

    private void InferRunQueues(TaskEvidence ev)
    {
        if (RunQueueCodeDecoder.Decode(_r, _symbols, out string? why) is not { } code)
        {
            ReportRunQueueUnknown($"needs the scheduler's code: {why}");
            return;
        }
        Step(RunQueueCodeDecoder.MaxMemberOffset / 64);
        // Every CPU's run queue: runqueues + __per_cpu_offset[cpu], as long as its rq->idle is that CPU's idle task
        // (pid 0, comm "swapper/N") — past the last possible CPU the offsets lead nowhere.
        var rqs = new List<ulong>();
        for (int cpu = 0; cpu < _limits.MaxCpus; cpu++)
        {
            Step();
            if (!_r.TryULong(code.PerCpuOffsetArray + (ulong)(cpu * _p), out ulong offset)) break;
            ulong rq = unchecked(code.RunQueues + offset);
            ulong idle = Ptr(rq + (ulong)code.Idle);
            if (!IsKernel(idle) || (cpu == 0 && idle != ev.Init) || !_r.TryI32(idle + (ulong)ev.Pid, out int pid) || pid != 0
                || _r.ReadFixedString(idle + (ulong)ev.Comm, StructuralFacts.TaskCommLength) != $"swapper/{cpu}")
                break;
            rqs.Add(rq);
        }
        if (rqs.Count == 0)
        {
            ReportRunQueueUnknown($"{code.Evidence}: CPU 0's rq->idle is not init_task");
            return;
        }
        string from = $"from the scheduler's code ({code.Evidence})";
        _report.Add(Rq, "idle", [code.Idle], $"{from}; checked: rq->idle of each of {rqs.Count} CPU(s) is its swapper/N, CPU 0's init_task");
        bool Each(Func<int, ulong, bool> holds) { for (int c = 0; c < rqs.Count; c++) if (!holds(c, rqs[c])) return false; return true; }
        _report.Add(Rq, "curr", code.Curr is { } curr && Each((_, rq) => IsKernel(Ptr(rq + (ulong)curr)) && ReadsComm(Ptr(rq + (ulong)curr), ev.Comm)) ? [curr] : [],
            $"idle_cpu's load compared with rq->idle; checked: every CPU's rq->curr is a task with a comm");
        _report.Add(Rq, "cpu", code.Cpu is { } cpuAt && Each((c, rq) => _r.TryI32(rq + (ulong)cpuAt, out int v) && v == c) ? [cpuAt] : [],
            "update_rq_clock's argument to sched_clock_cpu (cpu_of(rq)); checked: rq->cpu names its own CPU on every run queue");
        int? rt = _report.Add(Rq, "rt", code.Rt is { } rtAt && Each((_, rq) => IsRealTimeQueue(rq + (ulong)rtAt)) ? [rtAt] : [],
            $"print_rt_stats (&cpu_rq(cpu)->rt); checked: the rt_rq's priority bitmap has its delimiter bit {SchedulerOffsets.MaxRtPrio} set and its {SchedulerOffsets.MaxRtPrio} queue heads are lists");
        if (rt is not null)
            _report.AddStructural("rt_rq", "active.queue", RtBitmapBytes, "struct rt_prio_array active opens rt_rq: its bitmap of BITS_TO_LONGS(MAX_RT_PRIO + 1) words, then queue[] (checked with rq.rt)");
        _report.Add(Rq, "dl", code.Dl is { } dlAt && Each((_, rq) => IsRootCached(rq + (ulong)dlAt)) ? [dlAt] : [],
            "print_dl_stats (&cpu_rq(cpu)->dl); checked: its rb_root_cached (root, leftmost) is empty or two kernel pointers on every run queue");
        _report.AddStructural("dl_rq", "root.rb_root.rb_node", 0, "struct rb_root_cached root opens dl_rq (since 4.x)");
        _report.AddStructural("sched_dl_entity", "rb_node", 0, "struct rb_node rb_node opens sched_dl_entity");
        _report.AddStructural("sched_rt_entity", "run_list", 0, "struct list_head run_list opens sched_rt_entity");
        _report.AddStructural("rb_node", "rb_right", _p, "include/linux/rbtree_types.h: __rb_parent_color, rb_right, rb_left");
        _report.AddStructural("rb_node", "rb_left", 2 * _p, "include/linux/rbtree_types.h: __rb_parent_color, rb_right, rb_left");
        _report.Add("cfs_rq", "tasks_timeline.rb_root.rb_node",
            code.CfsRoot is { } root && code.CfsLeftmost == root + _p ? [root] : [],
            "__pick_last_entity (rb_last(&cfs_rq->tasks_timeline.rb_root)), checked against __pick_first_entity's rb_leftmost one word later");
        int? runNode = _report.Add("sched_entity", "run_node", code.SeRunNode is { } rn && rn >= 0 && rn < RunQueueCodeDecoder.MaxMemberOffset ? [rn] : [],
            "__pick_first_entity: container_of(rb_leftmost, struct sched_entity, run_node)");
        int? se = InferTaskSe(ev);
        if (se is { } s && runNode is { } node) InferGroupQueue(ev, rqs, s, node, rt);
        else _report.AddUnknown(Rq, "cfs", "needs task_struct.se and sched_entity.run_node");
        int? taskRt = se is { } s2 ? InferTaskRt(ev, s2) : null;
        if (taskRt is null) _report.AddUnknown(Task, "rt", "needs task_struct.se; no column after it holds an unqueued sched_rt_entity in every task");
        if (taskRt is { } r) InferTaskDl(ev, r);
        else _report.AddUnknown(Task, "dl", "needs task_struct.rt");
        if (code.FairServer is { } fair)
            _report.Add(Rq, "fair_server", code.Dl is { } dlAfter && fair > dlAfter && Each((_, rq) => IsDeadlineEntityNode(rq + (ulong)fair)) ? [fair] : [],
                "fair_server_init (&rq->fair_server); checked: after rq.dl, and its rb_node cleared or linked on every run queue");
        else
            _report.AddUnknown(Rq, "fair_server", "no fair_server_init (kernels before 6.8 have no fair server); the run-queue walk then skips deadline entities inside the run queue itself (servers, not tasks)");
    }

    private void ReportRunQueueUnknown(string why)
    {
        foreach (var (s, m) in new[] { (Rq, "idle"), (Rq, "curr"), (Rq, "cpu"), (Rq, "cfs"), (Rq, "rt"), (Rq, "dl"), (Task, "se"), (Task, "rt"), (Task, "dl") })
            _report.AddUnknown(s, m, why);
    }

    /// <summary>An rt_rq: bitmap bit MAX_RT_PRIO set (the delimiter __set_bit in init_rt_rq), the bits above it clear, and
    /// each queue head a list whose emptiness matches its bit.</summary>
    private bool IsRealTimeQueue(ulong rtRq)
    {
        Step(SchedulerOffsets.MaxRtPrio);
        var bitmap = new byte[RtBitmapBytes];
        if (_r.Read(rtRq, bitmap) != bitmap.Length) return false;
        int delimiter = SchedulerOffsets.MaxRtPrio;
        if ((bitmap[delimiter / 8] >> (delimiter % 8) & 1) == 0) return false;
        for (int bit = delimiter + 1; bit < bitmap.Length * 8; bit++) if ((bitmap[bit / 8] >> (bit % 8) & 1) != 0) return false;
        for (int prio = 0; prio < SchedulerOffsets.MaxRtPrio; prio++)
        {
            ulong head = rtRq + (ulong)(RtBitmapBytes + prio * 2 * _p);
            ulong next = Ptr(head), prev = Ptr(head + (ulong)_p);
            if (!IsKernel(next) || !IsKernel(prev)) return false;
            bool queued = (bitmap[prio / 8] >> (prio % 8) & 1) != 0;
            if (queued != (next != head)) return false;
        }
        return true;
    }

    /// <summary>A sched_dl_entity's rb_node: cleared (RB_CLEAR_NODE: its parent word is itself) or on a tree (a kernel
    /// pointer, or NULL for the root, with the colour in bit 0).</summary>
    private bool IsDeadlineEntityNode(ulong node)
    {
        Step();
        if (!_r.TryPointer(node, out ulong parentColor)) return false;
        ulong parent = parentColor & ~3UL;
        return parentColor == node || parent == 0 || IsKernel(parent);
    }

    /// <summary>struct rb_root_cached: both NULL (empty) or both kernel pointers.</summary>
    private bool IsRootCached(ulong at)
    {
        Step();
        if (!_r.TryPointer(at, out ulong root) || !_r.TryPointer(at + (ulong)_p, out ulong leftmost)) return false;
        return root == 0 ? leftmost == 0 : IsKernel(root) && IsKernel(leftmost);
    }

    /// <summary>task_struct.se: the column where every task but init_task holds a load_weight pair of the nice table
    /// (sched_entity opens with struct load_weight load: unsigned long weight, u32 inv_weight).</summary>
    private int? InferTaskSe(TaskEvidence ev)
    {
        var candidates = new List<int>();
        var tasks = ev.Leaders.Where(t => t != ev.Init).ToList();
        int shift = _p == 8 ? FixedPointShift : 0;
        var pairs = LoadWeights.Select(w => ((ulong)w.Weight << shift, w.InverseWeight)).ToHashSet();
        for (int o = 0; o + _p + 4 <= _taskBytes && tasks.Count > 0; o += _p)
        {
            Step(tasks.Count);
            bool all = true;
            foreach (ulong t in tasks)
                if (TaskWindow(t) is not { } w || !pairs.Contains((Word(w, o), U32(w, o + _p)))) { all = false; break; }
            if (all) candidates.Add(o);
        }
        return _report.Add(Task, "se", candidates,
            $"every task but init_task ({tasks.Count}) holds a (weight, inv_weight) pair of sched_prio_to_weight/wmult (se.load opens sched_entity)");
    }

    /// <summary>
    /// rq.cfs and sched_entity.my_q (CONFIG_FAIR_GROUP_SCHED): a kernel thread is in the root task group, so its
    /// se.cfs_rq points into a CPU's run queue at the same offset for all — rq.cfs; my_q follows cfs_rq and is NULL
    /// for a task. Without group scheduling (no such column) rq.cfs stays unknown.
    /// </summary>
    private void InferGroupQueue(TaskEvidence ev, List<ulong> rqs, int se, int runNode, int? rt)
    {
        var kthreads = ev.Leaders.Where(t => t != ev.Init && TaskWindow(t) is { } w && (U32(w, ev.Flags) & KernelMacros.PF_KTHREAD) != 0).ToList();
        var found = new List<(int Column, int Cfs)>();
        int start = se + runNode + 3 * _p, end = Math.Min(_taskBytes - 2 * _p, se + RunQueueCodeDecoder.MaxEntityBytes);
        for (int o = start; o <= end && kthreads.Count > 0; o += _p)
        {
            Step(kthreads.Count);
            int? cfs = null;
            foreach (ulong t in kthreads)
            {
                ulong v = Word(TaskWindow(t)!, o);
                int? k = null;
                foreach (ulong rq in rqs)
                    if (v >= rq && v - rq < RunQueueCodeDecoder.MaxMemberOffset) { k = (int)(v - rq); break; }
                if (k is null || (cfs is not null && cfs != k) || Word(TaskWindow(t)!, o + _p) != 0) { cfs = null; break; }
                cfs = k;
            }
            if (cfs is { } c && (rt is null || c < rt)) found.Add((o, c));
        }
        string rule = $"the column of sched_entity where every kernel thread ({kthreads.Count}, all in the root task group) points at the same offset into a CPU's run queue (se->cfs_rq = &rq->cfs, before rq.rt), the next word (my_q) NULL";
        int? column = _report.Add("sched_entity", "cfs_rq", found.Select(f => f.Column - se).ToList(), rule);
        if (column is not { } col)
        {
            _report.AddUnknown(Rq, "cfs", "no sched_entity.cfs_rq column (a kernel without CONFIG_FAIR_GROUP_SCHED?): " + rule);
            return;
        }
        _report.Add(Rq, "cfs", [found.First(f => f.Column - se == col).Cfs], rule);
        _report.AddStructural("sched_entity", "my_q", col + _p, "declared right after cfs_rq (CONFIG_FAIR_GROUP_SCHED); checked NULL for every kernel thread");
    }

    /// <summary>task_struct.rt: sched_rt_entity follows sched_entity; it opens with run_list (empty, or a node of a queue)
    /// and holds time_slice (sched_rr_timeslice, the same in every task not running SCHED_RR) 4 words in.</summary>
    private int? InferTaskRt(TaskEvidence ev, int se)
    {
        var tasks = ev.Leaders;
        var candidates = new List<int>();
        for (int o = se + 4 * _p; o + 4 * _p + 8 <= _taskBytes; o += _p)
        {
            Step(tasks.Count);
            uint? slice = null;
            bool all = true;
            foreach (ulong t in tasks)
            {
                if (TaskWindow(t) is not { } w) { all = false; break; }
                ulong node = t + (ulong)o, next = Word(w, o), prev = Word(w, o + _p);
                bool empty = next == node && prev == node;
                bool linked = !empty && IsKernel(next) && IsKernel(prev) && Ptr(next + (ulong)_p) == node;
                uint s = U32(w, o + 4 * _p);
                if (!(empty || linked) || s == 0 || (slice is not null && slice != s)) { all = false; break; }
                slice = s;
            }
            if (all) candidates.Add(o);
        }
        return _report.Add(Task, "rt", candidates,
            "every task's sched_rt_entity: run_list empty or linked, then timeout, watchdog_stamp and the same non-zero time_slice",
            c => c.Min(), "the lowest: declared right after se");
    }

    /// <summary>task_struct.dl: sched_dl_entity opens with its rb_node, cleared (RB_CLEAR_NODE: parent == itself) and
    /// with no children in a task that is not a deadline task.</summary>
    private void InferTaskDl(TaskEvidence ev, int rt)
    {
        var tasks = ev.Leaders;
        var candidates = new List<int>();
        for (int o = rt + 4 * _p; o + 3 * _p <= _taskBytes; o += _p)
        {
            Step(tasks.Count);
            bool all = true;
            foreach (ulong t in tasks)
                if (TaskWindow(t) is not { } w || Word(w, o) != t + (ulong)o || Word(w, o + _p) != 0 || Word(w, o + 2 * _p) != 0) { all = false; break; }
            if (all) candidates.Add(o);
        }
        _report.Add(Task, "dl", candidates, "an rb_node cleared (RB_CLEAR_NODE) with NULL children in every task",
            c => c.Min(), "the lowest: declared right after rt (pushable_dl_tasks, also cleared, comes later)");
    }

    /// <summary>The scheduler members the run-queue check walks, when every required one is known; else null.</summary>
    internal static SchedulerOffsets? SchedulerFrom(InferenceReport report)
    {
        int? K(string s, string m) => report.Find(s, m)?.Offset;
        if (K(Rq, "cfs") is not { } cfs || K(Rq, "rt") is not { } rt || K(Rq, "dl") is not { } dl
            || K("cfs_rq", "tasks_timeline.rb_root.rb_node") is not { } cfsRoot || K("sched_entity", "run_node") is not { } runNode
            || K("task_struct", "se") is not { } se || K("rt_rq", "active.queue") is not { } queue || K("sched_rt_entity", "run_list") is not { } runList
            || K("task_struct", "rt") is not { } taskRt || K("dl_rq", "root.rb_root.rb_node") is not { } dlRoot
            || K("sched_dl_entity", "rb_node") is not { } dlNode || K("task_struct", "dl") is not { } taskDl
            || K("rb_node", "rb_right") is not { } right || K("rb_node", "rb_left") is not { } left)
            return null;
        return new SchedulerOffsets
        {
            RqCfs = cfs, RqRt = rt, RqDl = dl, RqFairServer = K(Rq, "fair_server"), CfsRoot = cfsRoot, SeRunNode = runNode,
            SeMyQ = K("sched_entity", "my_q"), TaskSe = se, RtQueue = queue, RtRunList = runList, RtMyQ = null, TaskRt = taskRt,
            DlRoot = dlRoot, DlRbNode = dlNode, TaskDl = taskDl, RbRight = right, RbLeft = left,
        };
    }

    /// <summary>rq.cpu, curr and idle, when all three are known; else null.</summary>
    internal static RunQueueOffsets? RunQueueFrom(InferenceReport report) =>
        report.Find(Rq, "cpu")?.Offset is { } cpu && report.Find(Rq, "curr")?.Offset is { } curr && report.Find(Rq, "idle")?.Offset is { } idle
            ? new RunQueueOffsets { Cpu = cpu, Curr = curr, Idle = idle } : null;
}
