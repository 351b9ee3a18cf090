using Periscope.Linux.Btf;

namespace Periscope.Linux.Model;

/// <summary>
/// Member offsets of the kernel structures the model walks, taken from the guest's own BTF. Nothing is hard-coded:
/// members that moved, were renamed or vanished between kernel versions are looked up by their names in each era.
/// </summary>
public sealed class KernelOffsets
{
    public required TaskOffsets Task { get; init; }
    public required MmOffsets Mm { get; init; }
    public required VmaOffsets Vma { get; init; }
    public required ModuleOffsets Module { get; init; }
    public required PathOffsets Path { get; init; }
    public required MapleOffsets? Maple { get; init; }
    public required int CredUid { get; init; }
    public required int CredGid { get; init; }
    public required int CredEuid { get; init; }
    /// <summary>list_head.prev: where a node's back link sits (the walkers check next->prev == node).</summary>
    public required int ListHeadPrev { get; init; }
    /// <summary>vm_special_mapping.name (the [vdso]/[vvar] name pointer), when BTF describes the struct.</summary>
    public required int? SpecialMappingName { get; init; }
    /// <summary>struct pid and enum pid_type, for cross-views through the pid namespace; null when BTF lacks them.</summary>
    public required PidOffsets? Pid { get; init; }
    /// <summary>Module symbol tables (module.kallsyms → mod_kallsyms, Elf64_Sym, module.syms → kernel_symbol), for
    /// `symbols` as /proc/kallsyms lists module symbols; null when BTF lacks one of them.</summary>
    public ModuleSymbolOffsets? ModuleSymbols { get; init; }

    // Views as the guest shows them (views: "used by", /proc task names, per-CPU idle tasks). Optional groups: null
    // when BTF lacks a member (or offsets were inferred without BTF), and the feature then says "unavailable".
    /// <summary>struct module_use and module.source_list/init/exit, for /proc/modules' "used by" column.</summary>
    public ModuleUseOffsets? ModuleUse { get; init; }
    /// <summary>struct kthread (task->worker_private) for kernel-thread full names and workqueue workers.</summary>
    public KthreadOffsets? Kthread { get; init; }
    /// <summary>struct worker and its pool, for workqueue workers' names as /proc shows them.</summary>
    public WorkqueueOffsets? Workqueue { get; init; }
    /// <summary>struct rq (per-CPU runqueues): cpu, curr, idle.</summary>
    public RunQueueOffsets? RunQueue { get; init; }
    /// <summary>module->taints and struct taint_flag, for the "(OE)" markers of /proc/modules.</summary>
    public ModuleTaintOffsets? ModuleTaint { get; init; }
    /// <summary>module's jump-label/static-call tables and ftrace_ops members, for integrity evidence (members may be null).</summary>
    public PatchTableOffsets? PatchTables { get; init; }
    /// <summary>struct vmap_area (and 6.9+ vmap_node), for the module-area view; null when neither BTF nor inference has it.</summary>
    public VmallocOffsets? Vmalloc { get; init; }
    /// <summary>The run queues' fair, real-time and deadline queues and each class's entity in task_struct (run-queue check).</summary>
    public SchedulerOffsets? Scheduler { get; init; }
    /// <summary>task->files->fdt, struct file and the dentry operations lsof reads.</summary>
    public OpenFileOffsets? OpenFiles { get; init; }
    /// <summary>An open socket file's links to its struct socket and sock (the file-table view of `sockets`).</summary>
    public SocketFileOffsets? SocketFiles { get; init; }
    /// <summary>sock_common, tcp_hashinfo, udp_table and the unix hash, for the kernel-table side of `sockets`.</summary>
    public SocketTableOffsets? SocketTables { get; init; }
    /// <summary>task_struct.nsproxy, the namespaces it points to and their ns.inum, cred.user_ns (namespaces, ps --full).</summary>
    public NamespaceOffsets? Namespaces { get; init; }
    /// <summary>mm_struct's argument and environment bounds, the credential ids and capability sets (ps --full).</summary>
    public ProcessDetailOffsets? ProcessDetails { get; init; }
    /// <summary>The BPF IDRs' head and struct bpf_prog, bpf_prog_aux, bpf_map and bpf_link (`bpf`).</summary>
    public BpfOffsets? Bpf { get; init; }
    /// <summary>The mount list or tree of a mount namespace, struct mount's and the super block's members, task->fs->root (mounts).</summary>
    public MountOffsets? Mounts { get; init; }

