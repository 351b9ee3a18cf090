using Periscope.Linux.Model;
using static Periscope.Linux.Inference.StructuralFacts;

namespace Periscope.Linux.Inference;

/// <summary>task_struct rules (linux-discovery.md §6), with the evidence they gather for the later rules.</summary>
public sealed partial class OffsetInference
{
    private const string Task = "task_struct";

    /// <summary>What the task rules learned, for the mm, VMA and path rules.</summary>
    private sealed class TaskEvidence
    {
        public required ulong Init { get; init; }
        /// <summary>The leaders whose windows the column rules search (all of them on a small guest), parallel to the windows.</summary>
        public required List<ulong> Leaders { get; init; }
        /// <summary>Every thread-group leader on the task list.</summary>
        public required List<ulong> AllLeaders { get; init; }
        public required Dictionary<ulong, List<ulong>> Threads { get; init; }
        public int Comm, TasksOff, Pid, Tgid, Mm, Flags;
        public int? RealParent, Parent, GroupLeader, RealCred, Cred, Signal, ThreadNode, SignalThreadHead, ThreadGroup, State, ExitState, NrThreads;
        public List<ulong> UserMms { get; } = [];
        public int PgdInMm;
    }

    private TaskEvidence InferTasks()
    {
        var (init, fromStructure) = FindInitTask();
        _report.InitTask = init;
        _report.InitTaskFromStructure = fromStructure;
        byte[] I = TaskWindow(init) ?? throw new KernelModelException($"offset inference: init_task at 0x{init:x} is unreadable");

        int comm = Required(_report.Add(Task, "comm", FindAll(I, "swapper/0\0"u8), "\"swapper/0\\0\" inside init_task"), "task_struct.comm");

        // tasks: a circular list through init_task whose every node, minus the offset, has a printable comm.
        var tasksCandidates = new List<int>();
        var lists = new Dictionary<int, List<ulong>>();
        for (int o = 0; o + 2 * _p <= _taskBytes; o += _p)
        {
            Step();
            ulong next = Word(I, o);
            if (!IsKernel(next) || next == init + (ulong)o) continue;
            if (WalkTaskList(init, o, comm) is { Count: >= 2 } found) { tasksCandidates.Add(o); lists[o] = found; }
        }
        int tasks = Required(_report.Add(Task, "tasks", tasksCandidates,
            "circular list through init_task (next->prev == node), >= 2 nodes, each node minus the offset holds a printable comm"), "task_struct.tasks");
        var allLeaders = lists[tasks];
        // The column rules read whole task_structs: on a guest with thousands of processes a spread sample of them keeps
        // the cost bounded by what is read; what the sample settles is then checked on every leader's few fields.
        var leaders = Sample(allLeaders, Math.Max(2, _limits.MaxInferenceTaskSamples));
        var windows = new List<byte[]>();
        foreach (ulong t in leaders) windows.Add(TaskWindow(t) ?? new byte[_taskBytes]);
        _report.Tasks = allLeaders.Count;
        _report.SampledTasks = leaders.Count;

        // pid/tgid: an s32 column, 0 for init_task and 1 for the next task, every value a plausible and distinct pid.
        var pidColumns = new List<int>();
        for (int o = 0; o + 4 <= _taskBytes; o += 4)
        {
            Step(leaders.Count);
            if (I32(windows[0], o) != 0 || I32(windows[1], o) != 1) continue;
            var seen = new HashSet<int>();
            bool ok = true;
            foreach (var w in windows)
            {
                int v = I32(w, o);
                if (v < 0 || v > KernelMacros.PID_MAX_LIMIT || !seen.Add(v)) { ok = false; break; }
            }
            if (ok) pidColumns.Add(o);
        }
        if (leaders.Count < allLeaders.Count) pidColumns = pidColumns.Where(o => IsPidColumnOnAll(allLeaders, o)).ToList();

        var ev = new TaskEvidence { Init = init, Leaders = leaders, AllLeaders = allLeaders, Threads = [], Comm = comm, TasksOff = tasks };
        InferMm(ev, windows);
        InferFlags(ev, windows);
        InferParents(ev, windows);
        InferCreds(ev, windows);
        InferThreads(ev, windows, pidColumns);
        InferState(ev, windows);
        return ev;
    }

