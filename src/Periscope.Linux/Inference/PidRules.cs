using Periscope.Linux.Model;

namespace Periscope.Linux.Inference;

/// <summary>
/// struct pid rules: task->thread_pid and pid->numbers[0].nr, checked on every listed task and thread (the integrity
/// checks read them to tell a live task from garbage), then the links the pid cross-views walk.
/// </summary>
public sealed partial class OffsetInference
{
    /// <summary>What the pid rules learned: every listed task and thread with its pid, and its struct pid.</summary>
    private sealed class PidEvidence
    {
        public required List<(ulong Task, int Pid, ulong StructPid)> Tasks { get; init; }
        public required int ThreadPid { get; init; }
        public required int NumbersNr { get; init; }
    }

    private void InferPids(TaskEvidence ev)
    {
        var pe = InferThreadPid(ev);
        if (pe is null)
        {
            foreach (var (s, m) in new[] { ("upid", "ns"), ("pid", "tasks"), (Task, "pid_links"), ("pid_namespace", "idr.idr_rt.xa_head"), ("xa_node", "slots") })
                _report.AddUnknown(s, m, "needs task_struct.thread_pid and pid.numbers");
        }
        else
        {
            InferPidTasks(pe);
            InferNamespaceIdr(pe);
        }
        InferChildren(ev);
    }

    /// <summary>
    /// pid.tasks and task_struct.pid_links: at one offset T of every task's struct pid, tasks[PIDTYPE_PID].first points to
    /// the task's own hlist_node at one offset L (the only task with that pid), whose pprev points back to it. A thread's
    /// pid heads no thread group, so tasks[PIDTYPE_TGID] fails on threads.
    /// </summary>
    private void InferPidTasks(PidEvidence pe)
    {
        var abi = PidAbi.For(_p);
        // init_task is not on its static pid's lists (init_struct_pid.tasks[] are NULL): the allocated pids are the evidence.
        var linked = pe.Tasks.Where(x => x.Pid != 0).ToList();
        if (linked.Count == 0) { _report.AddUnknown("pid", "tasks", "needs a task other than init_task"); _report.AddUnknown(Task, "pid_links", "needs a task other than init_task"); return; }
        var (task0, _, pid0) = linked[0];
        var candidates = new List<(int T, int L)>();
        for (int t = PidAbi.PidLevel + 4; t + _p <= pe.NumbersNr; t += 4)
        {
            if (t % _p != 0) continue;
            Step();
            long l = (long)(Ptr(pid0 + (ulong)t) - task0);
            if (l <= 0 || l + 2 * _p > _taskBytes || l % _p != 0) continue;
            if (linked.All(x => { Step(); return Ptr(x.StructPid + (ulong)t) == x.Task + (ulong)l && Ptr(x.Task + (ulong)l + (ulong)abi.HlistNodePprev) == x.StructPid + (ulong)t; }))
                candidates.Add((t, (int)l));
        }
        const string rule = "struct pid's hlist_head whose first node, in every task's pid (init_task's static one aside), is that task's own hlist_node at one offset, whose pprev points back";
        int? tasks = _report.Add("pid", "tasks", candidates.Select(c => c.T).ToList(), rule, c => c.Min(), "lowest offset: PIDTYPE_PID is tasks[]' first element");
        _report.Add(Task, "pid_links", candidates.Where(c => c.T == tasks).Select(c => c.L).ToList(), rule);
        _report.AddStructural("upid", "ns", abi.UpidNs, "struct upid { int nr; struct pid_namespace *ns; } (checked: numbers[0].ns is one kernel pointer in every task's pid)");
    }

    /// <summary>
    /// pid_namespace.idr.idr_rt.xa_head and xa_node.slots: the namespace every numbers[0].ns names holds, at one offset,
    /// an xarray head whose tree (xa_node's fixed layout, <see cref="PidAbi"/>) holds every listed task's struct pid
    /// (init_task's static one aside: pid 0 is never allocated), and whose root node's array pointer names that xarray.
    /// </summary>
    private void InferNamespaceIdr(PidEvidence pe)
    {
        var abi = PidAbi.For(_p);
        ulong ns = Ptr(pe.Tasks[0].StructPid + (ulong)(pe.NumbersNr + abi.UpidNs));
        byte[]? nw = SmallWindow(ns);
        var allocated = pe.Tasks.Where(x => x.Pid != 0).Select(x => x.StructPid).ToHashSet();
        var candidates = new List<int>();
        if (nw is not null && allocated.Count > 0)
        {
            var xa = XArrayReader.FromAbi(_r);
            for (int x = 0; x + _p <= nw.Length; x += _p)
            {
                Step();
                ulong head = Word(nw, x);
                if (!PidAbi.IsNode(head)) continue;
                ulong node = PidAbi.NodeOf(head), xarray = Ptr(node + (ulong)abi.XaNodeArray), at = ns + (ulong)x;
                // xa_head is struct xarray's last member, after xa_lock and the gfp_t xa_flags: a few words after the array's
                // start (one word behind a 4-byte spinlock_t; five behind PREEMPT_RT's rt_mutex-based one, more with lock debugging).
                if (xarray > at || at - xarray > (ulong)(PidAbi.MaxXaHeadWords * _p) || Ptr(node + (ulong)abi.XaNodeParent) != 0) continue;
                var gaps = new List<string>();
                var entries = xa.Read(head, Math.Max(_limits.MaxTasks, allocated.Count) * 2, "pid IDR", gaps);
                Step(entries.Count);
                if (gaps.Count == 0 && allocated.IsSubsetOf(entries.Where(e => e.Kind == XArrayEntryKind.Pointer).Select(e => e.Entry)))
                    candidates.Add(x);
            }
        }
        const string rule = "xarray head in the namespace every numbers[0].ns names: a root xa_node (no parent) whose array pointer names this xarray, the tree holding every listed task's struct pid";
        if (_report.Add("pid_namespace", "idr.idr_rt.xa_head", candidates, rule) is not null)
            _report.AddStructural("xa_node", "slots", abi.XaNodeSlots, $"include/linux/xarray.h: four bytes, parent, array, a list_head, then slots[{PidAbi.XaChunkSize}] (checked: the tree read so holds every task's struct pid)");
        else _report.AddUnknown("xa_node", "slots", "needs pid_namespace.idr");
    }

