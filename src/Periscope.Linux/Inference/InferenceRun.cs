using Periscope.Memory;
using Periscope.Linux.Model;
using static Periscope.Linux.Inference.StructuralFacts;

namespace Periscope.Linux.Inference;

/// <summary>Runs the rules in dependency order and assembles <see cref="KernelOffsets"/>.</summary>
public sealed partial class OffsetInference
{
    private KernelOffsets Run()
    {
        var t = InferTasks();
        InferPids(t);
        InferRunQueues(t);
        var m = InferMmAndVmas(t);
        InferTaintFlags();
        InferModules();
        InferFtraceOps(FtraceOpsListAndEnd());
        InferVmalloc();
        InferCredIds();
        InferNamespaces(t);
        InferProcessDetails(t);
        InferWorkers(t);
        InferCgroups(t);
        var p = InferPaths(m.Files);
        InferSuperBlockDev(m.Files, p);
        InferOpenFiles(t, m, p);
        InferMounts(t, p);
        InferSocketTables();
        InferBpf();
        ReportNotInferred();
        _report.Steps = _steps; // before Build, whose error report shows the evidence too
        return Build(_report, _limits);
    }

    /// <summary>
    /// Assembles the offsets the model uses from a report's known members (inferred now, or loaded from the offsets
    /// cache), checking each against the search windows. Throws <see cref="KernelModelException"/> naming every member
    /// the model needs that is unknown or out of range.
    /// </summary>
    public static KernelOffsets Build(InferenceReport report, IntrospectionLimits limits)
    {
        var missing = new List<string>();
        int? Opt(string structName, string member, int window)
        {
            if (report.Find(structName, member)?.Offset is not { } v) return null;
            if (v < 0 || v >= window) { missing.Add($"{structName}.{member} = 0x{v:x} (outside the 0x{window:x}-byte search window)"); return null; }
            return v;
        }
        int Need(string structName, string member, int window)
        {
            if (Opt(structName, member, window) is { } v) return v;
            if (!missing.Any(x => x.StartsWith($"{structName}.{member} ", StringComparison.Ordinal))) missing.Add($"{structName}.{member}");
            return 0;
        }
        var _w = WordLayout.For(report.PointerSize);
        int tw = limits.MaxInferenceTaskBytes, sw = limits.MaxInferenceStructBytes, small = Math.Min(limits.MaxInferenceSmallStructBytes, sw);
        const string T = Task;
        int startCode = Need(Mm, "start_code", sw);
        int? root = Opt(Mm, "mm_mt.ma_root", sw);
        int dName = Need("dentry", "d_name", small);
        // Modules: core_layout (6.1..6.3) or mem[MOD_MEM_NUM_TYPES] (6.4+), whichever the search found.
        int? coreLayout = Opt("module", "core_layout", sw), mem = Opt("module", "mem", sw);
        int memStride = 0, memSizeOffset = _w.LayoutSize;
        if (coreLayout is null && mem is { } memAt)
        {
            memStride = Opt("module_memory", InferenceReport.SizeOfMember, ModuleMemoryRule.MaxStride + 1) ?? 0;
            memSizeOffset = Opt("module_memory", "size", 16) ?? 0;
            if (memStride < ModuleMemoryRule.MinStride || memSizeOffset < 8 || memAt + ModMemTypes * memStride > sw)
            { missing.Add($"module_memory layout (stride {memStride}, size at +{memSizeOffset}) for module.mem = 0x{memAt:x}"); mem = null; }
        }
        else if (coreLayout is null && report.Find("module", "name")?.IsKnown == true) missing.Add("module.core_layout or module.mem");
        else mem = null;
        // No module evidence (no module loaded, or no `modules` list head in kallsyms): the module walk then finds no layout
        // and says so per module; nothing else depends on these members.
        bool modulesKnown = report.Find("module", "name")?.IsKnown == true;
        // vm_ops and vm_private_data only name [vdso]/[vvar], through special_mapping_vmops: without that symbol they cannot
        // be found and are not needed.
        bool specialKnown = report.Find(Vma, "vm_ops")?.IsKnown == true || report.Find(Vma, "vm_ops") is { Rule: var opsRule } && !opsRule.StartsWith("needs special_mapping_vmops", StringComparison.Ordinal);
        var offsets = new KernelOffsets
        {
            Task = new TaskOffsets
            {
                Size = 0, // unknown without BTF; nothing the model reads depends on it
                Tasks = Need(T, "tasks", tw), Pid = Need(T, "pid", tw), Tgid = Need(T, "tgid", tw), Comm = Need(T, "comm", tw), CommSize = TaskCommLength,
                Mm = Need(T, "mm", tw), RealParent = Need(T, "real_parent", tw), Parent = Need(T, "parent", tw),
                GroupLeader = Need(T, "group_leader", tw), ThreadGroup = Opt(T, "thread_group", tw), ThreadNode = Opt(T, "thread_node", tw),
                Signal = Need(T, "signal", tw), SignalThreadHead = Opt("signal_struct", "thread_head", small), SignalNrThreads = Opt("signal_struct", "nr_threads", small),
                Flags = Need(T, "flags", tw), State = Need(T, "__state", tw), ExitState = Need(T, "exit_state", tw),
                RealCred = Need(T, "real_cred", tw), Cred = Need(T, "cred", tw),
            },
            Mm = new MmOffsets
            {
                Pgd = Need(Mm, "pgd", sw), MapCount = Need(Mm, "map_count", sw), Mmap = null,
                StartCode = startCode, EndCode = startCode + _w.MmEndCode, StartBrk = startCode + _w.MmStartBrk, Brk = startCode + _w.MmBrk, StartStack = startCode + _w.MmStartStack,
                ExeFile = Opt(Mm, "exe_file", sw), ContextFlags = Opt(Mm, "context.flags", sw),
            },
            Vma = new VmaOffsets
            {
                Start = Need(Vma, "vm_start", small), End = Need(Vma, "vm_end", small), Mm = Need(Vma, "vm_mm", small),
                Flags = Need(Vma, "vm_flags", small), PgOff = Need(Vma, "vm_pgoff", small), File = Need(Vma, "vm_file", small),
                Next = null, Ops = specialKnown ? Need(Vma, "vm_ops", small) : 0, PrivateData = specialKnown ? Need(Vma, "vm_private_data", small) : 0,
            },
            Module = new ModuleOffsets
            {
                List = _w.ModuleListOffset, Name = modulesKnown ? Need("module", "name", sw) : 0, NameSize = _w.ModuleNameLength, State = 0,
                CoreLayout = coreLayout, InitLayout = null, Mem = mem, MemCount = mem is null ? 0 : ModMemTypes, MemSize = mem is null ? 0 : memStride,
                MemText = mem is null ? null : ModMemText, MemRodata = mem is null ? null : ModMemRodata,
                LayoutBase = _w.LayoutBase, LayoutSize = mem is null ? _w.LayoutSize : memSizeOffset,
                LayoutTextSize = mem is null ? _w.LayoutTextSize : null, LayoutRoSize = mem is null ? _w.LayoutRoSize : null, RefCount = Opt("module", "refcnt", sw),
                StateLive = ModuleStateLive, StateComing = ModuleStateComing, StateGoing = ModuleStateGoing, StateUnformed = ModuleStateUnformed,
            },
            Path = new PathOffsets
            {
                FilePath = Need("file", "f_path", small), FileInode = Need("file", "f_inode", small), PathMnt = _w.PathMnt, PathDentry = _w.PathDentry,
                DentryParent = Need("dentry", "d_parent", small), DentryName = dName + QstrName, DentryNameLength = dName + QstrLen,
                MountMnt = Need("mount", "mnt", small), MountParent = Need("mount", "mnt_parent", small), MountMountpoint = Need("mount", "mnt_mountpoint", small),
                VfsMountRoot = Need("vfsmount", "mnt_root", small), InodeIno = Need("inode", "i_ino", small), InodeSb = Need("inode", "i_sb", small),
                SuperBlockDev = Need("super_block", "s_dev", small), DentryUnlinkedHint = null,
            },
            Maple = root is { } r ? MapleLayout(_w) with { Root = r } : null,
            CredUid = Need("cred", "uid", small), CredGid = Need("cred", "gid", small), CredEuid = Need("cred", "euid", small),
            ListHeadPrev = _w.ListHeadPrev,
            SpecialMappingName = Opt("vm_special_mapping", "name", small),
            Vmalloc = VmallocOffsets.FromReport(report),
            Pid = PidOffsetsOf(report, tw, small),
            RunQueue = RunQueueFrom(report),
            Scheduler = SchedulerFrom(report),
            OpenFiles = OpenFileOffsets.FromReport(report), SocketFiles = SocketFileOffsets.FromReport(report),
            SocketTables = SocketTableOffsets.FromReport(report),
            Namespaces = NamespaceOffsets.FromReport(report, tw),
            Bpf = BpfOffsets.FromReport(report),
            ProcessDetails = ProcessDetailOffsets.FromReport(report, tw, sw),
            Kthread = Opt(T, "worker_private", tw) is { } kthreadLink && Opt("kthread", "data", small) is { } kthreadData
                ? new KthreadOffsets { TaskKthread = kthreadLink, Data = kthreadData, FullName = Opt("kthread", "full_name", small) } : null,
            Workqueue = WorkqueueFrom(report, small),
            Mounts = MountOffsets.FromReport(report, tw, small),
            ModuleUse = Opt("module", "source_list", sw) is { } sourceList ? new ModuleUseOffsets
            {
                SourceList = sourceList, UseSourceList = Need("module_use", "source_list", small), UseSource = Need("module_use", "source", small),
                Init = Opt("module", "init", sw), Exit = Opt("module", "exit", sw),
            } : null,
            ModuleTaint = Opt("module", "taints", sw) is { } taints && Opt("taint_flag", InferenceReport.SizeOfMember, ModuleTaintRule.MaxStride + 1) is { } flagSize and >= 3
                ? new ModuleTaintOffsets
                {
                    Taints = taints, FlagSize = flagSize, FlagLetter = Need("taint_flag", "c_true", flagSize),
                    // Not found (no offset holds module flags: 7.x has no such member) prints every bit; ambiguous is missing.
                    FlagModule = report.Find("taint_flag", "module") is { Decision: InferenceDecision.NotFound } ? null : Need("taint_flag", "module", flagSize),
                } : null,
            ModuleSymbols = Opt("module", "kallsyms", sw) is { } kallsyms ? new ModuleSymbolOffsets
            {
                Kallsyms = kallsyms, Symtab = Need("mod_kallsyms", "symtab", small), NumSymtab = Need("mod_kallsyms", "num_symtab", small),
                Strtab = Need("mod_kallsyms", "strtab", small), Typetab = Need("mod_kallsyms", "typetab", small),
                SymSize = _w.ElfSymSize, SymName = Need(_w.ElfSymStruct, "st_name", _w.ElfSymSize), SymValue = Need(_w.ElfSymStruct, "st_value", _w.ElfSymSize),
                Syms = Opt("module", "syms", sw), NumSyms = Opt("module", "num_syms", sw),
                KernelSymbolSize = report.Find("kernel_symbol", "value_offset")?.IsKnown == false && report.Find("kernel_symbol", "name") is { IsKnown: true } ? 3 * _w.PointerSize : KernelSymbolSize,
                KernelSymbolValue = KernelSymbolValueOffset, KernelSymbolName = report.Find("kernel_symbol", "name") is { IsKnown: true } ? _w.PointerSize : KernelSymbolNameOffset,
                // Absolute kernel_symbol pointers only when the search found the place-relative form fits no module.
                KernelSymbolRelative = report.Find("kernel_symbol", "name") is not { IsKnown: true },
            } : null,
            PatchTables = new PatchTableOffsets
            {
                ModuleJumpEntries = Opt("module", "jump_entries", sw), ModuleNumJumpEntries = Opt("module", "num_jump_entries", sw),
                ModuleStaticCallSites = Opt("module", "static_call_sites", sw), ModuleNumStaticCallSites = Opt("module", "num_static_call_sites", sw),
                FtraceOpsFunc = Opt("ftrace_ops", "func", small), FtraceOpsNext = Opt("ftrace_ops", "next", small),
                FtraceOpsTrampoline = Opt("ftrace_ops", "trampoline", small), FtraceOpsTrampolineSize = Opt("ftrace_ops", "trampoline_size", small),
            },
        };
        if (missing.Count > 0)
            throw new OffsetInferenceException(report, $"offset inference left {missing.Count} member(s) the model needs unknown: {string.Join(", ", missing)} (see `periscope info --offsets --no-btf`)");
        return offsets;
    }