    /// <summary>
    /// At most <paramref name="max"/> of <paramref name="all"/>: the first two (init_task and pid 1, which the pid rule
    /// needs) and an even spread of the rest, in list order.
    /// </summary>
    public static List<ulong> Sample(IReadOnlyList<ulong> all, int max)
    {
        if (all.Count <= max) return [.. all];
        var sample = new List<ulong> { all[0], all[1] };
        int rest = all.Count - 2, take = max - 2;
        for (int k = 0; k < take; k++) sample.Add(all[2 + (int)((long)k * rest / take)]);
        return sample;
    }

    /// <summary>
    /// pid among several pid-valued columns: pid and tgid are declared back to back, so the lowest candidate followed by a
    /// tgid candidate; the lowest candidate when none is.
    /// </summary>
    public static int PickPid(IReadOnlyList<int> pids, IReadOnlyList<int> tgids) =>
        pids.Where(p => tgids.Contains(p + 4)).DefaultIfEmpty(pids.Min()).Min();

    /// <summary>A pid column found on the sample holds a distinct plausible pid in every leader.</summary>
    private bool IsPidColumnOnAll(List<ulong> leaders, int o)
    {
        var seen = new HashSet<int>();
        foreach (ulong t in leaders)
        {
            Step();
            if (!_r.TryI32(t + (ulong)o, out int v) || v < 0 || v > KernelMacros.PID_MAX_LIMIT || !seen.Add(v)) return false;
        }
        return true;
    }

    private List<ulong>? WalkTaskList(ulong init, int o, int comm)
    {
        ulong head = init + (ulong)o, node = head;
        var seen = new HashSet<ulong> { head };
        var tasks = new List<ulong> { init };
        for (int i = 0; i < _limits.MaxTasks; i++)
        {
            Step();
            ulong next = Ptr(node);
            if (next == head) return tasks;
            if (!IsKernel(next) || !seen.Add(next) || Ptr(next + (ulong)_w.ListHeadPrev) != node) return null;
            ulong task = next - (ulong)o;
            if (!ReadsComm(task, comm)) return null;
            tasks.Add(task);
            node = next;
        }
        return null;
    }

    /// <summary>init_task from kallsyms; without data symbols (CONFIG_KALLSYMS_ALL=n), by its own structure.</summary>
    private (ulong Address, bool FromStructure) FindInitTask()
    {
        if (_symbols.TryGetAddress("init_task", out ulong init)) return (init, false);
        return (FindInitTaskByStructure(), true);
    }