    /// <summary>
    /// task_struct.children and sibling: a list_head column whose list, linked through one offset S of the children,
    /// holds every listed thread-group leader whose real_parent is that task, and only tasks whose real_parent is that
    /// task, for every listed task and thread (copy_process links only leaders, to the parent thread that forked them).
    /// A child hidden from the task list still names its parent, so hiding a task does not break the rule.
    /// </summary>
    private void InferChildren(TaskEvidence ev)
    {
        if (ev.RealParent is not { } rp)
        {
            _report.AddUnknown(Task, "children", "needs task_struct.real_parent");
            _report.AddUnknown(Task, "sibling", "needs task_struct.real_parent");
            return;
        }
        var expected = new Dictionary<ulong, HashSet<ulong>>();
        foreach (ulong leader in ev.AllLeaders.Skip(1))
        {
            Step();
            ulong parent = Ptr(leader + (ulong)rp);
            if (!expected.TryGetValue(parent, out var set)) expected[parent] = set = [];
            set.Add(leader);
        }
        var everyone = ev.AllLeaders.Concat(ev.Threads.Values.SelectMany(v => v)).Distinct().ToList();
        byte[]? init = TaskWindow(ev.Init);
        var initChildren = expected.GetValueOrDefault(ev.Init) ?? [];
        var candidates = new List<(int C, int S)>();
        for (int c = 0; init is not null && initChildren.Count > 0 && c + 2 * _p <= _taskBytes; c += _p)
        {
            Step();
            if (!IsKernel(Word(init, c)) || WalkThreadList(ev.Init + (ulong)c, 0, null) is not { Count: > 0 } nodes || nodes.Count != initChildren.Count) continue;
            foreach (ulong child in initChildren)
            {
                long s = (long)(nodes[0] - child);
                if (s <= 0 || s + 2 * _p > _taskBytes || s % _p != 0) continue;
                if (everyone.All(t => WalkThreadList(t + (ulong)c, (int)s, null) is { } members
                        && (expected.GetValueOrDefault(t) ?? []).IsSubsetOf(members) && members.All(m => Ptr(m + (ulong)rp) == t)))
                    candidates.Add((c, (int)s));
            }
        }
        const string rule = "list_head column whose list, through one offset of each child, holds every listed leader whose real_parent is that task and only tasks whose real_parent it is, for every task and thread";
        int? children = _report.Add(Task, "children", candidates.Select(x => x.C).Distinct().ToList(), rule);
        _report.Add(Task, "sibling", candidates.Where(x => x.C == children).Select(x => x.S).Distinct().ToList(), rule);
    }

    /// <summary>The pid members a report knows (inferred now or loaded from the cache), each inside its search window;
    /// null when thread_pid and numbers (what every pid view needs) are not both known.</summary>
    private static PidOffsets? PidOffsetsOf(InferenceReport report, int taskWindow, int smallWindow)
    {
        int? Get(string s, string m, int window) => report.Find(s, m)?.Offset is { } v && v >= 0 && v < window ? v : null;
        if (Get(Task, "thread_pid", taskWindow) is not { } threadPid || Get("pid", "numbers", smallWindow) is not { } numbers
            || Get("upid", "nr", 8) is not { } nr)
            return null;
        int? tasks = Get("pid", "tasks", numbers);
        return new PidOffsets
        {
            ThreadPid = threadPid, Numbers = numbers, UpidNr = nr, NumbersNr = numbers + nr, PidTypePid = PidAbi.PidTypePid,
            UpidNs = Get("upid", "ns", 16), Tasks = tasks, TaskPidLinks = tasks is null ? null : Get(Task, "pid_links", taskWindow),
            Children = Get(Task, "children", taskWindow), Sibling = Get(Task, "sibling", taskWindow),
            NamespaceXaHead = Get("pid_namespace", "idr.idr_rt.xa_head", smallWindow), XaNodeSlots = Get("xa_node", "slots", 64),
            XaNodeSlotCount = Get("xa_node", "slots", 64) is null ? null : PidAbi.XaChunkSize,
        };
    }