    /// <summary>
    /// Reads every offset, size and enum value from BTF, checking each against the struct that holds it: an offset
    /// or size that does not fit its struct, a string array larger than MaxStringLength or an array of implausible
    /// length is corrupt type data and raises <see cref="KernelModelException"/> with one line naming the member.
    /// </summary>
    /// <exception cref="KernelModelException">A struct, member or enumerator is missing, or a value is out of range.</exception>
    public static KernelOffsets FromBtf(BtfTypes btf)
    {
        try
        {
            return Read(new BtfReader(btf));
        }
        catch (Exception e) when (e is BtfFormatException or KeyNotFoundException or ArgumentException or OverflowException)
        {
            throw new KernelModelException($"BTF: {e.Message}");
        }
    }

    /// <summary>
    /// Infers the offsets from the live data when the kernel has no BTF (or it is not to be used): see
    /// <see cref="Inference.OffsetInference"/>. The report carries every member's candidates and the rule that decided.
    /// <paramref name="release"/> (major.minor) names the members a kernel version renamed (<see cref="KernelMacros.KernfsParentMember"/>).
    /// </summary>
    /// <exception cref="KernelModelException">A member the model needs could not be settled.</exception>
    public static (KernelOffsets Offsets, Inference.InferenceReport Report) FromInference(GuestReader reader, Kallsyms.KernelSymbols symbols,
        Discovery.KernelLayout layout, Periscope.Memory.IntrospectionLimits limits, VirtualRange moduleArea, Version release) =>
        Inference.OffsetInference.Infer(reader, symbols, layout, limits, moduleArea, release);