    /// <summary>The worker members wq_worker_comm() reads (desc, current_work, pool), when all were inferred, and a 6.10+
    /// rescuer's (rescue_wq, the workqueue's name); the other 6.10+ worker ids' members (id, the pool's cpu, id and attrs)
    /// are not inferred: those ids are the threads' creation names, the comm or, where the comm cut one, struct kthread's
    /// full_name (<see cref="TaskNames"/>). desc is read up to rescue_wq, declared right
    /// after it (WORKER_DESC_LEN differs between kernels: <see cref="WorkerRule.DescLength"/>).</summary>
    private static WorkqueueOffsets? WorkqueueFrom(InferenceReport report, int window)
    {
        int? Get(string member) => report.Find("worker", member)?.Offset is { } v && v >= 0 && v < window ? v : null;
        if (Get("desc") is not { } desc || Get("current_work") is not { } current || Get("pool") is not { } pool) return null;
        int? rescueWq = Get("rescue_wq");
        int? wqName = rescueWq is not null && report.Find("workqueue_struct", "name")?.Offset is { } n && n >= 0 && n < window ? n : null;
        int descSize = rescueWq is { } r && r > desc && r - desc <= WorkerRule.MaxDescLength + 7 ? r - desc : WorkerRule.DescLength;
        return new WorkqueueOffsets
        {
            WorkerDesc = desc, WorkerDescSize = descSize, WorkerCurrentWork = current, WorkerPool = pool, WorkerTask = Get("task"),
            WorkerRescueWq = wqName is null ? null : rescueWq, WqName = wqName, WqNameSize = wqName is null ? 0 : WorkerRule.MaxWqNameRead,
        };
    }