    private void InferMm(TaskEvidence ev, List<byte[]> windows)
    {
        // mm: a pointer column, NULL for init_task, whose non-NULL values all point to objects holding, at one common
        // offset q, a pointer to a page whose kernel half is byte-identical to the kernel PGD's (Linux copies it into every PGD).
        var share = KernelPgdShare();
        var kernelHalf = new byte[share.Length];
        _r.Space.Physical.Read(_layout.KernelPgd + (ulong)share.Offset, kernelHalf);
        var candidates = new List<int>();
        var pgdOffsets = new Dictionary<int, List<int>>();
        var distinct = new Dictionary<int, int>();
        var nonNull = new Dictionary<int, int>();
        for (int o = 0; o + _p <= _taskBytes; o += _p)
        {
            Step(windows.Count);
            if (Word(windows[0], o) != 0) continue;
            var values = new HashSet<ulong>();
            int count = 0;
            bool ok = true;
            foreach (var w in windows)
            {
                ulong v = Word(w, o);
                if (v == 0) continue;
                if (!IsKernel(v) || (v & (ulong)(_p - 1)) != 0) { ok = false; break; }
                values.Add(v);
                count++;
            }
            if (!ok || values.Count == 0) continue;
            var qs = PgdOffsets(values, kernelHalf, share);
            if (qs.Count == 0) continue;
            candidates.Add(o);
            pgdOffsets[o] = qs;
            distinct[o] = values.Count;
            nonNull[o] = count;
        }
        int mm = Required(_report.Add(Task, "mm", candidates,
            "pointer column, NULL for init_task, every value an object holding at one offset a pointer to a page whose kernel half equals the kernel PGD's",
            c => c.OrderByDescending(o => distinct[o]).ThenBy(o => nonNull[o]).ThenBy(o => o).First(),
            "most distinct mms, then fewest non-NULL (active_mm is also set for kernel threads borrowing an mm), then lowest offset"), "task_struct.mm");
        ev.Mm = mm;
        foreach (var w in windows) if (Word(w, mm) is var v && v != 0 && !ev.UserMms.Contains(v)) ev.UserMms.Add(v);
        _report.Mms = ev.UserMms.Count;

        var q = pgdOffsets[mm];
        if (q.Count > 1 && _symbols.TryGetAddress("init_mm", out ulong initMm))
        {
            // init_mm.pgd holds the kernel's own top-level table (an image address).
            var confirmed = q.Where(x => _r.Space.TryTranslate(Ptr(initMm + (ulong)x), out ulong pa) && pa == _layout.KernelPgd).ToList();
            if (confirmed.Count > 0) q = confirmed;
        }
        if (q.Count > 1)
        {
            // pgd_alloc gives every mm its own top-level table: a column holding one value for two mms is not pgd. Under
            // PAE the shared part is one 8-byte PDPT entry, so another pointer column can pass the test above by chance
            // (seen at 0x25c next to the real 0x1c on a two-vCPU Debian 686-pae guest).
            var own = q.Where(x => ev.UserMms.Select(m => Ptr(m + (ulong)x)).Distinct().Count() == ev.UserMms.Count).ToList();
            if (own.Count > 0) q = own;
        }
        ev.PgdInMm = Required(_report.Add("mm_struct", "pgd", q,
            "pointer, in every task's mm, to a page whose kernel half equals the kernel PGD's (and init_mm.pgd is the kernel PGD, when init_mm is known), a different one in each mm",
            c => c.Min(), "lowest offset: pgd has been declared among mm_struct's first members since 2.6"), "mm_struct.pgd");
    }

    /// <summary>
    /// The bytes of a top-level table every process's copy shares with the kernel's (pgd_alloc copies them from
    /// swapper_pg_dir), and how such a table is aligned. x86-64: the kernel half of a 4 KiB page. i386 non-PAE: the page
    /// directory entries of the first 128 MiB of the direct map (set at boot, never changed). i386 PAE: the PDPT entry
    /// of PAGE_OFFSET, pointing to the shared kernel PMD; the PDPT itself is a 32-byte object (pgd_cache).
    /// </summary>
    private (int Offset, int Length, ulong Alignment) KernelPgdShare()
    {
        ulong pageOffset = _layout.PageOffsetBase ?? X86.PagingModes.DefaultI386PageOffset;
        return _r.Mode switch
        {
            X86.PagingMode.Legacy32 => ((int)(pageOffset >> 22) * 4, 32 * 4, 0x1000),
            X86.PagingMode.Pae32 => ((int)(pageOffset >> 30) * 8, 8, 32),
            _ => (2048, 2048, 0x1000),
        };
    }

    private List<int> PgdOffsets(HashSet<ulong> objects, byte[] kernelHalf, (int Offset, int Length, ulong Alignment) share)
    {
        var result = new List<int>();
        var buffer = new byte[share.Length];
        for (int q = 0; q + _p <= Math.Min(_structBytes, 1024); q += _p)
        {
            bool ok = true;
            foreach (ulong m in objects)
            {
                Step();
                ulong pgd = Ptr(m + (ulong)q);
                if ((pgd & (share.Alignment - 1)) != 0 || !IsKernel(pgd) || !_r.Space.TryTranslate(pgd, out ulong pa)
                    || _r.Space.Physical.Read(pa + (ulong)share.Offset, buffer) != share.Length || !buffer.AsSpan().SequenceEqual(kernelHalf)) { ok = false; break; }
            }
            if (ok) result.Add(q);
        }
        return result;
    }

    /// <summary>
    /// Tasks of a live guest that may break the flags rule for a moment and are tolerated, at most this many per column:
    /// a kworker created but not yet run (its name is set at creation, PF_WQ_WORKER only when worker_thread first runs),
    /// and a user-mode helper between user_mode_thread() and its exec (no PF_KTHREAD, no mm yet). Seen on a paused
    /// two-vCPU i386 guest (CI, 2026-11-30). A column of unrelated data breaks the rule for far more tasks than this.
    /// </summary>
    private const int FlagsRuleTransientTasks = 2;

