using Periscope.Linux.Model;

namespace Periscope.Linux.Tasks.Views;

/// <summary>
/// psxview: every task_struct seen through every view the kernel keeps of it — the task list (and listed leaders'
/// thread lists), the initial pid namespace's IDR, each CPU's run queues (fair rb-tree with task groups, real-time
/// priority lists, deadline rb-tree), every listed task's children list, listed leaders' signal->thread_head lists and
/// group_leader links, and each CPU's current and idle task. A rootkit that unlinks a task from the task list must
/// also falsify every other view to stay unseen. Layouts come from BTF; each walk is cycle-checked and all of them
/// together are bounded by <see cref="Memory.IntrospectionLimits.MaxTaskViewNodes"/>. Every task in the initial pid
/// namespace has a pid there, so the IDR of init_pid_ns covers the tasks of nested namespaces too.
/// </summary>
public sealed class TaskViews
{
    /// <summary>XA_CHUNK_SIZE: slots per xarray node (64; 16 with CONFIG_BASE_SMALL); a larger BTF array is refused.</summary>
    private const int MaxXarraySlots = 64;
    /// <summary>An xarray of 32-bit ids is at most 6 levels of 64 slots deep; deeper is a cycle or corruption.</summary>
    private const int MaxXarrayDepth = 8;
    /// <summary>Nesting of task groups (cfs_rq inside sched_entity inside cfs_rq); the kernel allows far fewer.</summary>
    private const int MaxGroupDepth = 32;
    /// <summary>MAX_RT_PRIO: the real-time priority lists of an rt_rq (100 since 2.6); a larger BTF array is refused.</summary>
    private const int MaxRtPriorities = 100;
    /// <summary>xa_is_internal() entries below this are xarray markers (retry, zero/reserved), not nodes.</summary>
    private const ulong XarrayInternalNodeMin = 4096;

    private readonly LinuxKernel _kernel;
    private readonly GuestReader _r;
    private readonly MemberOffsets? _btf;
    private readonly Dictionary<ulong, TaskViewSet> _seen = [];
    private readonly List<string> _gaps = [];
    private readonly List<string> _unavailable = [];
    private int _nodes;
    private TaskViewSet _available;

    public TaskViews(LinuxKernel kernel)
    {
        _kernel = kernel;
        _r = kernel.Reader;
        _btf = kernel.Btf is { } btf ? new MemberOffsets(btf) : null;
    }

    public TaskViewReport Read()
    {
        ReadTaskList();
        if (_btf is null)
            _unavailable.Add("pid hash, run queues, children, thread groups, CPU current/idle: the kernel's BTF is not used (offsets were inferred)");
        else
        {
            ReadPidHash();
            ReadChildren();
            ReadThreadGroups();
            ReadRunQueues();
        }
        var rows = new List<TaskViewRow>(_seen.Count);
        foreach (var (task, seen) in _seen)
        {
            var facts = ReadFacts(task);
            var (verdict, reason) = TaskViewRules.Judge(seen, facts);
            if (verdict == TaskViewVerdict.NotATask) _gaps.Add($"task_struct 0x{task:x} ({Describe(seen)}): {reason}");
            rows.Add(new TaskViewRow(task, facts, seen, verdict, reason));
        }
        rows.Sort((a, b) => (a.Facts?.Tgid ?? int.MaxValue, a.Facts?.Pid ?? int.MaxValue, a.Task).CompareTo((b.Facts?.Tgid ?? int.MaxValue, b.Facts?.Pid ?? int.MaxValue, b.Task)));
        if (_kernel.IsIncomplete) _gaps.AddRange(_kernel.IncompleteReasons.Select(r => $"kernel model: {r}"));
        return new TaskViewReport(rows, _available, _unavailable, _gaps.Distinct().ToList());
    }

    private static string Describe(TaskViewSet seen) =>
        string.Join("+", TaskViewRules.Columns.Where(c => (seen & c.View) != 0).Select(c => c.Column.ToLowerInvariant()));

    private void See(ulong task, TaskViewSet view)
    {
        if (!_r.IsKernelPointer(task)) { _gaps.Add($"{view}: 0x{task:x} is not a kernel pointer"); return; }
        _seen[task] = _seen.GetValueOrDefault(task) | view;
    }

