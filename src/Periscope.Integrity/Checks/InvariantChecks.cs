using System.Buffers.Binary;
using Periscope.Integrity.Evidence;
using Periscope.Integrity.Regions;
using Periscope.Integrity.Verification;
using Periscope.Linux;
using Periscope.Linux.Model;

namespace Periscope.Integrity.Checks;

/// <summary>
/// Checks that need no history: syscall and interrupt handlers must live in kernel text; module-area memory must
/// belong to a listed module; every task another structure knows (pid namespace, parents' children lists, run queues,
/// thread groups) must be on the task list; task->flags must hold only bits the kernel defines. Each cross-view
/// compares what the kernel's lists say with another structure a rootkit would also have to falsify. Every check says
/// what it could not do (<see cref="CheckOutcome"/>); none is silently clean.
/// </summary>
public sealed class InvariantChecks
{
    /// <summary>Nesting of task groups (cfs_rq inside sched_entity inside cfs_rq); the kernel allows far fewer.</summary>
    private const int MaxGroupDepth = 32;
    /// <summary>x86 gate type 5 (the low five bits of a gate's byte 5): a task gate.</summary>
    private const int TaskGateType = 0x05;
    /// <summary>#DF: i386 Linux handles it through a task gate (arch/x86/kernel/idt.c, CONFIG_X86_32).</summary>
    private const int DoubleFaultVector = 8;
    /// <summary>GDT_ENTRY_DOUBLEFAULT_TSS (31) as a selector (index × 8, GDT, RPL 0): arch/x86/include/asm/segment.h.</summary>
    private const ushort DoubleFaultTssSelector = 31 * 8;
    private readonly LinuxKernel _kernel;
    private readonly GuestReader _r;
    private CodeContext? _context;
    private IReadOnlyList<Diagnostic> _modelDiagnostics = [];
    private HashSet<ulong>? _listed;
    private HiddenTaskJudge? _judge;

    public InvariantChecks(LinuxKernel kernel)
    {
        _kernel = kernel;
        _r = kernel.Reader;
    }

    private CodeContext Context => _context ??= new CodeContext(_kernel);

    /// <summary>What each check cannot run without; a kernel lacking any of it gets the check skipped, with the reason.</summary>
    public static CheckRequirements RequirementsOf(CheckId check) => check switch
    {
        CheckId.KernelLists => CheckRequirements.None,
        // The tables themselves come by data symbol or, without data symbols, by structure and the IDTR (LinuxKernel.Dispatch):
        // a table not found skips the check with the reason.
        CheckId.SyscallTable => new() { Symbols = ["_stext", "_etext"] },
        CheckId.InterruptTable => new() { Symbols = ["_stext", "_etext"] },
        CheckId.ModuleArea => new()
        {
            // The busy areas' list heads depend on the era (vmap_area_list, or 6.9+'s vmap_nodes): VmallocAreas says which is missing.
            Symbols = ["modules"],
            Types = [("vmap_area", "list"), ("vmap_area", "va_start"), ("vmap_area", "va_end")],
        },
        CheckId.PidNamespace => new()
        {
            Symbols = ["init_pid_ns"],
            Types = [("pid_namespace", "idr.idr_rt.xa_head"), ("xa_node", "slots"), ("pid", "tasks"), ("task_struct", "pid_links"), .. PidLinkTypes],
        },
        CheckId.ChildrenLists => new() { Types = [("task_struct", "children"), ("task_struct", "sibling"), .. PidLinkTypes] },
        CheckId.RunQueues => new()
        {
            // nr_cpu_ids, when kallsyms lacks it (i386), is the vCPU count (PerCpuAreas).
            Symbols = ["runqueues", "__per_cpu_offset"],
            Types =
            [
                ("rq", "cfs"), ("rq", "rt"), ("rq", "dl"), ("rq", "curr"), ("rq", "idle"), ("rq", "cpu"),
                ("cfs_rq", "tasks_timeline.rb_root.rb_node"), ("sched_entity", "run_node"), ("task_struct", "se"),
                ("rt_rq", "active.queue"), ("sched_rt_entity", "run_list"), ("task_struct", "rt"),
                ("dl_rq", "root.rb_root.rb_node"), ("sched_dl_entity", "rb_node"), ("task_struct", "dl"),
                ("rb_node", "rb_left"), ("rb_node", "rb_right"), ("list_head", "next"), .. PidLinkTypes,
            ],
        },
        CheckId.ThreadGroups => new()
        {
            Types = [("task_struct", "thread_node"), ("task_struct", "signal"), ("task_struct", "group_leader"), ("signal_struct", "thread_head"), .. PidLinkTypes],
        },
        CheckId.TaskFlags => CheckRequirements.None,
        _ => CheckRequirements.None,
    };