    /// <summary>Views that stay unavailable without BTF for want of evidence, each with its reason (shown by `info --offsets`).</summary>
    private void ReportNotInferred()
    {
        // module.taints is settled by the module rules when there is a module list; without one there is no evidence.
        if (_report.Find("module", "taints") is null)
            _report.AddUnknown("module", "taints", "needs the module list (see module.name): the (OE) taint markers of /proc/modules are not shown");
    }

    private void InferSuperBlockDev(List<ulong> files, PathEvidence p)
    {
        // super_block starts with struct list_head s_list (every super_block is on the super_blocks list), then dev_t s_dev.
        // Checked: s_list is a proper list node (next->prev == the super_block) in every super_block seen.
        if (p.FileInode is not { } fi || p.InodeSb is not { } ib)
        {
            _report.AddUnknown("super_block", "s_dev", "needs inode.i_sb");
            return;
        }
        var sbs = files.Select(f => Ptr(Ptr(f + (ulong)fi) + (ulong)ib)).Where(IsKernel).Distinct().ToList();
        Step(sbs.Count);
        if (sbs.Count == 0 || !sbs.All(sb => Ptr(sb) is var next && IsKernel(next) && Ptr(next + (ulong)_w.ListHeadPrev) == sb))
        {
            _report.AddUnknown("super_block", "s_dev", "s_list at offset 0 is not a proper list node in every super_block");
            return;
        }
        _report.AddStructural("super_block", "s_dev", _w.SuperBlockDev, "declared right after struct list_head s_list (checked: s_list links back)");
    }
}
