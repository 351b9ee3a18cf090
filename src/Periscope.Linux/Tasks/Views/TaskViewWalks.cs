using Periscope.Linux.Model;

namespace Periscope.Linux.Tasks.Views;

/// <summary>Why a walk of a task view stopped short or skipped something.</summary>
public enum TaskViewGapKind
{
    /// <summary>Guest memory the walk needed could not be read.</summary>
    Unreadable,
    /// <summary>The structure contradicts itself (a cycle, a pointer outside the kernel, an impossible count).</summary>
    Corrupt,
    /// <summary>A data object the walk starts from was not found.</summary>
    MissingSymbol,
    /// <summary>A cap from <see cref="Memory.IntrospectionLimits"/> was reached.</summary>
    WalkBudget,
    /// <summary>A kernel feature the walk does not follow (real-time task groups).</summary>
    Unsupported,
}

/// <summary>What a task view's walk reports to its caller: each task_struct seen (with where, in words), each gap, and
/// one call per node so that the caller's budget bounds every walk.</summary>
public interface ITaskViewSink
{
    /// <summary>One node of a walk; false when the caller's budget is spent (the walk stops).</summary>
    bool Visit();
    bool BudgetExhausted { get; }
    void Seen(ulong task, TaskViewSet view, string via);
    void Gap(TaskViewSet view, TaskViewGapKind kind, string message);
}

/// <summary>
/// The walks of the structures, other than the task list, through which the kernel keeps a task: the initial pid
/// namespace's IDR, every listed task's children list, listed leaders' signal->thread_head lists and group_leader links,
/// and each CPU's run queues (current, idle, fair rb-tree with task groups, real-time lists, deadline rb-tree). One walk
/// per view for psxview (<see cref="TaskViews"/>) and the integrity cross-checks. Member offsets come by name from
/// <see cref="LinuxKernel.Layouts"/> (BTF, else inferred), data objects from <see cref="LinuxKernel.DataAddresses"/>
/// (kallsyms, else found by code or structure), pointers at the guest's word size: the same walk runs with and without
/// BTF and on i386. Every walk is cycle-checked, draws each node from the sink's budget, and records a bad pointer as a
/// gap. A walk whose members or objects are unknown returns why, having read nothing.
/// </summary>
public sealed class TaskViewWalks(LinuxKernel kernel)
{
    /// <summary>Nesting of task groups (cfs_rq inside sched_entity inside cfs_rq); the kernel allows far fewer.</summary>
    private const int MaxGroupDepth = 32;

    private readonly GuestReader _r = kernel.Reader;
    private KernelLayouts L => kernel.Layouts;

    /// <summary>A task's own pid link (task->thread_pid->numbers[0].nr), read to tell live tasks from garbage.</summary>
    public static readonly (string Struct, string Member)[] PidLinkMembers = [("task_struct", "thread_pid"), ("pid", "numbers"), ("upid", "nr")];

    public static readonly (string Struct, string Member)[] PidNamespaceMembers = [("pid_namespace", "idr.idr_rt.xa_head"), ("pid", "tasks"), ("task_struct", "pid_links")];
    public static readonly (string Struct, string Member)[] ChildrenMembers = [("task_struct", "children"), ("task_struct", "sibling")];
    public static readonly (string Struct, string Member)[] ThreadGroupMembers =
        [("task_struct", "thread_node"), ("task_struct", "signal"), ("task_struct", "group_leader"), ("signal_struct", "thread_head")];
    public static readonly (string Struct, string Member)[] RunQueueMembers =
    [
        ("rq", "cfs"), ("rq", "rt"), ("rq", "dl"), ("rq", "curr"), ("rq", "idle"), ("rq", "cpu"),
        ("cfs_rq", "tasks_timeline.rb_root.rb_node"), ("sched_entity", "run_node"), ("task_struct", "se"),
        ("rt_rq", "active.queue"), ("sched_rt_entity", "run_list"), ("task_struct", "rt"),
        ("dl_rq", "root.rb_root.rb_node"), ("sched_dl_entity", "rb_node"), ("task_struct", "dl"),
        ("rb_node", "rb_left"), ("rb_node", "rb_right"),
    ];

    /// <summary>Null when every member and data object is known, else what is missing (in words).</summary>
    public string? Missing(IEnumerable<(string Struct, string Member)> members, params string[] objects)
    {
        var missing = members.Where(m => !L.HasMember(m.Struct, m.Member)).Select(m => $"{m.Struct}.{m.Member}")
            .Concat(objects.Where(o => !kernel.DataAddresses.TryGetAddress(o, out _))).ToList();
        if (missing.Count == 0) return null;
        return $"needs {string.Join(", ", missing)} ({(L.FromBtf ? "not in BTF" : "not inferred, no BTF")})";
    }