    /// <summary>A task's own pid link (task->thread_pid->numbers[0].nr), read to tell live tasks from garbage.</summary>
    private static readonly (string, string?)[] PidLinkTypes = [("task_struct", "thread_pid"), ("pid", "numbers"), ("upid", "nr")];

    public IReadOnlyList<InvariantCheck> Checks =>
    [
        new(CheckId.KernelLists, RequirementsOf(CheckId.KernelLists), KernelLists),
        new(CheckId.SyscallTable, RequirementsOf(CheckId.SyscallTable), SyscallTable),
        new(CheckId.InterruptTable, RequirementsOf(CheckId.InterruptTable), InterruptTable),
        new(CheckId.ModuleArea, RequirementsOf(CheckId.ModuleArea), ModuleArea),
        new(CheckId.PidNamespace, RequirementsOf(CheckId.PidNamespace), PidNamespace),
        new(CheckId.ChildrenLists, RequirementsOf(CheckId.ChildrenLists), ChildrenLists),
        new(CheckId.RunQueues, RequirementsOf(CheckId.RunQueues), RunQueues),
        new(CheckId.ThreadGroups, RequirementsOf(CheckId.ThreadGroups), ThreadGroups),
        new(CheckId.TaskFlags, RequirementsOf(CheckId.TaskFlags), TaskFlags),
    ];

    public CheckReport Run()
    {
        LoadModel();
        return CheckRunner.Run(new KernelFacts(_kernel), Checks, _kernel.Limits, _kernel.Diagnostics);
    }

    /// <summary>Walks the task and module lists before any check, so their diagnostics belong to the lists (reported by
    /// <see cref="CheckId.KernelLists"/>) and later diagnostics to the check whose walk caused them.</summary>
    private void LoadModel()
    {
        try { _ = _kernel.Tasks; } catch (Exception ex) when (ex is not OutOfMemoryException) { } // reported by the checks that need them
        try { _ = _kernel.Modules; } catch (Exception ex) when (ex is not OutOfMemoryException) { }
        _modelDiagnostics = _kernel.Diagnostics.Items;
    }

    private static bool IsTaskArea(string area) => area is "task list" or "task" or "thread" || area.StartsWith("threads of pid", StringComparison.Ordinal);

    /// <summary>Every task_struct the task list and the thread lists lead to: the view the cross-checks compare with.</summary>
    private HashSet<ulong> Listed => _listed ??= _kernel.Tasks.SelectMany(t => t.Threads.Select(th => th.Address).Append(t.Address)).ToHashSet();

    private HiddenTaskJudge Judge => _judge ??= new HiddenTaskJudge(Listed, !_modelDiagnostics.Any(d => IsTaskArea(d.Area)));

    private bool InKernelText(ulong va) => Context.InKernelText(va);

    private string Comm(ulong task) => _r.ReadFixedString(task + (ulong)_kernel.Offsets.Task.Comm, _kernel.Offsets.Task.CommSize) ?? "?";

    private string Where(ulong va) => Context.ModuleAt(va) is { } m ? $"module {m.Name}" : InKernelText(va) ? "kernel text" : "outside kernel text and modules";

    /// <summary>From BTF, or inferred when the kernel has none (<see cref="LinuxKernel.Layouts"/>).</summary>
    private ulong Offset(string structName, string path) => (ulong)_kernel.Layouts.Offset(structName, path);

    /// <summary>Reads what a task_struct says about itself; null when its pid cannot be read at all.</summary>
    private TaskFacts? ReadFacts(ulong task)
    {
        var o = _kernel.Offsets.Task;
        if (!_r.IsKernelPointer(task) || !_r.TryI32(task + (ulong)o.Pid, out int pid) || !_r.TryI32(task + (ulong)o.Tgid, out int tgid)) return null;
        _r.TryU32(task + (ulong)o.Flags, out uint flags);
        _r.TryU32(task + (ulong)o.ExitState, out uint exitState);
        int? own = null;
        if (_r.TryPointer(task + Offset("task_struct", "thread_pid"), out ulong pidStruct) && _r.IsKernelPointer(pidStruct)
            && _r.TryI32(pidStruct + Offset("pid", "numbers") + Offset("upid", "nr"), out int nr))
            own = nr;
        return new TaskFacts(pid, tgid, Comm(task), flags, exitState, own);
    }