    private static KernelOffsets Read(BtfReader b)
    {
        var limits = b.Btf.Limits;
        int maxString = Math.Min(limits.MaxStringLength, limits.MaxGuestAllocation);
        var task = b.Struct("task_struct");
        var signal = b.Struct("signal_struct");
        var mm = b.Struct("mm_struct");
        var vma = b.Struct("vm_area_struct");
        var module = b.Struct("module");
        var cred = b.Struct("cred");
        var file = b.Struct("file");
        var path = b.Struct("path");
        var dentry = b.Struct("dentry");
        var mount = b.Struct("mount");
        var vfsmount = b.Struct("vfsmount");
        var qstr = b.Struct("qstr");
        var inode = b.Struct("inode");
        var superBlock = b.Struct("super_block");
        var listHead = b.Struct("list_head");

        MapleOffsets? maple = null;
        if (mm.HasMember("mm_mt"))
        {
            var tree = b.Struct("maple_tree");
            var range = b.Struct("maple_range_64");
            var arange = b.Struct("maple_arange_64");
            var meta = b.Struct("maple_metadata");
            maple = new MapleOffsets
            {
                Root = b.O(mm, "mm_mt") + b.O(tree, "ma_root"),
                RangePivot = b.O(range, "pivot"), RangeSlot = b.O(range, "slot"), RangeMeta = b.O(range, "meta"),
                RangeSlots = b.Count(range, "slot", 8, 2, MaxMapleSlots),
                ArangePivot = b.O(arange, "pivot"), ArangeSlot = b.O(arange, "slot"), ArangeMeta = b.O(arange, "meta"),
                ArangeSlots = b.Count(arange, "slot", 8, 2, MaxMapleSlots),
                MetaEnd = b.O(meta, "end"),
                TypeDense = b.Enumerator("maple_type", "maple_dense"),
                TypeLeaf64 = b.Enumerator("maple_type", "maple_leaf_64"),
                TypeRange64 = b.Enumerator("maple_type", "maple_range_64"),
                TypeArange64 = b.Enumerator("maple_type", "maple_arange_64"),
            };
        }

        // 6.4+ replaced core_layout/init_layout with mem[MOD_MEM_NUM_TYPES], indexed by enum mod_mem_type.
        int? coreLayout = b.Opt(module, "core_layout");
        int? memArray = b.Opt(module, "mem");
        var moduleMemory = b.Btf.FindStruct(memArray is not null ? "module_memory" : "module_layout")
            ?? throw new KernelModelException("BTF describes neither module_memory nor module_layout");
        int memCount = 0;
        int? modText = null, modRodata = null;
        if (memArray is not null)
        {
            int types = b.Enumerator("mod_mem_type", "MOD_MEM_NUM_TYPES");
            if (types is < 1 or > MaxModuleMemTypes)
                throw new KernelModelException($"BTF: enum mod_mem_type has MOD_MEM_NUM_TYPES = {types}, expected 1..{MaxModuleMemTypes}");
            memCount = b.Count(module, "mem", moduleMemory.Size, 1, types);
            modText = b.Enumerator("mod_mem_type", "MOD_TEXT");
            modRodata = b.Enumerator("mod_mem_type", "MOD_RODATA");
            if (modText >= memCount || modRodata >= memCount || modText < 0 || modRodata < 0)
                throw new KernelModelException($"BTF: MOD_TEXT = {modText} or MOD_RODATA = {modRodata} lies outside module.mem[{memCount}]");
        }

        var pid = b.Btf.FindStruct("pid");
        var upid = b.Btf.FindStruct("upid");
        PidOffsets? pidOffsets = null;
        if (pid is not null && upid is not null && task.HasMember("pid_links") && pid.HasMember("tasks") && pid.HasMember("numbers"))
        {
            int pidTypePid = b.Enumerator("pid_type", "PIDTYPE_PID");
            int pidTypes = b.Enumerator("pid_type", "PIDTYPE_MAX");
            int tasksCount = b.Count(pid, "tasks", 8, 1, MaxPidTypes); // struct hlist_head tasks[PIDTYPE_MAX]
            if (pidTypePid < 0 || pidTypePid >= tasksCount || pidTypes != tasksCount)
                throw new KernelModelException($"BTF: PIDTYPE_PID = {pidTypePid}, PIDTYPE_MAX = {pidTypes}, but struct pid has tasks[{tasksCount}]");
            pidOffsets = new PidOffsets
            {
                TaskPidLinks = b.O(task, "pid_links"),
                Tasks = b.O(pid, "tasks") + pidTypePid * 8,
                NumbersNr = b.O(pid, "numbers") + b.O(upid, "nr"),
                PidTypePid = pidTypePid,
                ThreadPid = b.Opt(task, "thread_pid"), Numbers = b.O(pid, "numbers"), UpidNr = b.O(upid, "nr"), UpidNs = b.Opt(upid, "ns"),
                Children = b.Opt(task, "children"), Sibling = b.Opt(task, "sibling"),
                NamespaceXaHead = b.Btf.FindStruct("pid_namespace") is { } ns ? b.Opt(ns, "idr.idr_rt.xa_head") : null,
                XaNodeSlots = b.Btf.FindStruct("xa_node") is { } xa && xa.HasMember("slots") ? b.O(xa, "slots") : null,
                XaNodeSlotCount = b.Btf.FindStruct("xa_node") is { } xn && xn.HasMember("slots") ? b.Count(xn, "slots", listHead.Size / 2, 1, MaxXaNodeSlots) : null,
            };
        }

        var special = b.Btf.FindStruct("vm_special_mapping");

        return new KernelOffsets
        {
            Task = new TaskOffsets
            {
                Size = task.Size,
                Tasks = b.O(task, "tasks"), Pid = b.O(task, "pid"), Tgid = b.O(task, "tgid"),
                Comm = b.O(task, "comm"), CommSize = b.Count(task, "comm", 1, 1, maxString),
                Mm = b.O(task, "mm"), RealParent = b.O(task, "real_parent"), Parent = b.O(task, "parent"),
                GroupLeader = b.O(task, "group_leader"), ThreadGroup = b.Opt(task, "thread_group"), ThreadNode = b.Opt(task, "thread_node"),
                Signal = b.O(task, "signal"), SignalThreadHead = b.Opt(signal, "thread_head"), SignalNrThreads = b.Opt(signal, "nr_threads"),
                Flags = b.O(task, "flags"), State = b.First(task, "__state", "state"), ExitState = b.O(task, "exit_state"),
                RealCred = b.O(task, "real_cred"), Cred = b.O(task, "cred"),
            },
            Mm = new MmOffsets
            {
                Pgd = b.O(mm, "pgd"), MapCount = b.O(mm, "map_count"), Mmap = b.Opt(mm, "mmap"),
                StartCode = b.O(mm, "start_code"), EndCode = b.O(mm, "end_code"), StartBrk = b.O(mm, "start_brk"), Brk = b.O(mm, "brk"),
                StartStack = b.O(mm, "start_stack"), ExeFile = b.Opt(mm, "exe_file"), ContextFlags = b.Opt(mm, "context.flags"),
            },
            Vma = new VmaOffsets
            {
                Start = b.O(vma, "vm_start"), End = b.O(vma, "vm_end"), Mm = b.O(vma, "vm_mm"), Flags = b.O(vma, "vm_flags"),
                PgOff = b.O(vma, "vm_pgoff"), File = b.O(vma, "vm_file"), Next = b.Opt(vma, "vm_next"),
                Ops = b.O(vma, "vm_ops"), PrivateData = b.O(vma, "vm_private_data"),
            },
            Module = new ModuleOffsets
            {
                List = b.O(module, "list"), Name = b.O(module, "name"), NameSize = b.Count(module, "name", 1, 1, maxString), State = b.O(module, "state"),
                CoreLayout = coreLayout, InitLayout = b.Opt(module, "init_layout"), Mem = memArray,
                MemCount = memCount, MemSize = moduleMemory.Size, MemText = modText, MemRodata = modRodata,
                LayoutBase = b.O(moduleMemory, "base"), LayoutSize = b.O(moduleMemory, "size"),
                LayoutTextSize = b.Opt(moduleMemory, "text_size"), LayoutRoSize = b.Opt(moduleMemory, "ro_size"),
                RefCount = b.Opt(module, "refcnt"),
                StateLive = b.Enumerator("module_state", "MODULE_STATE_LIVE"),
                StateComing = b.Enumerator("module_state", "MODULE_STATE_COMING"),
                StateGoing = b.Enumerator("module_state", "MODULE_STATE_GOING"),
                StateUnformed = b.Enumerator("module_state", "MODULE_STATE_UNFORMED"),
            },
            Path = new PathOffsets
            {
                FilePath = b.O(file, "f_path"), FileInode = b.O(file, "f_inode"),
                PathMnt = b.O(path, "mnt"), PathDentry = b.O(path, "dentry"),
                DentryParent = b.O(dentry, "d_parent"), DentryName = b.O(dentry, "d_name") + b.O(qstr, "name"),
                DentryNameLength = b.O(dentry, "d_name") + b.First(qstr, "len", "hash_len"),
                MountMnt = b.O(mount, "mnt"), MountParent = b.O(mount, "mnt_parent"), MountMountpoint = b.O(mount, "mnt_mountpoint"),
                VfsMountRoot = b.O(vfsmount, "mnt_root"),
                InodeIno = b.O(inode, "i_ino"), InodeSb = b.O(inode, "i_sb"), SuperBlockDev = b.O(superBlock, "s_dev"),
                DentryUnlinkedHint = b.Opt(dentry, "d_hash"),
            },
            Maple = maple,
            CredUid = b.O(cred, "uid"), CredGid = b.O(cred, "gid"), CredEuid = b.O(cred, "euid"),
            ListHeadPrev = b.O(listHead, "prev"),
            SpecialMappingName = special is not null ? b.Opt(special, "name") : null,
            Pid = pidOffsets,
            ModuleUse = ReadModuleUse(b, module),
            Kthread = ReadKthread(b, task),
            Workqueue = ReadWorkqueue(b, maxString),
            RunQueue = ReadRunQueue(b),
            Scheduler = SchedulerOffsets.FromBtf(b.Btf),
            OpenFiles = OpenFileOffsets.FromBtf(b.Btf), SocketFiles = SocketFileOffsets.FromBtf(b.Btf),
            SocketTables = SocketTableOffsets.FromBtf(b.Btf),
            ModuleTaint = ReadModuleTaint(b, module),
            Vmalloc = VmallocOffsets.FromBtf(b.Btf),
            ModuleSymbols = ReadModuleSymbols(b, module),
            PatchTables = PatchTableOffsets.FromBtf(b.Btf),
            Namespaces = NamespaceOffsets.FromBtf(b.Btf),
            Bpf = BpfOffsets.FromBtf(b.Btf),
            ProcessDetails = ProcessDetailOffsets.FromBtf(b.Btf),
            Mounts = MountOffsets.FromBtf(b.Btf),
        };
    }