    /// <summary>One node of any walk; false (with the gap recorded once) when the cross-view budget is spent.</summary>
    private bool Visit()
    {
        if (++_nodes <= _kernel.Limits.MaxTaskViewNodes) return true;
        if (_nodes == _kernel.Limits.MaxTaskViewNodes + 1)
            _gaps.Add($"walks stopped at the limit MaxTaskViewNodes = {_kernel.Limits.MaxTaskViewNodes} nodes");
        return false;
    }

    private void ReadTaskList()
    {
        _available |= TaskViewSet.TaskList;
        foreach (var t in _kernel.Tasks)
        {
            See(t.Address, TaskViewSet.TaskList);
            foreach (var th in t.Threads) See(th.Address, TaskViewSet.TaskList);
        }
    }

    private TaskSelfFacts? ReadFacts(ulong task)
    {
        var o = _kernel.Offsets;
        if (!_r.TryI32(task + (ulong)o.Task.Pid, out int pid) || !_r.TryI32(task + (ulong)o.Task.Tgid, out int tgid)) return null;
        _r.TryU32(task + (ulong)o.Task.Flags, out uint flags);
        _r.TryU32(task + (ulong)o.Task.ExitState, out uint exitState);
        string comm = _r.ReadFixedString(task + (ulong)o.Task.Comm, o.Task.CommSize) ?? "?";
        int? own = null;
        if (_btf?.Offset("task_struct", "thread_pid") is { } threadPid && o.Pid?.NumbersNr is { } numbersNr
            && _r.TryPointer(task + (ulong)threadPid, out ulong pidStruct) && _r.IsKernelPointer(pidStruct)
            && _r.TryI32(pidStruct + (ulong)numbersNr, out int nr))
            own = nr;
        return new TaskSelfFacts(pid, tgid, comm, flags, exitState, own);
    }

    /// <summary>init_pid_ns.idr: an xarray of struct pid; each pid's tasks[PIDTYPE_PID] holds the one task with that pid.</summary>
    private void ReadPidHash()
    {
        var b = _btf!;
        int? idr = b.Offset("pid_namespace", "idr.idr_rt.xa_head"), slots = b.Offset("xa_node", "slots"), slotsSize = b.Size("xa_node", "slots");
        int? hlistNode = b.StructSize("hlist_node");
        if (_kernel.Offsets.Pid is not { TaskPidLinks: { } pidLinks, Tasks: { } pidTasks } pid || idr is null || slots is null || slotsSize is null || hlistNode is null
            || !_kernel.Symbols.TryGetAddress("init_pid_ns", out ulong ns))
        {
            _unavailable.Add($"pid hash: needs init_pid_ns and the types of struct pid, pid_namespace and xa_node ({string.Join(", ", b.Missing)})");
            return;
        }
        int slotCount = slotsSize.Value / 8;
        if (slotCount is <= 0 or > MaxXarraySlots)
        {
            _gaps.Add($"pid hash: BTF says xa_node.slots has {slotCount} entries; an xarray node has at most {MaxXarraySlots}");
            return;
        }
        _available |= TaskViewSet.PidHash;
        ulong links = (ulong)(pidLinks + pid.PidTypePid * hlistNode.Value);
        if (!_r.TryPointer(ns + (ulong)idr.Value, out ulong root))
        {
            _gaps.Add($"pid hash: init_pid_ns.idr at 0x{ns + (ulong)idr.Value:x} is unreadable");
            return;
        }
        var pids = new List<ulong>();
        CollectXarray(root, (ulong)slots.Value, slotCount, pids, [], 0);
        foreach (ulong p in pids)
        {
            if (!_r.TryPointer(p + (ulong)pidTasks, out ulong first)) { _gaps.Add($"pid hash: struct pid 0x{p:x} is unreadable"); continue; }
            if (first == 0) continue; // a process group or session id whose leader is gone
            See(first - links, TaskViewSet.PidHash);
        }
    }