    private ulong Offset(string structName, string member) => (ulong)L.Offset(structName, member);

    /// <summary>What a task_struct says about itself; null when its pid cannot be read at all.</summary>
    public TaskSelfFacts? Facts(ulong task)
    {
        var o = kernel.Offsets.Task;
        if (!_r.IsKernelPointer(task) || !_r.TryI32(task + (ulong)o.Pid, out int pid) || !_r.TryI32(task + (ulong)o.Tgid, out int tgid)) return null;
        _r.TryU32(task + (ulong)o.Flags, out uint flags);
        _r.TryU32(task + (ulong)o.ExitState, out uint exitState);
        string comm = _r.ReadFixedString(task + (ulong)o.Comm, o.CommSize) ?? "?";
        int? own = null;
        if (L.TryOffset("task_struct", "thread_pid", out int threadPid) && L.TryOffset("pid", "numbers", out int numbers) && L.TryOffset("upid", "nr", out int nr)
            && _r.TryPointer(task + (ulong)threadPid, out ulong pidStruct) && _r.IsKernelPointer(pidStruct)
            && _r.TryI32(pidStruct + (ulong)numbers + (ulong)nr, out int number))
            own = number;
        return new TaskSelfFacts(pid, tgid, comm, flags, exitState, own);
    }

    /// <summary>init_pid_ns.idr: an xarray of struct pid; each pid's tasks[PIDTYPE_PID] holds the one task with that pid.
    /// Every task in the initial pid namespace has a pid there, so it covers the tasks of nested namespaces too.</summary>
    public string? PidNamespace(ITaskViewSink sink, int maxEntries)
    {
        const TaskViewSet view = TaskViewSet.PidHash;
        if (Missing(PidNamespaceMembers, "init_pid_ns") is { } missing) return missing;
        kernel.DataAddresses.TryGetAddress("init_pid_ns", out ulong ns);
        ulong xaHead = ns + Offset("pid_namespace", "idr.idr_rt.xa_head");
        // xa_node from BTF, else its fixed layout (PidAbi) at the guest's word size.
        string? why = null;
        var xa = kernel.Btf is { } btf ? XArrayReader.Create(_r, btf, out why) : XArrayReader.FromAbi(_r);
        if (xa is null)
        {
            sink.Gap(view, TaskViewGapKind.Corrupt, $"pid IDR not read: {why}");
            return null;
        }
        // tasks[PIDTYPE_PID] links the task's pid_links[PIDTYPE_PID], an hlist_node of two pointers.
        ulong tasksOff = Offset("pid", "tasks"), linksOff = Offset("task_struct", "pid_links") + (ulong)(PidAbi.PidTypePid * 2 * _r.PointerSize);
        if (!_r.TryPointer(xaHead, out ulong root))
        {
            sink.Gap(view, TaskViewGapKind.Unreadable, $"init_pid_ns.idr at 0x{xaHead:x} is unreadable");
            return null;
        }
        var gaps = new List<string>();
        var pids = new List<ulong>();
        foreach (var e in xa.Read(root, maxEntries, "pid IDR", gaps))
        {
            if (!sink.Visit()) break;
            if (e.Kind == XArrayEntryKind.Pointer && _r.IsKernelPointer(e.Entry)) pids.Add(e.Entry);
        }
        foreach (var gap in gaps) sink.Gap(view, TaskViewGapKind.Corrupt, gap);
        foreach (ulong p in pids)
        {
            if (!_r.TryPointer(p + tasksOff, out ulong first))
            {
                sink.Gap(view, TaskViewGapKind.Unreadable, $"struct pid 0x{p:x} in the pid IDR is unreadable");
                continue;
            }
            if (first == 0) continue; // a pid with no task of type PID (a process group or session id whose leader left)
            if (!_r.IsKernelPointer(first))
            {
                sink.Gap(view, TaskViewGapKind.Corrupt, $"struct pid 0x{p:x}: tasks[PIDTYPE_PID] 0x{first:x} is not a kernel pointer");
                continue;
            }
            sink.Seen(first - linksOff, view, "in the pid namespace");
        }
        return null;
    }