    /// <summary>struct mod_kallsyms {symtab, num_symtab, strtab, typetab}, Elf64_Sym and struct kernel_symbol (with
    /// place-relative offsets on x86-64, CONFIG_HAVE_ARCH_PREL32_RELOCATIONS, or absolute pointers elsewhere).</summary>
    private static ModuleSymbolOffsets? ReadModuleSymbols(BtfReader b, StructLayout module)
    {
        var kallsyms = b.Btf.FindStruct("mod_kallsyms");
        var sym = b.Btf.FindStruct("elf64_sym");
        if (kallsyms is null || sym is null || !module.HasMember("kallsyms")
            || !kallsyms.HasMember("symtab") || !kallsyms.HasMember("num_symtab") || !kallsyms.HasMember("strtab") || !kallsyms.HasMember("typetab")
            || !sym.HasMember("st_name") || !sym.HasMember("st_value"))
            return null;
        var ksym = b.Btf.FindStruct("kernel_symbol");
        int? syms = null, numSyms = null, valueOffset = null, nameOffset = null;
        bool relative = false;
        if (ksym is not null && module.HasMember("syms") && module.HasMember("num_syms"))
        {
            relative = ksym.HasMember("value_offset") && ksym.HasMember("name_offset");
            if (relative || (ksym.HasMember("value") && ksym.HasMember("name")))
            {
                syms = b.O(module, "syms");
                numSyms = b.O(module, "num_syms");
                valueOffset = b.O(ksym, relative ? "value_offset" : "value");
                nameOffset = b.O(ksym, relative ? "name_offset" : "name");
            }
        }
        return new ModuleSymbolOffsets
        {
            Kallsyms = b.O(module, "kallsyms"),
            Symtab = b.O(kallsyms, "symtab"), NumSymtab = b.O(kallsyms, "num_symtab"),
            Strtab = b.O(kallsyms, "strtab"), Typetab = b.O(kallsyms, "typetab"),
            SymSize = sym.Size, SymName = b.O(sym, "st_name"), SymValue = b.O(sym, "st_value"),
            Syms = syms, NumSyms = numSyms, KernelSymbolSize = ksym?.Size ?? 0,
            KernelSymbolValue = valueOffset, KernelSymbolName = nameOffset, KernelSymbolRelative = relative,
        };
    }