    private void CollectXarray(ulong entry, ulong slotsOff, int slots, List<ulong> result, HashSet<ulong> seen, int depth)
    {
        if (entry == 0) return;
        if ((entry & 3) != 2 || entry < XarrayInternalNodeMin)
        {
            if ((entry & 3) == 0 && _r.IsKernelPointer(entry) && Visit()) result.Add(entry);
            return;
        }
        ulong node = entry - 2;
        if (depth > MaxXarrayDepth) { _gaps.Add($"pid hash: IDR node 0x{node:x} is deeper than an xarray of 32-bit ids can be"); return; }
        if (!_r.IsKernelPointer(node)) { _gaps.Add($"pid hash: IDR link 0x{entry:x} is not a kernel pointer"); return; }
        if (!seen.Add(node)) { _gaps.Add($"pid hash: IDR node 0x{node:x} reached twice (a cycle)"); return; }
        if (!Visit()) return;
        Span<byte> buffer = stackalloc byte[MaxXarraySlots * 8];
        var bytes = buffer[..(slots * 8)];
        if (_r.Read(node + slotsOff, bytes) != bytes.Length) { _gaps.Add($"pid hash: IDR node 0x{node:x} is unreadable"); return; }
        var children = new ulong[slots];
        for (int i = 0; i < slots; i++) children[i] = System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(bytes[(i * 8)..]);
        foreach (ulong child in children) CollectXarray(child, slotsOff, slots, result, seen, depth + 1);
    }

    /// <summary>Each listed task's (and thread's) children list: every forked process is linked into its real parent's.</summary>
    private void ReadChildren()
    {
        int? children = _btf!.Offset("task_struct", "children"), sibling = _btf.Offset("task_struct", "sibling");
        if (children is null || sibling is null) { _unavailable.Add("children: BTF lacks task_struct.children or sibling"); return; }
        _available |= TaskViewSet.Children;
        foreach (var t in _kernel.Tasks)
            foreach (var th in t.Threads)
                foreach (ulong child in _kernel.Lists.Walk(th.Address + (ulong)children, sibling.Value, _kernel.Limits.MaxTasks, $"children of pid {th.Tid}", includeHead: false))
                {
                    if (!Visit()) return;
                    See(child, TaskViewSet.Children);
                }
    }

    /// <summary>Listed leaders' signal->thread_head lists (thread_node) and every listed thread's group_leader.</summary>
    private void ReadThreadGroups()
    {
        var o = _kernel.Offsets.Task;
        if (o.SignalThreadHead is not { } head || o.ThreadNode is not { } node)
        {
            _unavailable.Add("thread groups: BTF lacks signal_struct.thread_head or task_struct.thread_node");
            return;
        }
        _available |= TaskViewSet.ThreadGroup;
        foreach (var t in _kernel.Tasks)
        {
            if (!_r.TryPointer(t.Address + (ulong)o.Signal, out ulong signal) || !_r.IsKernelPointer(signal))
            {
                if (t.Pid != 0) _gaps.Add($"thread groups: pid {t.Pid}: signal pointer unreadable or not a kernel pointer");
                continue;
            }
            foreach (ulong th in _kernel.Lists.Walk(signal + (ulong)head, node, _kernel.Limits.MaxThreadsPerProcess, $"signal thread list of pid {t.Pid}", includeHead: false))
            {
                if (!Visit()) return;
                See(th, TaskViewSet.ThreadGroup);
            }
            foreach (var th in t.Threads)
            {
                if (!Visit()) return;
                if (_r.TryPointer(th.Address + (ulong)o.GroupLeader, out ulong leader) && _r.IsKernelPointer(leader)) See(leader, TaskViewSet.ThreadGroup);
                else _gaps.Add($"thread groups: tid {th.Tid}: group_leader unreadable or not a kernel pointer");
            }
        }
    }