    private void Sighted(CheckRun run, ulong task, TaskView view, string via)
    {
        if (Listed.Contains(task)) return;
        Judge.Judge(run, new TaskSighting(task, view, via), ReadFacts(task));
    }

    /// <summary>The lists the model walked: a broken task or module list is a finding and leaves the task views unsure.</summary>
    public void KernelLists(CheckRun run)
    {
        _ = _kernel.Tasks;
        _ = _kernel.Modules;
        foreach (var d in _modelDiagnostics)
        {
            if (d.Area is "module list" or "task list")
                run.Report(FindingKind.ListIntegrity, Severity.Warning, d.Area, d.Address ?? 0, d.Message);
            if (d.Area != "module list") run.Incomplete(GapKind.CorruptStructure, d.ToString());
        }
    }

    public void SyscallTable(CheckRun run)
    {
        if (_kernel.Dispatch.SyscallTable is not { } table)
        {
            run.Skip(GapKind.MissingSymbol, _kernel.Dispatch.SyscallTableMissing ?? "no syscall table");
            return;
        }
        var bytes = new byte[table.Length];
        int read = _kernel.KernelSpace.Read(table.Address, bytes);
        if (read != bytes.Length)
        {
            run.Incomplete(GapKind.UnreadableMemory, $"{table.Name} at 0x{table.Address:x}: read {read} of {bytes.Length} bytes");
            return;
        }
        // The table's extent runs to the next symbol; trailing zero words are alignment padding, not entries.
        int word = table.EntrySize, length = bytes.Length;
        while (length >= word && ReadWord(bytes.AsSpan(length - word, word)) == 0) length -= word;
        for (int i = 0; i + word <= length; i += word)
        {
            ulong target = ReadWord(bytes.AsSpan(i, word));
            if (InKernelText(target)) continue;
            run.Report(FindingKind.HandlerOutsideKernelText, Severity.Critical, $"{table.Name}[{i / word}]", table.Address + (ulong)i,
                $"handler 0x{target:x} ({Context.Describe(target)}) is in {Where(target)}");
        }
    }

    private static ulong ReadWord(ReadOnlySpan<byte> word) =>
        word.Length == 4 ? BinaryPrimitives.ReadUInt32LittleEndian(word) : BinaryPrimitives.ReadUInt64LittleEndian(word);

    public void InterruptTable(CheckRun run)
    {
        if (_kernel.Dispatch.InterruptTable is not { } table)
        {
            run.Skip(GapKind.MissingSymbol, _kernel.Dispatch.InterruptTableMissing ?? "no IDT");
            return;
        }
        ulong idt = table.Address;
        int gateSize = table.EntrySize;
        var bytes = new byte[table.Length];
        int read = _kernel.KernelSpace.Read(idt, bytes);
        if (read != bytes.Length)
        {
            run.Incomplete(GapKind.UnreadableMemory, $"idt_table at 0x{idt:x}: read {read} of {bytes.Length} bytes");
            return;
        }
        for (int v = 0; v < bytes.Length / gateSize; v++)
        {
            var gate = bytes.AsSpan(v * gateSize, gateSize);
            if ((gate[5] & 0x80) == 0) continue; // not present
            if ((gate[5] & 0x1f) == TaskGateType)
            {
                // A task gate has no handler address: it switches to the TSS its selector names. i386 Linux has exactly one,
                // the double fault's (vector 8) to GDT_ENTRY_DOUBLEFAULT_TSS; any other is not the kernel's.
                ushort selector = BinaryPrimitives.ReadUInt16LittleEndian(gate[2..]);
                if (v != DoubleFaultVector || selector != DoubleFaultTssSelector)
                    run.Report(FindingKind.HandlerOutsideKernelText, Severity.Critical, $"IDT vector 0x{v:x2}", idt + (ulong)(v * gateSize),
                        $"task gate to TSS selector 0x{selector:x}: Linux sets only vector 0x{DoubleFaultVector:x2}'s, to selector 0x{DoubleFaultTssSelector:x}");
                continue;
            }
            ulong handler = Verifier.GateHandler(gate);
            if (InKernelText(handler)) continue;
            if (v < 32 && _kernel.Symbols.TryFindContaining(handler, out var sym, out _) && sym.Name == "early_idt_handler_array")
            {
                // Linux leaves the reserved exception vectors on their early boot stubs (in freed init text).
                run.Report(FindingKind.EarlyBootHandler, Severity.Info, $"IDT vector 0x{v:x2}", idt + (ulong)(v * gateSize),
                    $"reserved exception vector still on its early boot handler {Context.Describe(handler)}");
                continue;
            }
            run.Report(FindingKind.HandlerOutsideKernelText, Severity.Critical, $"IDT vector 0x{v:x2}", idt + (ulong)(v * gateSize),
                $"handler 0x{handler:x} ({Context.Describe(handler)}) is in {Where(handler)}");
        }
    }