    /// <summary>Null without CONFIG_MODULE_UNLOAD (no source_list) or without struct module_use in BTF.</summary>
    private static ModuleUseOffsets? ReadModuleUse(BtfReader b, StructLayout module)
    {
        var use = b.Btf.FindStruct("module_use");
        if (use is null || !module.HasMember("source_list") || !use.HasMember("source_list") || !use.HasMember("source")) return null;
        return new ModuleUseOffsets
        {
            SourceList = b.O(module, "source_list"), UseSourceList = b.O(use, "source_list"), UseSource = b.O(use, "source"),
            Init = b.Opt(module, "init"), Exit = b.Opt(module, "exit"),
        };
    }

    /// <summary>to_kthread(): task->worker_private since 5.17, task->set_child_tid before; struct kthread is kernel/kthread.c's.</summary>
    private static KthreadOffsets? ReadKthread(BtfReader b, StructLayout task)
    {
        var kthread = b.Btf.FindStruct("kthread");
        int? link = b.Opt(task, "worker_private") ?? b.Opt(task, "set_child_tid");
        if (kthread is null || link is null || !kthread.HasMember("data")) return null;
        return new KthreadOffsets { TaskKthread = link.Value, Data = b.O(kthread, "data"), FullName = b.Opt(kthread, "full_name") };
    }

    /// <summary>kernel/workqueue_internal.h's struct worker and workqueue.c's worker_pool/workqueue_struct.</summary>
    private static WorkqueueOffsets? ReadWorkqueue(BtfReader b, int maxString)
    {
        var worker = b.Btf.FindStruct("worker");
        var pool = b.Btf.FindStruct("worker_pool");
        if (worker is null || pool is null || !worker.HasMember("desc") || !worker.HasMember("current_work") || !worker.HasMember("pool"))
            return null;
        var attrs = b.Btf.FindStruct("workqueue_attrs");
        var wq = b.Btf.FindStruct("workqueue_struct");
        return new WorkqueueOffsets
        {
            WorkerDesc = b.O(worker, "desc"), WorkerDescSize = b.Count(worker, "desc", 1, 1, maxString),
            WorkerCurrentWork = b.O(worker, "current_work"), WorkerPool = b.O(worker, "pool"), WorkerTask = b.Opt(worker, "task"),
            WorkerId = b.Opt(worker, "id"), WorkerRescueWq = b.Opt(worker, "rescue_wq"),
            PoolCpu = b.Opt(pool, "cpu"), PoolId = b.Opt(pool, "id"), PoolAttrs = b.Opt(pool, "attrs"),
            AttrsNice = attrs is not null ? b.Opt(attrs, "nice") : null,
            WqName = wq is not null ? b.Opt(wq, "name") : null,
            WqNameSize = wq is not null && wq.HasMember("name") ? b.Count(wq, "name", 1, 1, maxString) : 0,
        };
    }

    /// <summary>module->taints (a bit per TAINT_* number) and kernel/panic.c's struct taint_flag { c_true, c_false, [module,]
    /// ... }: 7.x dropped `module` (module_flags_taint prints every set bit of module->taints).</summary>
    private static ModuleTaintOffsets? ReadModuleTaint(BtfReader b, StructLayout module)
    {
        var flag = b.Btf.FindStruct("taint_flag");
        if (flag is null || !module.HasMember("taints") || !flag.HasMember("c_true") || flag.Size is < 1 or > MaxTaintFlagSize)
            return null;
        return new ModuleTaintOffsets
        {
            Taints = b.O(module, "taints"), FlagSize = flag.Size, FlagLetter = b.O(flag, "c_true"), FlagModule = flag.HasMember("module") ? b.O(flag, "module") : null,
        };
    }