    private void InferFlags(TaskEvidence ev, List<byte[]> windows)
    {
        var candidates = new List<int>();
        var exceptions = new Dictionary<int, int>();
        for (int o = 0; o + 4 <= _taskBytes; o += 4)
        {
            Step(windows.Count);
            int broken = FlagsRuleExceptions(U32(windows[0], o),
                windows.Skip(1).Select(w => (U32(w, o), Word(w, ev.Mm) != 0, CommOf(w, ev.Comm))), FlagsRuleTransientTasks);
            if (broken > FlagsRuleTransientTasks) continue;
            candidates.Add(o);
            exceptions[o] = broken;
        }
        // The columns with the fewest exceptions; of those, the lowest.
        if (candidates.Count > 1) candidates = candidates.Where(c => exceptions[c] == candidates.Min(x => exceptions[x])).ToList();
        ev.Flags = Required(_report.Add(Task, "flags", candidates,
            $"u32: init_task has PF_KTHREAD|PF_IDLE, no other task PF_IDLE; PF_KTHREAD exactly when mm is NULL (or PF_EXITING without mm: a zombie); every kworker/* has PF_WQ_WORKER (at most {FlagsRuleTransientTasks} tasks in transition excepted, the fewest exceptions first)",
            // A later column can repeat the flags by chance on a quiet guest (seen at 0x151c on a 2 GiB Debian 6.1 guest).
            c => c.Min(), "lowest offset: flags has been declared among task_struct's first members (after thread_info, __state, stack, usage) since 2.6"), "task_struct.flags");
    }

    /// <summary>
    /// How many tasks break the flags rule for one candidate column, given init_task's value and every other sampled
    /// task's (value, has an mm, comm); more than <paramref name="tolerance"/> (counting stops there) when the column
    /// cannot be flags: init_task lacks PF_KTHREAD|PF_IDLE, or another task has PF_IDLE.
    /// </summary>
    public static int FlagsRuleExceptions(uint initFlags, IEnumerable<(uint Flags, bool HasMm, string Comm)> tasks, int tolerance)
    {
        const uint idle = KernelMacros.PF_KTHREAD | PF_IDLE;
        if ((initFlags & idle) != idle) return int.MaxValue;
        int broken = 0;
        foreach (var (f, hasMm, comm) in tasks)
        {
            bool kthread = (f & KernelMacros.PF_KTHREAD) != 0;
            // An exiting task (a zombie) has dropped its mm without being a kernel thread: PF_EXITING says so.
            if ((f & PF_IDLE) != 0) return int.MaxValue;
            if ((kthread && hasMm) || (!hasMm && !kthread && (f & KernelMacros.PF_EXITING) == 0)) broken++;
            else if (comm.StartsWith("kworker/", StringComparison.Ordinal) && (f & PF_WQ_WORKER) == 0) broken++;
            if (broken > tolerance) return broken;
        }
        return broken;
    }

    private static string CommOf(byte[] w, int comm)
    {
        var b = w.AsSpan(comm, TaskCommLength);
        int n = b.IndexOf((byte)0);
        return System.Text.Encoding.ASCII.GetString(n < 0 ? b : b[..n]);
    }

    private void InferParents(TaskEvidence ev, List<byte[]> windows)
    {
        var set = new HashSet<ulong>(ev.AllLeaders);
        var parents = new List<int>();
        var identity = new List<int>();
        for (int o = 0; o + _p <= _taskBytes; o += _p)
        {
            Step(windows.Count);
            if (Word(windows[0], o) != ev.Init) continue;
            bool self = true, ok = true;
            for (int i = 0; i < windows.Count && ok; i++)
            {
                ulong v = Word(windows[i], o);
                if (v != ev.Leaders[i]) self = false;
                if (!set.Contains(v) && !(IsKernel(v) && ReadsComm(v, ev.Comm))) ok = false;
            }
            if (!ok) continue;
            if (self) identity.Add(o);
            else if (Word(windows[1], o) == ev.Init) parents.Add(o);
        }
        const string rule = "pointer column whose values are tasks: init_task points to itself, the first task after it to init_task, not every task to itself";
        ev.RealParent = _report.Add(Task, "real_parent", parents, rule, c => c.Min(), "lower offset is real_parent (the two differ only under ptrace)");
        ev.Parent = _report.Add(Task, "parent", parents, rule, c => c.Max(), "higher offset is parent (the two differ only under ptrace)");
        ev.GroupLeader = _report.Add(Task, "group_leader", identity,
            "pointer column where every thread-group leader points to itself",
            c => c.Where(o => ev.RealParent is not { } rp || o > rp).DefaultIfEmpty(c.Min()).Min(),
            "the first such column after real_parent (declared after real_parent, parent, children, sibling)");
    }