    /// <summary>
    /// Every vmalloc area in the module range must belong to a listed module. An unowned area holding a struct module
    /// (its core base pointing back at the area) is a module unlinked from the list: hidden. The areas are read as the
    /// kernel keeps them (<see cref="VmallocAreas"/>: vmap_area_list, or 6.9+'s per-node lists). Where modules share
    /// the vmalloc range with every other allocation (i386), an unowned area is ordinary vmalloc memory, not a finding.
    /// </summary>
    public void ModuleArea(CheckRun run)
    {
        if (VmallocAreas.Open(_kernel, out string reason) is not { } vmalloc)
        {
            run.Unavailable(reason);
            return;
        }
        bool separateModuleArea = _kernel.Reader.PointerSize == 8; // i386 has no module area of its own
        var areas = new List<VmallocArea>();
        foreach (var area in vmalloc.Walk(run.Limits.MaxCheckWalkNodes, va => run.Incomplete(GapKind.UnreadableMemory, $"vmap_area 0x{va:x} is unreadable")))
        {
            if (!run.Visit()) return;
            areas.Add(area);
        }
        // Searching an area costs one walk node per page, so many huge areas cannot add up unbounded.
        var view = ModuleAreaScanner.Scan(_kernel, areas, (_, length) =>
        {
            for (ulong page = 0; page < length; page += 4096)
                if (!run.Visit()) return false;
            return true;
        });
        foreach (var hidden in view.Hidden)
            run.Report(FindingKind.HiddenModule, Severity.Critical, hidden.Name, hidden.Address,
                $"module '{hidden.Name}' (struct module at 0x{hidden.Address:x}, text 0x{hidden.Base:x}) is not on the modules list");
        if (!separateModuleArea) return;
        foreach (var a in view.Unowned)
            run.Report(FindingKind.UnownedModuleMemory, Severity.Info, $"0x{a.Start:x}-0x{a.End:x}", a.Start,
                "module-area memory owned by no listed module and holding no struct module (ftrace trampoline, BPF JIT or kprobe slots)");
    }

    /// <summary>Every task reachable from the pid namespace's IDR (pid → tasks[PIDTYPE_PID]) must be on the task list.</summary>
    public void PidNamespace(CheckRun run)
    {
        _kernel.DataAddresses.TryGetAddress("init_pid_ns", out ulong ns);
        ulong xaHead = ns + Offset("pid_namespace", "idr.idr_rt.xa_head");
        // xa_node from BTF, else its fixed layout (PidAbi) at the guest's word size.
        string? why = null;
        var xa = _kernel.Btf is { } btf ? XArrayReader.Create(_r, btf, out why) : XArrayReader.FromAbi(_r);
        if (xa is null)
        {
            run.Incomplete(GapKind.CorruptStructure, $"pid IDR not read: {why}");
            return;
        }
        ulong tasksOff = Offset("pid", "tasks"), linksOff = Offset("task_struct", "pid_links");

        if (!_r.TryPointer(xaHead, out ulong root))
        {
            run.Incomplete(GapKind.UnreadableMemory, $"init_pid_ns.idr at 0x{xaHead:x} is unreadable");
            return;
        }
        var gaps = new List<string>();
        var pids = new List<ulong>();
        foreach (var e in xa.Read(root, run.Limits.MaxXarrayEntries, "pid IDR", gaps))
        {
            if (!run.Visit()) break;
            if (e.Kind == XArrayEntryKind.Pointer && _r.IsKernelPointer(e.Entry)) pids.Add(e.Entry);
        }
        foreach (var gap in gaps) run.Incomplete(GapKind.CorruptStructure, gap);
        foreach (ulong p in pids)
        {
            if (!_r.TryPointer(p + tasksOff, out ulong first))
            {
                run.Incomplete(GapKind.UnreadableMemory, $"struct pid 0x{p:x} in the pid IDR is unreadable");
                continue;
            }
            if (first == 0) continue; // a pid with no task of type PID (a process group or session id whose leader left)
            if (!_r.IsKernelPointer(first))
            {
                run.Incomplete(GapKind.CorruptStructure, $"struct pid 0x{p:x}: tasks[PIDTYPE_PID] 0x{first:x} is not a kernel pointer");
                continue;
            }
            Sighted(run, first - linksOff, TaskView.PidNamespace, "in the pid namespace");
        }
    }

