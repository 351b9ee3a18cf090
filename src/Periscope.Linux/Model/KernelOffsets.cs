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

    public static KernelOffsets FromBtf(BtfTypes btf)
    {
        StructLayout S(string name) => btf.FindStruct(name) ?? throw new KernelModelException($"BTF has no definition of struct {name}");
        static int O(StructLayout s, string path) => checked((int)s.Offset(path));
        static int? Opt(StructLayout s, string path) => s.HasMember(path) ? checked((int)s.Offset(path)) : null;
        static int First(StructLayout s, params string[] paths)
        {
            foreach (var p in paths) if (s.HasMember(p)) return checked((int)s.Offset(p));
            throw new KernelModelException($"struct {s.Name} has none of the members {string.Join(", ", paths)}");
        }

        var task = S("task_struct");
        var signal = S("signal_struct");
        var mm = S("mm_struct");
        var vma = S("vm_area_struct");
        var module = S("module");
        var cred = S("cred");
        var file = S("file");
        var path = S("path");
        var dentry = S("dentry");
        var mount = S("mount");
        var vfsmount = S("vfsmount");
        var qstr = S("qstr");
        var inode = S("inode");
        var superBlock = S("super_block");

        MapleOffsets? maple = null;
        if (mm.HasMember("mm_mt"))
        {
            var tree = S("maple_tree");
            var range = S("maple_range_64");
            var arange = S("maple_arange_64");
            var meta = S("maple_metadata");
            maple = new MapleOffsets
            {
                Root = O(mm, "mm_mt") + O(tree, "ma_root"),
                RangePivot = O(range, "pivot"), RangeSlot = O(range, "slot"), RangeMeta = O(range, "meta"),
                RangeSlots = range.MemberSize("slot") / 8,
                ArangePivot = O(arange, "pivot"), ArangeSlot = O(arange, "slot"), ArangeMeta = O(arange, "meta"),
                ArangeSlots = arange.MemberSize("slot") / 8,
                MetaEnd = O(meta, "end"),
            };
        }

        // 6.4+ replaced core_layout/init_layout with mem[MOD_MEM_NUM_TYPES].
        int? coreLayout = Opt(module, "core_layout");
        int? memArray = Opt(module, "mem");
        var moduleMemory = btf.FindStruct(memArray is not null ? "module_memory" : "module_layout")
            ?? throw new KernelModelException("BTF describes neither module_memory nor module_layout");

        return new KernelOffsets
        {
            Task = new TaskOffsets
            {
                Size = task.Size,
                Tasks = O(task, "tasks"), Pid = O(task, "pid"), Tgid = O(task, "tgid"),
                Comm = O(task, "comm"), CommSize = task.MemberSize("comm"),
                Mm = O(task, "mm"), RealParent = O(task, "real_parent"), Parent = O(task, "parent"),
                GroupLeader = O(task, "group_leader"), ThreadGroup = Opt(task, "thread_group"), ThreadNode = Opt(task, "thread_node"),
                Signal = O(task, "signal"), SignalThreadHead = Opt(signal, "thread_head"), SignalNrThreads = Opt(signal, "nr_threads"),
                Flags = O(task, "flags"), State = First(task, "__state", "state"), ExitState = O(task, "exit_state"),
                RealCred = O(task, "real_cred"), Cred = O(task, "cred"),
            },
            Mm = new MmOffsets
            {
                Pgd = O(mm, "pgd"), MapCount = O(mm, "map_count"), Mmap = Opt(mm, "mmap"),
                StartCode = O(mm, "start_code"), EndCode = O(mm, "end_code"), StartBrk = O(mm, "start_brk"), Brk = O(mm, "brk"),
                StartStack = O(mm, "start_stack"), ExeFile = Opt(mm, "exe_file"), ContextFlags = Opt(mm, "context.flags"),
            },
            Vma = new VmaOffsets
            {
                Start = O(vma, "vm_start"), End = O(vma, "vm_end"), Mm = O(vma, "vm_mm"), Flags = O(vma, "vm_flags"),
                PgOff = O(vma, "vm_pgoff"), File = O(vma, "vm_file"), Next = Opt(vma, "vm_next"),
                Ops = O(vma, "vm_ops"), PrivateData = O(vma, "vm_private_data"),
            },
            Module = new ModuleOffsets
            {
                List = O(module, "list"), Name = O(module, "name"), NameSize = module.MemberSize("name"), State = O(module, "state"),
                CoreLayout = coreLayout, InitLayout = Opt(module, "init_layout"), Mem = memArray,
                MemCount = memArray is not null ? module.MemberSize("mem") / moduleMemory.Size : 0,
                MemSize = moduleMemory.Size,
                LayoutBase = O(moduleMemory, "base"), LayoutSize = O(moduleMemory, "size"),
                LayoutTextSize = Opt(moduleMemory, "text_size"), LayoutRoSize = Opt(moduleMemory, "ro_size"),
                RefCount = Opt(module, "refcnt"),
            },
            Path = new PathOffsets
            {
                FilePath = O(file, "f_path"), FileInode = O(file, "f_inode"),
                PathMnt = O(path, "mnt"), PathDentry = O(path, "dentry"),
                DentryParent = O(dentry, "d_parent"), DentryName = O(dentry, "d_name") + O(qstr, "name"),
                DentryNameLength = O(dentry, "d_name") + First(qstr, "len", "hash_len"),
                MountMnt = O(mount, "mnt"), MountParent = O(mount, "mnt_parent"), MountMountpoint = O(mount, "mnt_mountpoint"),
                VfsMountRoot = O(vfsmount, "mnt_root"),
                InodeIno = O(inode, "i_ino"), InodeSb = O(inode, "i_sb"), SuperBlockDev = O(superBlock, "s_dev"),
                DentryUnlinkedHint = Opt(dentry, "d_hash"),
            },
            Maple = maple,
            CredUid = O(cred, "uid"), CredGid = O(cred, "gid"), CredEuid = O(cred, "euid"),
        };
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
    /// <summary>mm->context.flags (x86): bit 1 is MM_CONTEXT_HAS_VSYSCALL.</summary>
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
}

public sealed class KernelModelException(string message) : Exception(message);
