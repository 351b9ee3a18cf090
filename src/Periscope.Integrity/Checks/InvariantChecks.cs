using System.Buffers.Binary;
using Periscope.Integrity.Evidence;
using Periscope.Integrity.Regions;
using Periscope.Integrity.Verification;
using Periscope.Linux;
using Periscope.Linux.Model;
using Periscope.Linux.Tasks.Views;

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
    private TaskViewWalks? _walks;

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

    private string Where(ulong va) => Context.ModuleAt(va) is { } m ? $"module {m.Name}" : InKernelText(va) ? "kernel text" : "outside kernel text and modules";

    private TaskViewWalks Walks => _walks ??= new TaskViewWalks(_kernel);

    /// <summary>What a task_struct says about itself; null when its pid cannot be read at all.</summary>
    private TaskFacts? ReadFacts(ulong task) =>
        Walks.Facts(task) is { } f ? new TaskFacts(f.Pid, f.Tgid, f.Comm, f.Flags, f.ExitState, f.OwnPidNumber) : null;

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
    public void PidNamespace(CheckRun run) => Walk(run, (w, sink) => w.PidNamespace(sink, run.Limits.MaxXarrayEntries));

    /// <summary>Second cross-view: every child on a parent's children list (linked through sibling) must be on the task list.</summary>
    public void ChildrenLists(CheckRun run) => Walk(run, (w, sink) => w.Children(sink));

    /// <summary>
    /// Third cross-view: what each CPU runs or will run. Per-CPU run queues (the per-CPU copy of `runqueues` at
    /// __per_cpu_offset[cpu]) hold the running task (curr), the idle task, and the queued tasks of the fair (cfs
    /// rb-tree, descending into task groups), real-time (priority lists) and deadline (rb-tree) classes.
    /// </summary>
    public void RunQueues(CheckRun run) =>
        Walk(run, (w, sink) => w.RunQueues(sink, run.Limits.MaxCheckCpus, nameof(run.Limits.MaxCheckCpus), run.Limits.MaxCheckWalkNodes));

    /// <summary>
    /// Fourth cross-view: thread groups seen from the other side. Each listed process's signal->thread_head list
    /// (linked through thread_node) and each listed thread's group_leader must lead only to listed tasks.
    /// </summary>
    public void ThreadGroups(CheckRun run) => Walk(run, (w, sink) => w.ThreadGroups(sink));

    /// <summary>Runs one of the views' walks (<see cref="TaskViewWalks"/>, shared with psxview) with the check's budget,
    /// judging every task it sees that is not on the task list.</summary>
    private void Walk(CheckRun run, Func<TaskViewWalks, ITaskViewSink, string?> walk)
    {
        if (walk(Walks, new CheckSink(this, run)) is { } unavailable) run.Unavailable(unavailable);
    }

    /// <summary>The views' sightings and gaps as the check's: a running task that is the CPU's idle task is judged once, as idle.</summary>
    private sealed class CheckSink(InvariantChecks c, CheckRun run) : ITaskViewSink
    {
        public bool Visit() => run.Visit();
        public bool BudgetExhausted => run.BudgetExhausted;

        public void Seen(ulong task, TaskViewSet view, string via) => c.Sighted(run, task, view switch
        {
            TaskViewSet.PidHash => TaskView.PidNamespace,
            TaskViewSet.Children => TaskView.ChildrenList,
            TaskViewSet.CpuIdle => TaskView.IdleTask,
            TaskViewSet.ThreadGroup => TaskView.ThreadGroup,
            _ => TaskView.RunQueue,
        }, via);

        public void Gap(TaskViewSet view, TaskViewGapKind kind, string message) => run.Incomplete(kind switch
        {
            TaskViewGapKind.Unreadable => GapKind.UnreadableMemory,
            TaskViewGapKind.MissingSymbol => GapKind.MissingSymbol,
            TaskViewGapKind.WalkBudget => GapKind.WalkBudget,
            TaskViewGapKind.Unsupported => GapKind.UnsupportedKernel,
            _ => GapKind.CorruptStructure,
        }, message);
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