    /// <summary>Second cross-view: every child on a parent's children list (linked through sibling) must be on the task list.</summary>
    public void ChildrenLists(CheckRun run)
    {
        int children = checked((int)Offset("task_struct", "children")), sibling = checked((int)Offset("task_struct", "sibling"));
        foreach (var parent in _kernel.Tasks.ToList())
            foreach (var thread in parent.Threads)
                foreach (ulong child in _kernel.Lists.Walk(thread.Address + (ulong)children, sibling, _kernel.Limits.MaxTasks, $"children of pid {thread.Tid}", includeHead: false))
                {
                    if (!run.Visit()) return;
                    Sighted(run, child, TaskView.ChildrenList, $"a child of pid {thread.Tid}");
                }
    }

    /// <summary>
    /// Third cross-view: what each CPU runs or will run. Per-CPU run queues (the per-CPU copy of `runqueues` at
    /// __per_cpu_offset[cpu]) hold the running task (curr), the idle task, and the queued tasks of the fair (cfs
    /// rb-tree, descending into task groups), real-time (priority lists) and deadline (rb-tree) classes.
    /// </summary>
    public void RunQueues(CheckRun run)
    {
        _kernel.DataAddresses.TryGetAddress("runqueues", out ulong runqueues);
        var walker = new RunQueueWalker(this, run);
        if (walker.RtQueues is <= 0 or > SchedulerOffsets.MaxRtPrio)
        {
            run.Incomplete(GapKind.CorruptStructure, $"BTF says rt_rq.active.queue has {walker.RtQueues} lists; MAX_RT_PRIO is {SchedulerOffsets.MaxRtPrio}");
            return;
        }
        // The possible CPUs and their per-CPU offsets, read where the kernel model reads them (idle tasks).
        var areas = PerCpuAreas.Read(_r, _kernel.DataAddresses.TryGetAddress, run.Limits.MaxCheckCpus, nameof(run.Limits.MaxCheckCpus), "run queues", _kernel.Cpus.Count);
        foreach (var gap in areas.Gaps)
            run.Incomplete(gap.Kind switch
            {
                PerCpuGapKind.CapReached => GapKind.WalkBudget,
                PerCpuGapKind.Corrupt => GapKind.CorruptStructure,
                PerCpuGapKind.Unavailable => GapKind.MissingSymbol,
                _ => GapKind.UnreadableMemory,
            }, gap.Message);
        foreach (var cpu in areas.Cpus)
        {
            if (run.BudgetExhausted) break;
            walker.Walk((uint)cpu.Cpu, cpu.Of(runqueues));
        }
    }

    /// <summary>Walks one CPU's rq. Layouts from BTF; the fair class's tree nests task groups (se->my_q).</summary>
    private sealed class RunQueueWalker
    {
        private readonly InvariantChecks _c;
        private readonly CheckRun _run;
        private readonly GuestReader _r;
        private readonly ulong _cpuOff, _curr, _idle, _cfs, _rt, _dl, _fairServer;
        private readonly ulong _cfsRoot, _seRunNode, _seMyQ, _taskSe;
        private readonly ulong _rtQueue, _rtRunList, _taskRt, _rtMyQ;
        private readonly int _rtQueues, _listHeadSize;
        public int RtQueues => _rtQueues;
        private readonly ulong _dlRoot, _dlRbNode, _taskDl;
        private readonly ulong _rbLeft, _rbRight;