    private void InferCreds(TaskEvidence ev, List<byte[]> windows)
    {
        if (InitCred() is not { } initCred)
        {
            _report.AddUnknown(Task, "real_cred", "needs init_cred (not in kallsyms, and no single init_cred-like object found from init_task)");
            _report.AddUnknown(Task, "cred", "needs init_cred (not in kallsyms, and no single init_cred-like object found from init_task)");
            return;
        }
        var candidates = new List<int>();
        for (int o = 0; o + _p <= _taskBytes; o += _p)
        {
            Step(windows.Count);
            if (Word(windows[0], o) != initCred) continue;
            if (windows.All(w => IsKernel(Word(w, o)))) candidates.Add(o);
        }
        const string rule = "pointer column: init_task points to init_cred, every task to a kernel object";
        ev.RealCred = _report.Add(Task, "real_cred", candidates, rule, c => c.Min(), "lower offset is real_cred (declared before cred)");
        ev.Cred = _report.Add(Task, "cred", candidates, rule, c => c.Max(), "higher offset is cred");
    }

    private void InferThreads(TaskEvidence ev, List<byte[]> windows, List<int> pidColumns)
    {
        // signal + thread_node + signal_struct.thread_head: a pointer column S, distinct for every leader, such that at
        // one offset H of *S a list_head starts whose first node is the leader's own list_head at one offset N, and the
        // list is a proper cycle back to S+H. The cycle's nodes are the threads.
        var found = new List<(int S, int H, int N, Dictionary<ulong, List<ulong>> Threads)>();
        for (int s = 0; s + _p <= _taskBytes; s += _p)
        {
            Step(windows.Count);
            var values = new HashSet<ulong>();
            bool ok = true;
            foreach (var w in windows)
            {
                ulong v = Word(w, s);
                if (!IsKernel(v) || !values.Add(v)) { ok = false; break; }
            }
            if (!ok) continue;
            byte[]? first = SmallWindow(Word(windows[0], s));
            if (first is null) continue;
            for (int h = 0; h + 2 * _p <= _smallBytes; h += _p)
            {
                Step();
                long n = (long)(Word(first, h) - ev.Leaders[0]);
                if (n <= 0 || n >= _taskBytes || n % _p != 0 || n == ev.TasksOff) continue;
                var threads = new Dictionary<ulong, List<ulong>>();
                for (int i = 0; i < windows.Count && ok; i++)
                {
                    ulong head = Word(windows[i], s) + (ulong)h;
                    var members = WalkThreadList(head, (int)n, ev.Leaders[i]);
                    if (members is null) ok = false;
                    else threads[ev.Leaders[i]] = members;
                }
                if (ok) found.Add((s, h, (int)n, threads));
                ok = true;
            }
        }
        // Every thread of a group shares its leader's signal (a list link next to the thread list, e.g. thread_node.prev,
        // passes the rest for single-threaded processes only).
        found = found.Where(f => f.Threads.All(kv => kv.Value.All(t => Ptr(t + (ulong)f.S) == Word(windows[ev.Leaders.IndexOf(kv.Key)], f.S)))).ToList();
        const string rule = "signal: pointer column distinct for every leader and shared by its threads; signal_struct.thread_head: the list_head in *signal whose first node is the leader's thread_node; the list is a cycle";
        var ss = found.Select(f => f.S).Distinct().ToList();
        ev.Signal = _report.Add(Task, "signal", ss, rule);
        var chosen = found.Where(f => f.S == ev.Signal).ToList();
        ev.SignalThreadHead = _report.Add("signal_struct", "thread_head", chosen.Select(f => f.H).Distinct().ToList(), rule);
        ev.ThreadNode = _report.Add(Task, "thread_node", chosen.Select(f => f.N).Distinct().ToList(), rule);
        var threadSets = chosen.Count == 1 ? chosen[0].Threads : ev.Leaders.ToDictionary(l => l, l => new List<ulong> { l });
        foreach (var (k, v) in threadSets) ev.Threads[k] = v;
        // Leaders outside the sample: their threads through the list the sample settled (a multi-threaded process anywhere
        // on a big guest is evidence for pid/tgid and thread_group).
        if (chosen.Count == 1 && ev.AllLeaders.Count > ev.Leaders.Count)
        {
            var (s0, h0, n0, _) = chosen[0];
            foreach (ulong leader in ev.AllLeaders)
            {
                if (ev.Threads.ContainsKey(leader)) continue;
                ulong signal = Ptr(leader + (ulong)s0);
                ev.Threads[leader] = IsKernel(signal) && WalkThreadList(signal + (ulong)h0, n0, leader) is { } members ? members : [leader];
            }
        }

        var others = ev.Threads.SelectMany(kv => kv.Value.Where(t => t != kv.Key).Select(t => (Leader: kv.Key, Thread: t))).ToList();
        _report.Threads = others.Count;
        // Thread windows are read whole: as many as leader windows at most.
        others = others.Take(Math.Max(2, _limits.MaxInferenceTaskSamples)).ToList();
        // pid vs tgid: a thread that is not its group's leader shares the leader's tgid and has a pid of its own.
        var tw = others.Select(x => (L: TaskWindow(x.Leader)!, T: TaskWindow(x.Thread))).Where(x => x.T is not null).ToList();
        var pids = tw.Count == 0 ? pidColumns : pidColumns.Where(o => tw.All(x => I32(x.T!, o) != I32(x.L, o))).ToList();
        var tgids = tw.Count == 0 ? pidColumns : pidColumns.Where(o => tw.All(x => I32(x.T!, o) == I32(x.L, o))).ToList();
        const string pidRule = "s32 column: 0 in init_task, 1 in the next task, distinct plausible pids; a non-leader thread has its own pid and its leader's tgid";
        ev.Pid = Required(_report.Add(Task, "pid", pids, pidRule, c => PickPid(c, tgids),
            "pid_t pid; pid_t tgid; are declared together: the lowest candidate with a tgid candidate right after it (7.3.4 has a second pid-valued column at 0x3c8)"), "task_struct.pid");
        int pidAt = ev.Pid;
        ev.Tgid = Required(_report.Add(Task, "tgid", tgids.Where(o => o != pidAt).ToList(), pidRule, c => c.Contains(pidAt + 4) ? pidAt + 4 : c.Min(),
            "the column right after pid (else the lowest)"), "task_struct.tgid");

        // thread_group (until 6.6): a list_head column from each leader cycling through exactly its threads.
        if (tw.Count == 0)
            _report.AddUnknown(Task, "thread_group", "needs a multi-threaded process as evidence; threads come from signal->thread_head");
        else
        {
            var candidates = new List<int>();
            for (int o = 0; o + 2 * _p <= _taskBytes; o += _p)
            {
                if (o == ev.TasksOff || o == ev.ThreadNode) continue;
                Step();
                bool ok = true;
                foreach (var (leader, members) in ev.Threads.Where(kv => kv.Value.Count > 1 || ev.Leaders.Contains(kv.Key)))
                {
                    var cycle = WalkThreadList(leader + (ulong)o, o, null, includeHead: true);
                    if (cycle is null || !cycle.ToHashSet().SetEquals(members)) { ok = false; break; }
                }
                if (ok) candidates.Add(o);
            }
            ev.ThreadGroup = _report.Add(Task, "thread_group", candidates, "list_head column cycling from each leader through exactly the threads of its signal->thread_head list");
        }

        // nr_threads: an int in signal_struct equal to the thread count of every process.
        if (ev.Signal is { } sig && tw.Count > 0)
        {
            var candidates = new List<int>();
            for (int o = 0; o + 4 <= _smallBytes; o += 4)
            {
                Step(windows.Count);
                if (ev.Leaders.All(l => SmallWindow(Ptr(l + (ulong)sig)) is { } w && I32(w, o) == ev.Threads[l].Count)) candidates.Add(o);
            }
            ev.NrThreads = _report.Add("signal_struct", "nr_threads", candidates, "int equal to every process's thread count");
        }
        else _report.AddUnknown("signal_struct", "nr_threads", "needs a multi-threaded process as evidence");
    }