    /// <summary>Each listed task's (and thread's) children list: every forked process is linked into its real parent's
    /// (through sibling).</summary>
    public string? Children(ITaskViewSink sink)
    {
        if (Missing(ChildrenMembers) is { } missing) return missing;
        int children = checked((int)Offset("task_struct", "children")), sibling = checked((int)Offset("task_struct", "sibling"));
        foreach (var parent in kernel.Tasks.ToList())
            foreach (var thread in parent.Threads)
                foreach (ulong child in kernel.Lists.Walk(thread.Address + (ulong)children, sibling, kernel.Limits.MaxTasks, $"children of pid {thread.Tid}", includeHead: false))
                {
                    if (!sink.Visit()) return null;
                    sink.Seen(child, TaskViewSet.Children, $"a child of pid {thread.Tid}");
                }
        return null;
    }

    /// <summary>Thread groups seen from the other side: each listed process's signal->thread_head list (linked through
    /// thread_node) and each listed thread's group_leader.</summary>
    public string? ThreadGroups(ITaskViewSink sink)
    {
        const TaskViewSet view = TaskViewSet.ThreadGroup;
        if (Missing(ThreadGroupMembers) is { } missing) return missing;
        ulong signalOff = Offset("task_struct", "signal"), headOff = Offset("signal_struct", "thread_head");
        int nodeOff = checked((int)Offset("task_struct", "thread_node"));
        ulong leaderOff = Offset("task_struct", "group_leader");
        foreach (var process in kernel.Tasks.ToList())
        {
            if (!_r.TryPointer(process.Address + signalOff, out ulong signal) || !_r.IsKernelPointer(signal))
            {
                sink.Gap(view, TaskViewGapKind.Corrupt, $"pid {process.Pid}: signal pointer unreadable or not a kernel pointer");
                continue;
            }
            foreach (ulong thread in kernel.Lists.Walk(signal + headOff, nodeOff, kernel.Limits.MaxThreadsPerProcess, $"signal thread list of pid {process.Pid}", includeHead: false))
            {
                if (!sink.Visit()) return null;
                sink.Seen(thread, view, $"a thread of pid {process.Pid} (on its signal->thread_head list)");
            }
            foreach (var thread in process.Threads)
            {
                if (!sink.Visit()) return null;
                if (_r.TryPointer(thread.Address + leaderOff, out ulong leader) && _r.IsKernelPointer(leader))
                    sink.Seen(leader, view, $"the group leader of tid {thread.Tid}");
                else
                    sink.Gap(view, TaskViewGapKind.Corrupt, $"tid {thread.Tid}: group_leader unreadable or not a kernel pointer");
            }
        }
        return null;
    }

    /// <summary>
    /// What each CPU runs or will run: per-CPU run queues (the per-CPU copy of `runqueues` at __per_cpu_offset[cpu]) hold
    /// the running task (curr, seen as <see cref="TaskViewSet.CpuCurrent"/>), the idle task (<see cref="TaskViewSet.CpuIdle"/>)
    /// and the queued tasks of the fair (rb-tree, descending into task groups), real-time (priority lists) and deadline
    /// (rb-tree) classes (<see cref="TaskViewSet.RunQueue"/>). At most <paramref name="maxCpus"/> CPUs (the limit named
    /// <paramref name="maxCpusName"/>), each real-time list at most <paramref name="maxListNodes"/> long.
    /// </summary>
    public string? RunQueues(ITaskViewSink sink, int maxCpus, string maxCpusName, int maxListNodes)
    {
        if (Missing(RunQueueMembers, "runqueues") is { } missing) return missing;
        kernel.DataAddresses.TryGetAddress("runqueues", out ulong runqueues);
        var walker = new RunQueueWalker(this, sink, maxListNodes);
        if (walker.RtQueues is <= 0 or > SchedulerOffsets.MaxRtPrio)
        {
            sink.Gap(TaskViewSet.RunQueue, TaskViewGapKind.Corrupt, $"BTF says rt_rq.active.queue has {walker.RtQueues} lists; MAX_RT_PRIO is {SchedulerOffsets.MaxRtPrio}");
            return null;
        }
        // The possible CPUs and their per-CPU offsets, read where the kernel model reads them (idle tasks).
        var areas = PerCpuAreas.Read(_r, kernel.DataAddresses.TryGetAddress, maxCpus, maxCpusName, "run queues", kernel.Cpus.Count);
        foreach (var gap in areas.Gaps)
            sink.Gap(TaskViewSet.RunQueue, gap.Kind switch
            {
                PerCpuGapKind.CapReached => TaskViewGapKind.WalkBudget,
                PerCpuGapKind.Corrupt => TaskViewGapKind.Corrupt,
                PerCpuGapKind.Unavailable => TaskViewGapKind.MissingSymbol,
                _ => TaskViewGapKind.Unreadable,
            }, gap.Message);
        foreach (var cpu in areas.Cpus)
        {
            if (sink.BudgetExhausted) break;
            walker.Walk((uint)cpu.Cpu, cpu.Of(runqueues));
        }
        return null;
    }