        public RunQueueWalker(InvariantChecks c, CheckRun run)
        {
            _c = c;
            _run = run;
            _r = c._r;
            // Member offsets by name: from BTF, or inferred without it (KernelLayouts); the guest's word size throughout.
            var layouts = c._kernel.Layouts;
            (_cpuOff, _curr, _idle) = (c.Offset("rq", "cpu"), c.Offset("rq", "curr"), c.Offset("rq", "idle"));
            _cfs = c.Offset("rq", "cfs");
            _rt = c.Offset("rq", "rt");
            _dl = c.Offset("rq", "dl");
            // 6.8+: the fair server is a deadline entity inside struct rq, queued on the dl tree but not a task. Where its
            // offset is unknown (inferred layouts), any deadline entity inside the run queue itself is taken for a server.
            _fairServer = layouts.TryOffset("rq", "fair_server", out int fairServer) ? (ulong)fairServer : ulong.MaxValue;
            _cfsRoot = c.Offset("cfs_rq", "tasks_timeline.rb_root.rb_node");
            _seRunNode = c.Offset("sched_entity", "run_node");
            _seMyQ = layouts.TryOffset("sched_entity", "my_q", out int seMyQ) ? (ulong)seMyQ : ulong.MaxValue;
            _taskSe = c.Offset("task_struct", "se");
            _rtQueue = c.Offset("rt_rq", "active.queue");
            _listHeadSize = 2 * c._r.PointerSize;
            _rtQueues = layouts.FromBtf && c._kernel.Btf?.FindStruct("rt_rq") is { } rtRq ? rtRq.MemberSize("active.queue") / _listHeadSize : SchedulerOffsets.MaxRtPrio;
            _rtRunList = c.Offset("sched_rt_entity", "run_list");
            _rtMyQ = layouts.TryOffset("sched_rt_entity", "my_q", out int rtMyQ) ? (ulong)rtMyQ : ulong.MaxValue;
            _taskRt = c.Offset("task_struct", "rt");
            _dlRoot = c.Offset("dl_rq", "root.rb_root.rb_node");
            _dlRbNode = c.Offset("sched_dl_entity", "rb_node");
            _taskDl = c.Offset("task_struct", "dl");
            _rbLeft = c.Offset("rb_node", "rb_left");
            _rbRight = c.Offset("rb_node", "rb_right");
        }

        public void Walk(uint cpu, ulong rq)
        {
            if (!_r.TryI32(rq + _cpuOff, out int owner) || owner != (int)cpu)
            {
                _run.Incomplete(GapKind.CorruptStructure, $"cpu {cpu}: the run queue at 0x{rq:x} is unreadable or names cpu {owner}");
                return;
            }
            if (!_r.TryPointer(rq + _idle, out ulong idle) || !_r.IsKernelPointer(idle))
                _run.Incomplete(GapKind.CorruptStructure, $"cpu {cpu}: rq->idle is unreadable or not a kernel pointer");
            else _c.Sighted(_run, idle, TaskView.IdleTask, $"the idle task of cpu {cpu}");
            if (!_r.TryPointer(rq + _curr, out ulong curr) || !_r.IsKernelPointer(curr))
                _run.Incomplete(GapKind.CorruptStructure, $"cpu {cpu}: rq->curr is unreadable or not a kernel pointer");
            else if (curr != idle) _c.Sighted(_run, curr, TaskView.RunQueue, $"the running task of cpu {cpu}");
            WalkFair(cpu, rq + _cfs, 0);
            WalkRealTime(cpu, rq + _rt);
            foreach (ulong node in Tree(cpu, rq + _dl + _dlRoot, "deadline"))
            {
                ulong entity = node - _dlRbNode;
                if (_fairServer != ulong.MaxValue ? entity == rq + _fairServer : unchecked(entity - rq) < RunQueueCodeDecoder.MaxMemberOffset) continue;
                _c.Sighted(_run, entity - _taskDl, TaskView.RunQueue, $"queued on the deadline run queue of cpu {cpu}");
            }
        }