    private void ReadRunQueues()
    {
        var walker = RunQueueLayout.From(_btf!, _kernel.Offsets);
        if (walker is null || !_kernel.Symbols.TryGetAddress("runqueues", out ulong runqueues))
        {
            _unavailable.Add($"run queues: needs the runqueues symbol and the types of struct rq, cfs_rq, rt_rq, dl_rq ({string.Join(", ", _btf!.Missing.Distinct())})");
            return;
        }
        if (walker.RtQueues is <= 0 or > MaxRtPriorities)
        {
            _gaps.Add($"run queues: BTF says rt_rq.active.queue has {walker.RtQueues} lists; MAX_RT_PRIO is {MaxRtPriorities}");
            return;
        }
        _available |= TaskViewSet.RunQueue | TaskViewSet.CpuCurrent | TaskViewSet.CpuIdle;
        var areas = PerCpuAreas.Read(_r, _kernel.Symbols, _kernel.Limits.MaxCpus, nameof(_kernel.Limits.MaxCpus), "run queues");
        foreach (var gap in areas.Gaps) _gaps.Add($"run queues: {gap.Message}");
        foreach (var cpu in areas.Cpus) WalkRunQueue(walker, cpu.Cpu, cpu.Of(runqueues));
    }

    private void WalkRunQueue(RunQueueLayout l, int cpu, ulong rq)
    {
        if (!_r.TryI32(rq + l.Cpu, out int owner) || owner != cpu)
        {
            _gaps.Add($"run queues: cpu {cpu}: the run queue at 0x{rq:x} is unreadable or names cpu {owner}");
            return;
        }
        if (_r.TryPointer(rq + l.Idle, out ulong idle) && _r.IsKernelPointer(idle)) See(idle, TaskViewSet.CpuIdle);
        else _gaps.Add($"run queues: cpu {cpu}: rq->idle is unreadable or not a kernel pointer");
        if (_r.TryPointer(rq + l.Curr, out ulong curr) && _r.IsKernelPointer(curr)) See(curr, TaskViewSet.CpuCurrent);
        else _gaps.Add($"run queues: cpu {cpu}: rq->curr is unreadable or not a kernel pointer");
        WalkFair(l, cpu, rq + l.Cfs, 0);
        for (int prio = 0; prio < l.RtQueues; prio++)
        {
            ulong head = rq + l.Rt + l.RtQueue + (ulong)(prio * l.ListHeadSize);
            foreach (ulong entity in _kernel.Lists.Walk(head, l.RtRunList, _kernel.Limits.MaxTasks, $"rt run queue {prio} of cpu {cpu}", includeHead: false))
            {
                if (!Visit()) return;
                if (l.RtMyQ is { } myQ && _r.TryPointer(entity + myQ, out ulong group) && group != 0)
                {
                    _gaps.Add($"run queues: cpu {cpu}: real-time task group 0x{group:x} not followed (RT group scheduling)");
                    continue;
                }
                See(entity - l.TaskRt, TaskViewSet.RunQueue);
            }
        }
        foreach (ulong node in Tree(cpu, rq + l.Dl + l.DlRoot, "deadline", l))
        {
            ulong entity = node - l.DlRbNode;
            if (l.FairServer is { } fs && entity == rq + fs) continue; // 6.8+: the fair server is a dl entity inside struct rq, not a task
            See(entity - l.TaskDl, TaskViewSet.RunQueue);
        }
    }

    private void WalkFair(RunQueueLayout l, int cpu, ulong cfsRq, int depth)
    {
        if (depth > MaxGroupDepth) { _gaps.Add($"run queues: cpu {cpu}: task groups nested deeper than {MaxGroupDepth} at cfs_rq 0x{cfsRq:x}"); return; }
        foreach (ulong node in Tree(cpu, cfsRq + l.CfsRoot, "fair", l))
        {
            ulong entity = node - l.SeRunNode;
            if (l.SeMyQ is { } myQ && _r.TryPointer(entity + myQ, out ulong group) && group != 0)
            {
                if (_r.IsKernelPointer(group)) WalkFair(l, cpu, group, depth + 1);
                else _gaps.Add($"run queues: cpu {cpu}: sched_entity 0x{entity:x} has group queue 0x{group:x}, not a kernel pointer");
                continue;
            }
            See(entity - l.TaskSe, TaskViewSet.RunQueue);
        }
    }

