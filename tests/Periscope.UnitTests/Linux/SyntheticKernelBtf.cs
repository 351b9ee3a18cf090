using Periscope.Linux.Btf;
using Periscope.Linux.Model;
using Periscope.Memory;
using Periscope.UnitTests.Btf;
using static Periscope.UnitTests.Btf.BtfBuilder;

namespace Periscope.UnitTests.Linux;

/// <summary>
/// A minimal kernel BTF holding every struct and enum <see cref="KernelOffsets.FromBtf"/> needs (pre-6.1 mmap list,
/// 6.4+ module mem[]), with knobs for the hostile variants the tests need. Offsets are fixed and public so that
/// synthetic guest memory can be laid out to match.
/// </summary>
internal sealed class SyntheticKernelBtf
{
    // task_struct
    public const int TaskSize = 0x400, TaskTasks = 0x10, TaskPid = 0x20, TaskTgid = 0x24, TaskComm = 0x30, TaskMm = 0x40,
        TaskRealParent = 0x48, TaskParent = 0x50, TaskGroupLeader = 0x58, TaskThreadGroup = 0x60, TaskSignal = 0x70,
        TaskFlags = 0x78, TaskState = 0x7c, TaskExitState = 0x80, TaskRealCred = 0x88, TaskCred = 0x90;
    // module
    public const int ModuleSize = 0x200, ModuleStateAt = 0x0, ModuleListAt = 0x8, ModuleName = 0x18, ModuleNameLength = 56,
        ModuleMem = 0x60, ModuleMemorySize = 16, ModuleRefcnt = 0x1f0;

    // The types of the views as the guest shows them (opt-in, see ViewTypes): task->worker_private, struct kthread,
    // struct worker and its pool, struct module_use, struct rq.
    public const int TaskWorkerPrivate = 0x98, ModuleSourceList = 0x1c0, ModuleInit = 0x1d0, ModuleExit = 0x1d8,
        UseSourceList = 0x0, UseSource = 0x20, KthreadData = 0x10, KthreadFullName = 0x20,
        WorkerCurrentWork = 0x8, WorkerPool = 0x30, WorkerDesc = 0x40, WorkerDescLength = 24, WorkerId = 0x60, WorkerRescueWq = 0x68,
        PoolCpu = 0x4, PoolId = 0xc, PoolAttrs = 0x20, AttrsNice = 0x0, WqName = 0x10, WqNameLength = 24,
        RqCpu = 0x8, RqCurr = 0x10, RqIdle = 0x18, ModuleTaints = 0x1e0, TaintFlagSize = 3;

    /// <summary>Adds the view types above (module "used by", worker and kthread names, run queues).</summary>
    public bool ViewTypes { get; init; }

    /// <summary>Byte offset of list_head.prev (8 in every real kernel; moved here to prove it is read from BTF).</summary>
    public int ListHeadPrev { get; init; } = 8;
    /// <summary>Puts task_struct.pid inside this many nested anonymous structs, each adding ~512 MiB of offset.</summary>
    public int PidNestingDepth { get; init; }
    public uint CommLength { get; init; } = 16;
    public uint ModuleMemCount { get; init; } = 7;
    public int ModTextValue { get; init; }
    public int ModRodataValue { get; init; } = 2;
    public int ModMemNumTypes { get; init; } = 7;
    public (int Live, int Coming, int Going, int Unformed) ModuleStates { get; init; } = (0, 1, 2, 3);
    public int SpecialMappingNameOffset { get; init; }

    public BtfTypes Parse(IntrospectionLimits? limits = null) => BtfTypes.Parse(Build(), limits ?? IntrospectionLimits.Default);

    public KernelOffsets Offsets(IntrospectionLimits? limits = null) => KernelOffsets.FromBtf(Parse(limits));