        private void WalkFair(uint cpu, ulong cfsRq, int depth)
        {
            if (depth > MaxGroupDepth)
            {
                _run.Incomplete(GapKind.CorruptStructure, $"cpu {cpu}: task groups nested deeper than {MaxGroupDepth} at cfs_rq 0x{cfsRq:x}");
                return;
            }
            foreach (ulong node in Tree(cpu, cfsRq + _cfsRoot, "fair"))
            {
                ulong entity = node - _seRunNode;
                if (_seMyQ != ulong.MaxValue && _r.TryPointer(entity + _seMyQ, out ulong groupQueue) && groupQueue != 0)
                {
                    if (_r.IsKernelPointer(groupQueue)) WalkFair(cpu, groupQueue, depth + 1);
                    else _run.Incomplete(GapKind.CorruptStructure, $"cpu {cpu}: sched_entity 0x{entity:x} has group queue 0x{groupQueue:x}, not a kernel pointer");
                    continue;
                }
                _c.Sighted(_run, entity - _taskSe, TaskView.RunQueue, $"queued on the fair run queue of cpu {cpu}");
            }
        }

        private void WalkRealTime(uint cpu, ulong rtRq)
        {
            for (int prio = 0; prio < _rtQueues && !_run.BudgetExhausted; prio++)
            {
                ulong head = rtRq + _rtQueue + (ulong)(prio * _listHeadSize);
                foreach (ulong entity in _c._kernel.Lists.Walk(head, checked((int)_rtRunList), _run.Limits.MaxCheckWalkNodes, $"rt run queue {prio} of cpu {cpu}", includeHead: false))
                {
                    if (!_run.Visit()) return;
                    if (_rtMyQ != ulong.MaxValue && _r.TryPointer(entity + _rtMyQ, out ulong groupQueue) && groupQueue != 0)
                    {
                        _run.Incomplete(GapKind.UnsupportedKernel, $"cpu {cpu}: real-time task group 0x{groupQueue:x} not followed (RT group scheduling)");
                        continue;
                    }
                    _c.Sighted(_run, entity - _taskRt, TaskView.RunQueue, $"queued on the real-time run queue of cpu {cpu}");
                }
            }
        }