    /// <summary>Threads on a list_head cycle (node − offset), or null if the links do not form a proper cycle.</summary>
    private List<ulong>? WalkThreadList(ulong head, int offset, ulong? firstMustBe, bool includeHead = false)
    {
        ulong node = head;
        var seen = new HashSet<ulong> { head };
        var result = new List<ulong>();
        if (includeHead) result.Add(head - (ulong)offset);
        for (int i = 0; i <= _limits.MaxThreadsPerProcess; i++)
        {
            Step();
            ulong next = Ptr(node);
            if (next == head) return firstMustBe is null || result.Count > 0 ? result : null;
            if (!IsKernel(next) || !seen.Add(next) || Ptr(next + (ulong)_w.ListHeadPrev) != node) return null;
            ulong t = next - (ulong)offset;
            if (i == 0 && firstMustBe is { } f && t != f) return null;
            result.Add(t);
            node = next;
        }
        return null;
    }

    private void InferState(TaskEvidence ev, List<byte[]> windows)
    {
        int cap = Math.Max(2, _limits.MaxInferenceTaskSamples);
        var all = windows.Concat(ev.Threads.SelectMany(kv => kv.Value.Where(t => t != kv.Key)).Distinct().Take(cap).Select(TaskWindow).Where(w => w is not null)!).Distinct().ToList();
        // __state: u32, every value made of state bits only, init_task running (0), some task in TASK_INTERRUPTIBLE and some
        // (a kernel thread in an idle wait) in TASK_UNINTERRUPTIBLE|TASK_NOLOAD.
        var candidates = new List<int>();
        for (int o = 0; o + 4 <= _taskBytes; o += 4)
        {
            Step(all.Count);
            if (U32(windows[0], o) != 0) continue;
            bool ok = true, sleeping = false, idle = false;
            foreach (var w in all!)
            {
                uint v = U32(w!, o);
                if (v >= TaskStateBitsLimit) { ok = false; break; }
                sleeping |= v == TASK_INTERRUPTIBLE;
                idle |= v == KernelMacros.TASK_IDLE;
            }
            if (ok && sleeping && idle) candidates.Add(o);
        }
        ev.State = _report.Add(Task, "__state", candidates,
            "u32 of state bits only (< TASK_STATE_MAX 0x10000): init_task 0, some task TASK_INTERRUPTIBLE, some TASK_IDLE", c => c.Min(), "lowest offset (__state is declared near the start)");

        // exit_state: int in {0, EXIT_DEAD, EXIT_ZOMBIE} for every task, with exit_signal 8 bytes later: SIGCHLD for most user
        // processes, -1 for every non-leader thread.
        var exit = new List<int>();
        var users = windows.Where(w => Word(w, ev.Mm) != 0).ToList();
        var threads = ev.Threads.SelectMany(kv => kv.Value.Where(t => t != kv.Key)).Take(cap).Select(TaskWindow).Where(w => w is not null).ToList();
        for (int o = 0; o + 4 + ExitSignalAfterExitState <= _taskBytes && users.Count > 0; o += 4)
        {
            Step(all.Count);
            if (!all.All(w => I32(w!, o) is 0 or EXIT_DEAD or EXIT_ZOMBIE)) continue;
            int sigchld = users.Count(w => I32(w, o + ExitSignalAfterExitState) == SIGCHLD);
            if (sigchld * 2 <= users.Count || !threads.All(w => I32(w!, o + ExitSignalAfterExitState) == -1)) continue;
            exit.Add(o);
        }
        ev.ExitState = _report.Add(Task, "exit_state", exit,
            "int in {0, EXIT_DEAD, EXIT_ZOMBIE} for every task, followed 8 bytes later by exit_signal: SIGCHLD for most processes, -1 for threads");
    }
}