    /// <summary>struct taint_flag is 3 bytes in 6.1 and 16 with its desc pointer (6.12); more is not that struct.</summary>
    private const int MaxTaintFlagSize = 64;

    /// <summary>kernel/sched/sched.h's struct rq: whose run queue it is, what runs, and the CPU's idle task.</summary>
    private static RunQueueOffsets? ReadRunQueue(BtfReader b)
    {
        var rq = b.Btf.FindStruct("rq");
        if (rq is null || !rq.HasMember("cpu") || !rq.HasMember("curr") || !rq.HasMember("idle")) return null;
        return new RunQueueOffsets { Cpu = b.O(rq, "cpu"), Curr = b.O(rq, "curr"), Idle = b.O(rq, "idle") };
    }

    /// <summary>A maple node is 256 bytes (MAPLE_NODE_SLOTS = 31 on 64-bit): more slots than this is corrupt BTF.</summary>
    private const int MaxMapleSlots = 64;
    /// <summary>enum mod_mem_type has 7 types in 6.4..7.x; room for growth, not for 2^31 entries.</summary>
    private const int MaxModuleMemTypes = 64;
    /// <summary>XA_CHUNK_SIZE is 64 (16 with CONFIG_BASE_SMALL): more slots than this is corrupt BTF.</summary>
    private const int MaxXaNodeSlots = PidAbi.XaChunkSize;
    /// <summary>enum pid_type has 4 types (PID, TGID, PGID, SID) plus PIDTYPE_MAX.</summary>
    private const int MaxPidTypes = 16;

    /// <summary>
    /// Checked member lookups over BTF: every offset must lie inside its struct (nested anonymous members may add up
    /// to anything in hostile BTF), every size must fit what holds it.
    /// </summary>
    private sealed class BtfReader(BtfTypes btf)
    {
        private readonly Dictionary<string, IReadOnlyList<BtfEnumValue>> _enums = [];

        public BtfTypes Btf { get; } = btf;

        public StructLayout Struct(string name) =>
            Btf.FindStruct(name) ?? throw new KernelModelException($"BTF has no definition of struct {name}");

        /// <summary>Byte offset of <paramref name="path"/>, checked to lie with its whole type inside the struct.</summary>
        public int O(StructLayout s, string path)
        {
            var m = s.GetMember(path);
            long offset = m.ByteOffset;
            long size = m.BitfieldSize != 0 ? (m.BitfieldSize + 7) / 8 : Btf.SizeOf(m.TypeId);
            if (offset < 0 || offset > s.Size || size < 0 || size > s.Size - offset)
                throw new KernelModelException(
                    $"BTF: {s} member '{path}' at byte offset 0x{offset:x} with size 0x{size:x} does not fit in the struct's 0x{s.Size:x} bytes");
            return (int)offset;
        }

        public int? Opt(StructLayout s, string path) => s.HasMember(path) ? O(s, path) : null;

        public int First(StructLayout s, params string[] paths)
        {
            foreach (var p in paths) if (s.HasMember(p)) return O(s, p);
            throw new KernelModelException($"BTF: {s} has none of the members {string.Join(", ", paths)}");
        }

        /// <summary>Element count of the array member <paramref name="path"/> (its size / <paramref name="elementSize"/>), in min..max.</summary>
        public int Count(StructLayout s, string path, int elementSize, int min, int max)
        {
            O(s, path);
            long size = Btf.SizeOf(s.GetMember(path).TypeId);
            long count = elementSize > 0 ? size / elementSize : -1;
            if (elementSize <= 0 || size % elementSize != 0 || count < min || count > max)
                throw new KernelModelException(
                    $"BTF: {s} member '{path}' is 0x{size:x} bytes, expected {min}..{max} elements of {elementSize} bytes");
            return (int)count;
        }

        /// <summary>Value of <paramref name="enumerator"/> in the named enum (ENUM or ENUM64), which must fit in an int.</summary>
        public int Enumerator(string enumName, string enumerator)
        {
            if (!_enums.TryGetValue(enumName, out var values))
            {
                int? id = Btf.FindTypeId(enumName, BtfKind.Enum) ?? Btf.FindTypeId(enumName, BtfKind.Enum64);
                if (id is null) throw new KernelModelException($"BTF has no enum {enumName}");
                _enums[enumName] = values = Btf.GetEnumValues(id.Value);
            }
            foreach (var v in values)
            {
                if (v.Name != enumerator) continue;
                if (v.Value is < int.MinValue or > int.MaxValue)
                    throw new KernelModelException($"BTF: enum {enumName} {enumerator} = {v.Value} does not fit in 32 bits");
                return (int)v.Value;
            }
            throw new KernelModelException($"BTF: enum {enumName} has no enumerator {enumerator}");
        }
    }
}