    /// <summary>Every listed task and thread once (leaders first, in list order), with its pid.</summary>
    private List<(ulong Task, int Pid)> AllTasks(TaskEvidence ev)
    {
        var seen = new HashSet<ulong>();
        var all = new List<(ulong, int)>();
        foreach (ulong leader in ev.AllLeaders)
            foreach (ulong t in ev.Threads.TryGetValue(leader, out var members) ? members.Prepend(leader) : [leader])
            {
                Step();
                if (seen.Add(t) && _r.TryI32(t + (ulong)ev.Pid, out int pid)) all.Add((t, pid));
            }
        return all;
    }

    private PidEvidence? InferThreadPid(TaskEvidence ev)
    {
        var abi = PidAbi.For(_p);
        var all = AllTasks(ev);
        var sample = ev.Leaders.Select(l => (Task: l, Window: TaskWindow(l), Pid: all.FirstOrDefault(x => x.Task == l).Pid)).Where(x => x.Window is not null).ToList();
        // thread_pid: a pointer column, a different struct pid for every task, whose object starts with a count >= 1 and
        // a level <= MAX_PID_NS_LEVEL and holds at one offset N (numbers[0].nr, numbers[0] being the initial namespace's
        // upid) the task's own pid. Seeded on the sampled leaders, then checked on every task and thread.
        var pairs = new List<(int Column, int Numbers)>();
        for (int o = 0; o + _p <= _taskBytes && sample.Count >= 2; o += _p)
        {
            Step(sample.Count);
            var values = new HashSet<ulong>();
            List<int>? numbers = null;
            foreach (var (task, window, pid) in sample)
            {
                ulong v = Word(window!, o);
                if (!IsKernel(v) || (v & (ulong)(_p - 1)) != 0 || !values.Add(v)) { numbers = null; break; }
                byte[]? pw = SmallWindow(v);
                if (pw is null || U32(pw, PidAbi.PidCount) == 0 || U32(pw, PidAbi.PidLevel) > PidAbi.MaxPidNamespaceLevel) { numbers = null; break; }
                var here = new List<int>();
                for (int n = PidAbi.PidLevel + 4; n + abi.UpidNs + _p <= pw.Length; n += 4)
                    if (n % _p == 0 && I32(pw, n) == pid && (numbers is null || numbers.Contains(n))) here.Add(n);
                numbers = here;
                if (numbers.Count == 0) break;
            }
            if (numbers is null) continue;
            foreach (int n in numbers) pairs.Add((o, n));
        }
        // Every task and thread, not only the sample: threads have pids of their own, so a column holding the leader's
        // pid (or a pointer into the group's shared pid) fails here.
        // numbers[0].ns is the initial pid namespace for every task (a task in a child namespace has its own number there
        // in numbers[level]): one kernel pointer, the same in every struct pid (7.x's pidfs inode number repeats the pid
        // near the start of struct pid; no namespace pointer follows it).
        pairs = pairs.Where(pair =>
        {
            ulong? ns = null;
            return all.All(x =>
            {
                Step();
                if (!_r.TryPointer(x.Task + (ulong)pair.Column, out ulong p) || !IsKernel(p)
                    || !_r.TryU32(p + PidAbi.PidLevel, out uint level) || level > PidAbi.MaxPidNamespaceLevel
                    || !_r.TryI32(p + (ulong)pair.Numbers, out int nr) || nr != x.Pid
                    || !_r.TryPointer(p + (ulong)(pair.Numbers + abi.UpidNs), out ulong n) || !IsKernel(n) || (ns ??= n) != n)
                    return false;
                return true;
            });
        }).ToList();
        const string rule = "pointer column, a different object for every task and thread, starting with refcount_t count >= 1 and unsigned int level <= MAX_PID_NS_LEVEL, holding at one offset (numbers[0].nr) the task's own pid followed by one namespace pointer (numbers[0].ns) shared by all";
        int? threadPid = _report.Add(Task, "thread_pid", pairs.Select(x => x.Column).Distinct().ToList(), rule);
        int? numbersNr = threadPid is { } tp ? _report.Add("pid", "numbers", pairs.Where(x => x.Column == tp).Select(x => x.Numbers - abi.UpidNr).ToList(), rule) : null;
        if (threadPid is null || numbersNr is null)
        {
            if (threadPid is null) _report.AddUnknown("pid", "numbers", "needs task_struct.thread_pid");
            _report.AddUnknown("upid", "nr", "needs pid.numbers");
            return null;
        }
        _report.AddStructural("upid", "nr", abi.UpidNr, "struct upid declares int nr first (checked: numbers[0].nr is every task's pid)");
        var tasks = all.Select(x => (x.Task, x.Pid, Ptr(x.Task + (ulong)threadPid.Value))).ToList();
        return new PidEvidence { Tasks = tasks, ThreadPid = threadPid.Value, NumbersNr = numbersNr.Value + abi.UpidNr };
    }
}