        /// <summary>The nodes of an rb-tree from its root pointer, bounded by the check's budget and cycle-checked.</summary>
        private IEnumerable<ulong> Tree(uint cpu, ulong rootPointer, string what)
        {
            if (!_r.TryPointer(rootPointer, out ulong root))
            {
                _run.Incomplete(GapKind.UnreadableMemory, $"cpu {cpu}: {what} run queue root at 0x{rootPointer:x} is unreadable");
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
                    _run.Incomplete(GapKind.CorruptStructure, $"cpu {cpu}: {what} run queue link 0x{node:x} is not a kernel pointer");
                    continue;
                }
                if (!seen.Add(node))
                {
                    _run.Incomplete(GapKind.CorruptStructure, $"cpu {cpu}: {what} run queue node 0x{node:x} reached twice (a cycle)");
                    continue;
                }
                if (!_run.Visit()) yield break;
                if (!_r.TryPointer(node + _rbLeft, out ulong left) || !_r.TryPointer(node + _rbRight, out ulong right))
                {
                    _run.Incomplete(GapKind.UnreadableMemory, $"cpu {cpu}: {what} run queue node 0x{node:x} is unreadable");
                    continue;
                }
                if (left != 0) stack.Push(left);
                if (right != 0) stack.Push(right);
                yield return node;
            }
        }
    }

    /// <summary>
    /// Fourth cross-view: thread groups seen from the other side. Each listed process's signal->thread_head list
    /// (linked through thread_node) and each listed thread's group_leader must lead only to listed tasks.
    /// </summary>
    public void ThreadGroups(CheckRun run)
    {
        ulong signalOff = Offset("task_struct", "signal"), headOff = Offset("signal_struct", "thread_head");
        int nodeOff = checked((int)Offset("task_struct", "thread_node"));
        ulong leaderOff = Offset("task_struct", "group_leader");
        foreach (var process in _kernel.Tasks.ToList())
        {
            if (!_r.TryPointer(process.Address + signalOff, out ulong signal) || !_r.IsKernelPointer(signal))
            {
                run.Incomplete(GapKind.CorruptStructure, $"pid {process.Pid}: signal pointer unreadable or not a kernel pointer");
                continue;
            }
            foreach (ulong thread in _kernel.Lists.Walk(signal + headOff, nodeOff, _kernel.Limits.MaxThreadsPerProcess, $"signal thread list of pid {process.Pid}", includeHead: false))
            {
                if (!run.Visit()) return;
                Sighted(run, thread, TaskView.ThreadGroup, $"a thread of pid {process.Pid} (on its signal->thread_head list)");
            }
            foreach (var thread in process.Threads)
            {
                if (!run.Visit()) return;
                if (_r.TryPointer(thread.Address + leaderOff, out ulong leader) && _r.IsKernelPointer(leader))
                    Sighted(run, leader, TaskView.ThreadGroup, $"the group leader of tid {thread.Tid}");
                else
                    run.Incomplete(GapKind.CorruptStructure, $"tid {thread.Tid}: group_leader unreadable or not a kernel pointer");
            }
        }
    }

    /// <summary>
    /// task->flags of every listed task and thread: bits the kernel does not define (<see cref="TaskFlagBits"/>: a
    /// rootkit's private "hidden" marker), and combinations the kernel never produces — a kernel thread with a user
    /// address space, or a user process claiming to be a kernel thread (hiding from tools that skip kthreads).
    /// </summary>
    public void TaskFlags(CheckRun run)
    {
        uint? undefined = null;
        if (!TaskFlagBits.TryParseRelease(_kernel.Release, out int major, out int minor))
            run.Incomplete(GapKind.UnsupportedKernel, $"kernel release '{_kernel.Release}' has no version: undefined task->flags bits not checked");
        else if (!TaskFlagBits.TryGetUndefined(major, minor, out uint bits))
            run.Incomplete(GapKind.UnsupportedKernel, $"no verified list of PF_* task flags for Linux {major}.{minor} (listed: {TaskFlagBits.SupportedVersions}): undefined task->flags bits not checked");
        else if (ConfirmFlagValues(run)) undefined = bits;

        int flagsOff = _kernel.Offsets.Task.Flags;
        foreach (var t in _kernel.Tasks)
        {
            if (undefined is { } mask)
                foreach (var th in t.Threads)
                {
                    uint flags = th.Address == t.Address ? t.Flags : _r.TryU32(th.Address + (ulong)flagsOff, out uint f) ? f : 0;
                    if ((flags & mask) == 0) continue;
                    run.Report(FindingKind.UndefinedTaskFlags, Severity.Critical, $"pid {th.Tid} ({th.Comm})", th.Address,
                        $"task->flags 0x{flags:x8} carries bits Linux {major}.{minor} does not define: {TaskFlagBits.Describe(flags & mask)}; " +
                        "a rootkit's private mark (processes marked so are hidden from /proc listings)");
                }
            if (t.Pid == 0) continue;
            if (t.IsKernelThread && t.Mm != 0)
                run.Report(FindingKind.KernelThreadWithUserMemory, Severity.Critical, $"pid {t.Pid} ({t.Comm})", t.Address,
                    $"PF_KTHREAD set but the task has a user address space (mm 0x{t.Mm:x})");
            if (t.IsKernelThread && t.ParentPid is not (0 or 2))
                run.Report(FindingKind.KernelThreadNotFromKthreadd, Severity.Warning, $"pid {t.Pid} ({t.Comm})", t.Address,
                    $"kernel thread whose parent is pid {t.ParentPid}, not kthreadd");
        }
    }

    /// <summary>The listed PF_* values hold on this kernel: init_task (pid 0) is PF_IDLE, kthreadd (pid 2) PF_KTHREAD.</summary>
    private bool ConfirmFlagValues(CheckRun run)
    {
        var tasks = _kernel.Tasks;
        if (tasks.FirstOrDefault(t => t.Pid == 0) is { } init && (init.Flags & TaskFlagBits.Idle) == 0)
        {
            run.Incomplete(GapKind.UnsupportedKernel, $"init_task flags 0x{init.Flags:x} lack PF_IDLE 0x{TaskFlagBits.Idle:x}: this kernel's PF_* values are not the listed ones; undefined bits not checked");
            return false;
        }
        if (tasks.FirstOrDefault(t => t.Pid == 2 && t.Comm == "kthreadd") is { } kthreadd && (kthreadd.Flags & TaskFlagBits.Kthread) == 0)
        {
            run.Incomplete(GapKind.UnsupportedKernel, $"kthreadd flags 0x{kthreadd.Flags:x} lack PF_KTHREAD 0x{TaskFlagBits.Kthread:x}: this kernel's PF_* values are not the listed ones; undefined bits not checked");
            return false;
        }
        return true;
    }
}