    public byte[] Build()
    {
        var b = new BtfBuilder();
        int i32 = b.Int("int", 4, signed: true);
        int u32 = b.Int("unsigned int", 4);
        int u64 = b.Int("long unsigned int", 8);
        int chr = b.Int("char", 1, signed: true);
        int ptr = b.Ptr(0);
        int list = b.Struct("list_head", ListHeadPrev + 8, M("next", ptr, 0), M("prev", ptr, ListHeadPrev));
        int comm = b.Array(chr, u32, CommLength);

        int pidHolder;
        if (PidNestingDepth == 0) pidHolder = 0;
        else
        {
            // struct { int pid; } inside struct { <anon> at +0x1ffffffe } inside ...: the offsets add up past 2 GiB.
            pidHolder = b.Struct("", 4, M("pid", i32, 0));
            for (int d = 1; d < PidNestingDepth; d++) pidHolder = b.Struct("", 4, ("", pidHolder, 0xffff_fff0L, 0));
        }
        var taskMembers = new List<(string, int, long, int)>
        {
            M("tasks", list, TaskTasks), M("tgid", i32, TaskTgid), M("comm", comm, TaskComm), M("mm", ptr, TaskMm),
            M("real_parent", ptr, TaskRealParent), M("parent", ptr, TaskParent), M("group_leader", ptr, TaskGroupLeader),
            M("thread_group", list, TaskThreadGroup), M("signal", ptr, TaskSignal), M("flags", u32, TaskFlags),
            M("__state", u32, TaskState), M("exit_state", i32, TaskExitState), M("real_cred", ptr, TaskRealCred), M("cred", ptr, TaskCred),
        };
        taskMembers.Add(pidHolder == 0 ? M("pid", i32, TaskPid) : ("", pidHolder, 0xffff_fff0L, 0));
        if (ViewTypes) taskMembers.Add(M("worker_private", ptr, TaskWorkerPrivate));
        long taskSize = Math.Max(TaskSize, TaskComm + CommLength);
        b.Struct("task_struct", (int)Math.Min(taskSize, int.MaxValue), [.. taskMembers]);
        b.Struct("signal_struct", 0x40, M("nr_threads", i32, 0));
        b.Struct("mm_struct", 0x100, M("pgd", ptr, 0), M("map_count", i32, 8), M("mmap", ptr, 0x10), M("start_code", u64, 0x18),
            M("end_code", u64, 0x20), M("start_brk", u64, 0x28), M("brk", u64, 0x30), M("start_stack", u64, 0x38), M("exe_file", ptr, 0x40));
        b.Struct("vm_area_struct", 0x80, M("vm_start", u64, 0), M("vm_end", u64, 8), M("vm_next", ptr, 0x10), M("vm_mm", ptr, 0x18),
            M("vm_flags", u64, 0x20), M("vm_pgoff", u64, 0x28), M("vm_file", ptr, 0x30), M("vm_ops", ptr, 0x38), M("vm_private_data", ptr, 0x40));
        int moduleMemory = b.Struct("module_memory", ModuleMemorySize, M("base", ptr, 0), M("size", u32, 8));
        int mem = b.Array(moduleMemory, u32, ModuleMemCount);
        int name = b.Array(chr, u32, ModuleNameLength);
        var moduleMembers = new List<(string, int, long, int)>
        {
            M("state", i32, ModuleStateAt), M("list", list, ModuleListAt), M("name", name, ModuleName), M("mem", mem, ModuleMem), M("refcnt", i32, ModuleRefcnt),
        };
        if (ViewTypes)
        {
            moduleMembers.AddRange([M("source_list", list, ModuleSourceList), M("init", ptr, ModuleInit), M("exit", ptr, ModuleExit), M("taints", u64, ModuleTaints)]);
            int boolean = b.Int("_Bool", 1);
            b.Struct("taint_flag", TaintFlagSize, M("c_true", chr, 0), M("c_false", chr, 1), M("module", boolean, 2));
            b.Struct("module_use", 0x30, M("source_list", list, UseSourceList), M("target_list", list, 0x10), M("source", ptr, UseSource), M("target", ptr, 0x28));
            b.Struct("kthread", 0x40, M("data", ptr, KthreadData), M("full_name", ptr, KthreadFullName));
            b.Struct("worker", 0x80, M("current_work", ptr, WorkerCurrentWork), M("pool", ptr, WorkerPool),
                M("desc", b.Array(chr, u32, WorkerDescLength), WorkerDesc), M("id", i32, WorkerId), M("rescue_wq", ptr, WorkerRescueWq));
            b.Struct("worker_pool", 0x40, M("cpu", i32, PoolCpu), M("id", i32, PoolId), M("attrs", ptr, PoolAttrs));
            b.Struct("workqueue_attrs", 0x10, M("nice", i32, AttrsNice));
            b.Struct("workqueue_struct", 0x40, M("name", b.Array(chr, u32, WqNameLength), WqName));
            b.Struct("rq", 0x100, M("cpu", i32, RqCpu), M("curr", ptr, RqCurr), M("idle", ptr, RqIdle));
        }
        b.Struct("module", ModuleSize, [.. moduleMembers]);
        b.Enum("module_state", 4, false, ("MODULE_STATE_LIVE", ModuleStates.Live), ("MODULE_STATE_COMING", ModuleStates.Coming),
            ("MODULE_STATE_GOING", ModuleStates.Going), ("MODULE_STATE_UNFORMED", ModuleStates.Unformed));
        b.Enum("mod_mem_type", 4, true, ("MOD_TEXT", ModTextValue), ("MOD_RODATA", ModRodataValue),
            ("MOD_MEM_NUM_TYPES", ModMemNumTypes), ("MOD_INVALID", -1));
        b.Struct("cred", 0x20, M("uid", u32, 4), M("gid", u32, 8), M("euid", u32, 0xc));
        int path = b.Struct("path", 16, M("mnt", ptr, 0), M("dentry", ptr, 8));
        b.Struct("file", 0x40, M("f_path", path, 0x10), M("f_inode", ptr, 0x20));
        int qstr = b.Struct("qstr", 16, M("len", u32, 0), M("name", ptr, 8));
        b.Struct("dentry", 0x80, M("d_parent", ptr, 0x18), M("d_name", qstr, 0x20));
        int vfsmount = b.Struct("vfsmount", 0x20, M("mnt_root", ptr, 0));
        b.Struct("mount", 0x100, M("mnt_parent", ptr, 0x10), M("mnt_mountpoint", ptr, 0x18), M("mnt", vfsmount, 0x20));
        b.Struct("inode", 0x100, M("i_sb", ptr, 0x28), M("i_ino", u64, 0x40));
        b.Struct("super_block", 0x100, M("s_dev", u32, 0x10));
        b.Struct("vm_special_mapping", 0x20, M("name", ptr, SpecialMappingNameOffset));
        return b.Build();
    }
}