public sealed record TaskOffsets
{
    public int Size { get; init; }
    public int Tasks { get; init; }
    public int Pid { get; init; }
    public int Tgid { get; init; }
    public int Comm { get; init; }
    public int CommSize { get; init; }
    public int Mm { get; init; }
    public int RealParent { get; init; }
    public int Parent { get; init; }
    public int GroupLeader { get; init; }
    public int? ThreadGroup { get; init; }
    public int? ThreadNode { get; init; }
    public int Signal { get; init; }
    public int? SignalThreadHead { get; init; }
    public int? SignalNrThreads { get; init; }
    public int Flags { get; init; }
    public int State { get; init; }
    public int ExitState { get; init; }
    public int RealCred { get; init; }
    public int Cred { get; init; }
}

public sealed record MmOffsets
{
    public int Pgd { get; init; }
    public int MapCount { get; init; }
    public int? Mmap { get; init; }
    public int StartCode { get; init; }
    public int EndCode { get; init; }
    public int StartBrk { get; init; }
    public int Brk { get; init; }
    public int StartStack { get; init; }
    public int? ExeFile { get; init; }
    /// <summary>mm->context.flags (x86): see <see cref="KernelMacros.MM_CONTEXT_HAS_VSYSCALL"/>.</summary>
    public int? ContextFlags { get; init; }
}

public sealed record VmaOffsets
{
    public int Start { get; init; }
    public int End { get; init; }
    public int Mm { get; init; }
    public int Flags { get; init; }
    public int PgOff { get; init; }
    public int File { get; init; }
    public int? Next { get; init; }
    public int Ops { get; init; }
    public int PrivateData { get; init; }
}

public sealed record ModuleOffsets
{
    public int List { get; init; }
    public int Name { get; init; }
    public int NameSize { get; init; }
    public int State { get; init; }
    public int? CoreLayout { get; init; }
    public int? InitLayout { get; init; }
    public int? Mem { get; init; }
    public int MemCount { get; init; }
    public int MemSize { get; init; }
    public int LayoutBase { get; init; }
    public int LayoutSize { get; init; }
    public int? LayoutTextSize { get; init; }
    public int? LayoutRoSize { get; init; }
    public int? RefCount { get; init; }
    /// <summary>Indices into mem[] of MOD_TEXT and MOD_RODATA (enum mod_mem_type), with the 6.4+ layout.</summary>
    public int? MemText { get; init; }
    public int? MemRodata { get; init; }
    /// <summary>enum module_state values.</summary>
    public int StateLive { get; init; }
    public int StateComing { get; init; }
    public int StateGoing { get; init; }
    public int StateUnformed { get; init; }

    /// <summary>The raw module->state value as a <see cref="ModuleState"/>; values the enum lacks are Unknown.</summary>
    public ModuleState StateOf(int raw) =>
        raw == StateLive ? ModuleState.Live : raw == StateComing ? ModuleState.Coming : raw == StateGoing ? ModuleState.Going
        : raw == StateUnformed ? ModuleState.Unformed : ModuleState.Unknown;
}

/// <summary>task->pid_links, pid->tasks[PIDTYPE_PID] and pid->numbers[0].nr (the pid in the initial namespace). From
/// BTF, or inferred (then a member the search could not settle is null).</summary>
public sealed record PidOffsets
{
    public int? TaskPidLinks { get; init; }
    /// <summary>pid->tasks[PIDTYPE_PID].</summary>
    public int? Tasks { get; init; }
    public int? NumbersNr { get; init; }
    public int PidTypePid { get; init; }
    public int? ThreadPid { get; init; }
    public int? Numbers { get; init; }
    public int? UpidNr { get; init; }
    public int? UpidNs { get; init; }
    public int? Children { get; init; }
    public int? Sibling { get; init; }
    /// <summary>pid_namespace.idr.idr_rt.xa_head.</summary>
    public int? NamespaceXaHead { get; init; }
    public int? XaNodeSlots { get; init; }
    /// <summary>Slots per xa_node (XA_CHUNK_SIZE): from BTF's array size, else <see cref="PidAbi.XaChunkSize"/>.</summary>
    public int? XaNodeSlotCount { get; init; }
}

public sealed record PathOffsets
{
    public int FilePath { get; init; }
    public int FileInode { get; init; }
    public int PathMnt { get; init; }
    public int PathDentry { get; init; }
    public int DentryParent { get; init; }
    public int DentryName { get; init; }
    public int DentryNameLength { get; init; }
    public int MountMnt { get; init; }
    public int MountParent { get; init; }
    public int MountMountpoint { get; init; }
    public int VfsMountRoot { get; init; }
    public int InodeIno { get; init; }
    public int InodeSb { get; init; }
    public int SuperBlockDev { get; init; }
    public int? DentryUnlinkedHint { get; init; }
}