    /// <summary>The nodes of an rb-tree from its root pointer, cycle-checked and drawn from the node budget.</summary>
    private IEnumerable<ulong> Tree(int cpu, ulong rootPointer, string what, RunQueueLayout l)
    {
        if (!_r.TryPointer(rootPointer, out ulong root)) { _gaps.Add($"run queues: cpu {cpu}: {what} tree root at 0x{rootPointer:x} is unreadable"); yield break; }
        var seen = new HashSet<ulong>();
        var stack = new Stack<ulong>();
        if (root != 0) stack.Push(root);
        while (stack.Count > 0)
        {
            ulong node = stack.Pop();
            if (!_r.IsKernelPointer(node)) { _gaps.Add($"run queues: cpu {cpu}: {what} tree link 0x{node:x} is not a kernel pointer"); continue; }
            if (!seen.Add(node)) { _gaps.Add($"run queues: cpu {cpu}: {what} tree node 0x{node:x} reached twice (a cycle)"); continue; }
            if (!Visit()) yield break;
            if (!_r.TryPointer(node + l.RbLeft, out ulong left) || !_r.TryPointer(node + l.RbRight, out ulong right))
            {
                _gaps.Add($"run queues: cpu {cpu}: {what} tree node 0x{node:x} is unreadable");
                continue;
            }
            if (left != 0) stack.Push(left);
            if (right != 0) stack.Push(right);
            yield return node;
        }
    }

    /// <summary>struct rq and its class queues' layouts from BTF; null when any is missing.</summary>
    private sealed record RunQueueLayout
    {
        public ulong Cpu, Curr, Idle, Cfs, Rt, Dl, CfsRoot, SeRunNode, TaskSe, RtQueue, TaskRt, DlRoot, DlRbNode, TaskDl, RbLeft, RbRight;
        public ulong? FairServer, SeMyQ, RtMyQ;
        public int RtRunList, RtQueues, ListHeadSize;

        public static RunQueueLayout? From(MemberOffsets b, KernelOffsets offsets)
        {
            if (offsets.RunQueue is not { } rq) return null;
            int? cfs = b.Offset("rq", "cfs"), rt = b.Offset("rq", "rt"), dl = b.Offset("rq", "dl");
            int? cfsRoot = b.Offset("cfs_rq", "tasks_timeline.rb_root.rb_node"), runNode = b.Offset("sched_entity", "run_node"), taskSe = b.Offset("task_struct", "se");
            int? rtQueue = b.Offset("rt_rq", "active.queue"), rtQueueSize = b.Size("rt_rq", "active.queue"), runList = b.Offset("sched_rt_entity", "run_list");
            int? taskRt = b.Offset("task_struct", "rt"), dlRoot = b.Offset("dl_rq", "root.rb_root.rb_node"), dlNode = b.Offset("sched_dl_entity", "rb_node");
            int? taskDl = b.Offset("task_struct", "dl"), left = b.Offset("rb_node", "rb_left"), right = b.Offset("rb_node", "rb_right");
            int? listHead = b.StructSize("list_head");
            if (cfs is null || rt is null || dl is null || cfsRoot is null || runNode is null || taskSe is null || rtQueue is null || rtQueueSize is null
                || runList is null || taskRt is null || dlRoot is null || dlNode is null || taskDl is null || left is null || right is null || listHead is not > 0)
                return null;
            return new RunQueueLayout
            {
                Cpu = (ulong)rq.Cpu, Curr = (ulong)rq.Curr, Idle = (ulong)rq.Idle,
                Cfs = (ulong)cfs, Rt = (ulong)rt, Dl = (ulong)dl, CfsRoot = (ulong)cfsRoot, SeRunNode = (ulong)runNode, TaskSe = (ulong)taskSe,
                RtQueue = (ulong)rtQueue, TaskRt = (ulong)taskRt, DlRoot = (ulong)dlRoot, DlRbNode = (ulong)dlNode, TaskDl = (ulong)taskDl,
                RbLeft = (ulong)left, RbRight = (ulong)right, RtRunList = runList.Value, ListHeadSize = listHead.Value,
                RtQueues = rtQueueSize.Value / listHead.Value,
                FairServer = (ulong?)b.Optional("rq", "fair_server"),
                SeMyQ = (ulong?)b.Optional("sched_entity", "my_q"),
                RtMyQ = (ulong?)b.Optional("sched_rt_entity", "my_q"),
            };
        }
    }
}