    /// <summary>Walks one CPU's rq; the fair class's tree nests task groups (se->my_q).</summary>
    private sealed class RunQueueWalker
    {
        private const TaskViewSet View = TaskViewSet.RunQueue;
        private readonly TaskViewWalks _w;
        private readonly ITaskViewSink _sink;
        private readonly GuestReader _r;
        private readonly int _maxListNodes;
        private readonly ulong _cpuOff, _curr, _idle, _cfs, _rt, _dl, _fairServer;
        private readonly ulong _cfsRoot, _seRunNode, _seMyQ, _taskSe;
        private readonly ulong _rtQueue, _rtRunList, _taskRt, _rtMyQ;
        private readonly int _listHeadSize;
        private readonly ulong _dlRoot, _dlRbNode, _taskDl;
        private readonly ulong _rbLeft, _rbRight;
        public int RtQueues { get; }

        public RunQueueWalker(TaskViewWalks w, ITaskViewSink sink, int maxListNodes)
        {
            _w = w;
            _sink = sink;
            _r = w._r;
            _maxListNodes = maxListNodes;
            var layouts = w.L;
            (_cpuOff, _curr, _idle) = (w.Offset("rq", "cpu"), w.Offset("rq", "curr"), w.Offset("rq", "idle"));
            _cfs = w.Offset("rq", "cfs");
            _rt = w.Offset("rq", "rt");
            _dl = w.Offset("rq", "dl");
            // 6.8+: the fair server is a deadline entity inside struct rq, queued on the dl tree but not a task. Where its
            // offset is unknown (inferred layouts), any deadline entity inside the run queue itself is taken for a server.
            _fairServer = layouts.TryOffset("rq", "fair_server", out int fairServer) ? (ulong)fairServer : ulong.MaxValue;
            _cfsRoot = w.Offset("cfs_rq", "tasks_timeline.rb_root.rb_node");
            _seRunNode = w.Offset("sched_entity", "run_node");
            _seMyQ = layouts.TryOffset("sched_entity", "my_q", out int seMyQ) ? (ulong)seMyQ : ulong.MaxValue;
            _taskSe = w.Offset("task_struct", "se");
            _rtQueue = w.Offset("rt_rq", "active.queue");
            _listHeadSize = 2 * _r.PointerSize;
            RtQueues = layouts.Btf?.FindStruct("rt_rq") is { } rtRq ? rtRq.MemberSize("active.queue") / _listHeadSize : SchedulerOffsets.MaxRtPrio;
            _rtRunList = w.Offset("sched_rt_entity", "run_list");
            _rtMyQ = layouts.TryOffset("sched_rt_entity", "my_q", out int rtMyQ) ? (ulong)rtMyQ : ulong.MaxValue;
            _taskRt = w.Offset("task_struct", "rt");
            _dlRoot = w.Offset("dl_rq", "root.rb_root.rb_node");
            _dlRbNode = w.Offset("sched_dl_entity", "rb_node");
            _taskDl = w.Offset("task_struct", "dl");
            _rbLeft = w.Offset("rb_node", "rb_left");
            _rbRight = w.Offset("rb_node", "rb_right");
        }

        public void Walk(uint cpu, ulong rq)
        {
            if (!_r.TryI32(rq + _cpuOff, out int owner) || owner != (int)cpu)
            {
                _sink.Gap(View, TaskViewGapKind.Corrupt, $"cpu {cpu}: the run queue at 0x{rq:x} is unreadable or names cpu {owner}");
                return;
            }
            if (!_r.TryPointer(rq + _idle, out ulong idle) || !_r.IsKernelPointer(idle))
                _sink.Gap(View, TaskViewGapKind.Corrupt, $"cpu {cpu}: rq->idle is unreadable or not a kernel pointer");
            else _sink.Seen(idle, TaskViewSet.CpuIdle, $"the idle task of cpu {cpu}");
            if (!_r.TryPointer(rq + _curr, out ulong curr) || !_r.IsKernelPointer(curr))
                _sink.Gap(View, TaskViewGapKind.Corrupt, $"cpu {cpu}: rq->curr is unreadable or not a kernel pointer");
            else _sink.Seen(curr, TaskViewSet.CpuCurrent, $"the running task of cpu {cpu}");
            WalkFair(cpu, rq + _cfs, 0);
            WalkRealTime(cpu, rq + _rt);
            foreach (ulong node in Tree(cpu, rq + _dl + _dlRoot, "deadline"))
            {
                ulong entity = node - _dlRbNode;
                if (_fairServer != ulong.MaxValue ? entity == rq + _fairServer : unchecked(entity - rq) < RunQueueCodeDecoder.MaxMemberOffset) continue;
                _sink.Seen(entity - _taskDl, View, $"queued on the deadline run queue of cpu {cpu}");
            }
        }