public sealed record MapleOffsets
{
    public int Root { get; init; }
    public int RangePivot { get; init; }
    public int RangeSlot { get; init; }
    public int RangeMeta { get; init; }
    public int RangeSlots { get; init; }
    public int ArangePivot { get; init; }
    public int ArangeSlot { get; init; }
    public int ArangeMeta { get; init; }
    public int ArangeSlots { get; init; }
    public int MetaEnd { get; init; }
    /// <summary>enum maple_type values, as encoded in bits 3..6 of a node pointer.</summary>
    public int TypeDense { get; init; }
    public int TypeLeaf64 { get; init; }
    public int TypeRange64 { get; init; }
    public int TypeArange64 { get; init; }
}

/// <summary>module->source_list (the modules using this one, linked through module_use.source_list), use->source.</summary>
public sealed record ModuleUseOffsets
{
    public int SourceList { get; init; }
    public int UseSourceList { get; init; }
    public int UseSource { get; init; }
    /// <summary>module->init and module->exit: a module with init but no exit is "[permanent]".</summary>
    public int? Init { get; init; }
    public int? Exit { get; init; }
}

/// <summary>task->worker_private (or set_child_tid) points to struct kthread; kthread->data is the worker, full_name the long name.</summary>
public sealed record KthreadOffsets
{
    public int TaskKthread { get; init; }
    public int Data { get; init; }
    public int? FullName { get; init; }
}

/// <summary>struct worker: desc[WORKER_DESC_LEN], current_work, pool, id, rescue_wq; worker_pool: cpu, id, attrs->nice; wq name.</summary>
public sealed record WorkqueueOffsets
{
    public int WorkerDesc { get; init; }
    public int WorkerDescSize { get; init; }
    public int WorkerCurrentWork { get; init; }
    public int WorkerPool { get; init; }
    /// <summary>worker.task (the worker's own task_struct): not read by the names, the inference's closing constraint.</summary>
    public int? WorkerTask { get; init; }
    public int? WorkerId { get; init; }
    public int? WorkerRescueWq { get; init; }
    public int? PoolCpu { get; init; }
    public int? PoolId { get; init; }
    public int? PoolAttrs { get; init; }
    public int? AttrsNice { get; init; }
    public int? WqName { get; init; }
    public int WqNameSize { get; init; }
}

/// <summary>module->taints; taint_flags[bit] entries of FlagSize bytes with their letter and module flag.</summary>
public sealed record ModuleTaintOffsets
{
    public int Taints { get; init; }
    public int FlagSize { get; init; }
    public int FlagLetter { get; init; }
    /// <summary>taint_flag.module; null on 7.x, whose struct has none: every set bit of module->taints is printed.</summary>
    public int? FlagModule { get; init; }
}

/// <summary>struct rq: cpu (the owner, checked against the per-CPU slot), curr, idle.</summary>
public sealed record RunQueueOffsets
{
    public int Cpu { get; init; }
    public int Curr { get; init; }
    public int Idle { get; init; }
}

public class KernelModelException(string message) : Exception(message);

/// <summary>Where a module's own symbol table and its exported symbols are; see <see cref="ModuleSymbols"/>.</summary>
public sealed record ModuleSymbolOffsets
{
    /// <summary>module.kallsyms: an RCU pointer to the live struct mod_kallsyms (core_kallsyms once init finished).</summary>
    public int Kallsyms { get; init; }
    public int Symtab { get; init; }
    public int NumSymtab { get; init; }
    public int Strtab { get; init; }
    /// <summary>mod_kallsyms.typetab: one nm-style type letter per symtab entry, as the kernel computed it at load.</summary>
    public int Typetab { get; init; }
    /// <summary>sizeof(Elf64_Sym) and its st_name (u32 strtab offset) and st_value members.</summary>
    public int SymSize { get; init; }
    public int SymName { get; init; }
    public int SymValue { get; init; }
    /// <summary>module.syms / module.num_syms: the module's EXPORT_SYMBOL table (null when BTF lacks it).</summary>
    public int? Syms { get; init; }
    public int? NumSyms { get; init; }
    public int KernelSymbolSize { get; init; }
    public int? KernelSymbolValue { get; init; }
    public int? KernelSymbolName { get; init; }
    /// <summary>kernel_symbol holds s32 offsets relative to each member's own address (value_offset, name_offset).</summary>
    public bool KernelSymbolRelative { get; init; }
}