        private void WalkFair(uint cpu, ulong cfsRq, int depth)
        {
            if (depth > MaxGroupDepth)
            {
                _sink.Gap(View, TaskViewGapKind.Corrupt, $"cpu {cpu}: task groups nested deeper than {MaxGroupDepth} at cfs_rq 0x{cfsRq:x}");
                return;
            }
            foreach (ulong node in Tree(cpu, cfsRq + _cfsRoot, "fair"))
            {
                ulong entity = node - _seRunNode;
                if (_seMyQ != ulong.MaxValue && _r.TryPointer(entity + _seMyQ, out ulong groupQueue) && groupQueue != 0)
                {
                    if (_r.IsKernelPointer(groupQueue)) WalkFair(cpu, groupQueue, depth + 1);
                    else _sink.Gap(View, TaskViewGapKind.Corrupt, $"cpu {cpu}: sched_entity 0x{entity:x} has group queue 0x{groupQueue:x}, not a kernel pointer");
                    continue;
                }
                _sink.Seen(entity - _taskSe, View, $"queued on the fair run queue of cpu {cpu}");
            }
        }

        private void WalkRealTime(uint cpu, ulong rtRq)
        {
            for (int prio = 0; prio < RtQueues && !_sink.BudgetExhausted; prio++)
            {
                ulong head = rtRq + _rtQueue + (ulong)(prio * _listHeadSize);
                foreach (ulong entity in _w.ListWalk(head, checked((int)_rtRunList), _maxListNodes, $"rt run queue {prio} of cpu {cpu}"))
                {
                    if (!_sink.Visit()) return;
                    if (_rtMyQ != ulong.MaxValue && _r.TryPointer(entity + _rtMyQ, out ulong groupQueue) && groupQueue != 0)
                    {
                        _sink.Gap(View, TaskViewGapKind.Unsupported, $"cpu {cpu}: real-time task group 0x{groupQueue:x} not followed (RT group scheduling)");
                        continue;
                    }
                    _sink.Seen(entity - _taskRt, View, $"queued on the real-time run queue of cpu {cpu}");
                }
            }
        }

        /// <summary>The nodes of an rb-tree from its root pointer, bounded by the sink's budget and cycle-checked.</summary>
        private IEnumerable<ulong> Tree(uint cpu, ulong rootPointer, string what)
        {
            if (!_r.TryPointer(rootPointer, out ulong root))
            {
                _sink.Gap(View, TaskViewGapKind.Unreadable, $"cpu {cpu}: {what} run queue root at 0x{rootPointer:x} is unreadable");
                yield break;
            }
            var seen = new HashSet<ulong>();
            var stack = new Stack<ulong>();
            if (root != 0) stack.Push(root);
            while (stack.Count > 0)
            {
                ulong node = stack.Pop();
                if (!_r.IsKernelPointer(node))
                {
                    _sink.Gap(View, TaskViewGapKind.Corrupt, $"cpu {cpu}: {what} run queue link 0x{node:x} is not a kernel pointer");
                    continue;
                }
                if (!seen.Add(node))
                {
                    _sink.Gap(View, TaskViewGapKind.Corrupt, $"cpu {cpu}: {what} run queue node 0x{node:x} reached twice (a cycle)");
                    continue;
                }
                if (!_sink.Visit()) yield break;
                if (!_r.TryPointer(node + _rbLeft, out ulong left) || !_r.TryPointer(node + _rbRight, out ulong right))
                {
                    _sink.Gap(View, TaskViewGapKind.Unreadable, $"cpu {cpu}: {what} run queue node 0x{node:x} is unreadable");
                    continue;
                }
                if (left != 0) stack.Push(left);
                if (right != 0) stack.Push(right);
                yield return node;
            }
        }
    }

    private IEnumerable<ulong> ListWalk(ulong head, int linkOffset, int max, string what) =>
        kernel.Lists.Walk(head, linkOffset, max, what, includeHead: false);
}
