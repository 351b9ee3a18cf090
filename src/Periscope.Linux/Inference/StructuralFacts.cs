namespace Periscope.Linux.Inference;

/// <summary>
/// The few facts the constraint search takes from the kernel's source rather than from the data: declaration orders
/// and on-node formats that have not changed from 6.1 to 7.x. Each is checked against the guest before it is used (the
/// rule that uses it says how); a guest where the check fails gets the member reported unknown, not guessed.
/// </summary>
public static class StructuralFacts
{
    /// <summary>TASK_COMM_LEN: task_struct.comm is char[16] (a 15-character name and its NUL) since 2.6.</summary>
    public const int TaskCommLength = 16;
    /// <summary>PF_IDLE: set only on idle tasks (init_task is CPU 0's); PF_WQ_WORKER: set on every workqueue worker (kworker/*).</summary>
    public const uint PF_IDLE = 0x2, PF_WQ_WORKER = 0x20;
    /// <summary>SIGCHLD: the exit_signal of every process forked by fork()/clone(SIGCHLD); threads carry -1.</summary>
    public const int SIGCHLD = 17;
    /// <summary>exit_state values a live task can hold: 0, EXIT_DEAD (0x10), EXIT_ZOMBIE (0x20).</summary>
    public const int EXIT_DEAD = 0x10, EXIT_ZOMBIE = 0x20;
    /// <summary>task_struct declares int exit_state, exit_code, exit_signal back to back (since 2.6.x): exit_signal = exit_state + 8.</summary>
    public const int ExitSignalAfterExitState = 8;
    /// <summary>__state bits a sleeping or running task can carry (TASK_REPORT .. TASK_FREEZABLE, TASK_FROZEN; TASK_STATE_MAX is 0x10000 in 6.1): anything above is not a state.</summary>
    public const uint TaskStateBitsLimit = 0x10000;
    /// <summary>TASK_INTERRUPTIBLE.</summary>
    public const uint TASK_INTERRUPTIBLE = 0x1;

    /// <summary>struct module starts with enum module_state state (4 bytes), then struct list_head list at the next 8-byte boundary.</summary>
    public const int ModuleListOffset = 8;
    /// <summary>MODULE_NAME_LEN = 64 - sizeof(unsigned long) on 64-bit.</summary>
    public const int ModuleNameLength = 56;
    /// <summary>enum module_state: LIVE 0, COMING 1, GOING 2, UNFORMED 3 (unchanged since 3.x).</summary>
    public const int ModuleStateLive = 0, ModuleStateComing = 1, ModuleStateGoing = 2, ModuleStateUnformed = 3;
    /// <summary>struct module declares list_head source_list, list_head target_list, void (*exit)(void), atomic_t refcnt in this order.</summary>
    public const int RefcntAfterLists = 40;
    /// <summary>module_layout (6.1..6.3) starts with void *base, unsigned int size; text_size and ro_size follow.</summary>
    public const int LayoutBase = 0, LayoutSize = 8, LayoutTextSize = 12, LayoutRoSize = 16;

    /// <summary>
    /// enum mod_mem_type (6.4+): MOD_TEXT 0, MOD_DATA 1, MOD_RODATA 2, MOD_RO_AFTER_INIT 3, then the init types 4..6;
    /// MOD_MEM_NUM_TYPES 7. struct mod_tree_node starts with struct module *mod, 16 bytes into struct module_memory
    /// (after base and size). Checked by <see cref="ModuleMemoryRule"/>: MOD_DATA holds the struct module, init entries
    /// of live modules are empty, mtn.mod points back.
    /// </summary>
    public const int ModMemTypes = 7, ModMemText = 0, ModMemData = 1, ModMemRodata = 2, ModMemFirstInit = 4, ModMemTreeNodeMod = 16;

    /// <summary>struct module_use { list_head source_list; list_head target_list; struct module *source, *target; } (since 2.6.35).</summary>
    public const int ModuleUseSourceList = 0, ModuleUseTargetList = 16, ModuleUseSource = 32, ModuleUseTarget = 40;
    /// <summary>struct mod_kallsyms { Elf_Sym *symtab; unsigned int num_symtab; char *strtab; char *typetab; }.</summary>
    public const int ModKallsymsNumSymtab = 8, ModKallsymsStrtab = 16, ModKallsymsTypetab = 24, ModKallsymsBytes = 32;
    /// <summary>Elf64_Sym as the ELF specification fixes it: { u32 st_name; u8 st_info, st_other; u16 st_shndx; u64 st_value; u64 st_size; }.</summary>
    public const int ElfSymSize = 24, ElfSymName = 0, ElfSymValue = 8;
    /// <summary>struct module declares const struct kernel_symbol *syms; const s32 *crcs; unsigned int num_syms; and x86-64's
    /// kernel_symbol (PREL32 relocations) is { int value_offset; int name_offset; int namespace_offset; }. Linux 7.0 put
    /// const u8 *flagstab (the GPL-only flag of each export, replacing the separate gpl_syms table) between crcs and
    /// num_syms, so num_syms follows syms by <see cref="KernelSymbolNumAfterSymsWithFlags"/> there.</summary>
    public const int KernelSymbolNumAfterSyms = 16, KernelSymbolValueOffset = 0, KernelSymbolNameOffset = 4, KernelSymbolSize = 12;
    /// <summary>num_syms after syms in { syms; crcs; flagstab; num_syms } (Linux 7.0 and later).</summary>
    public const int KernelSymbolNumAfterSymsWithFlags = 24;

    /// <summary>struct path is { struct vfsmount *mnt; struct dentry *dentry; } since 2.6.26.</summary>
    public const int PathMnt = 0, PathDentry = 8;
    /// <summary>struct mount declares struct mount *mnt_parent; struct dentry *mnt_mountpoint; struct vfsmount mnt; in this order (since 3.3).</summary>
    public const int MountParentBeforeMnt = 16, MountMountpointBeforeMnt = 8;
    /// <summary>struct qstr is { union { struct { u32 hash; u32 len; }; u64 hash_len; }; const unsigned char *name; }.</summary>
    public const int QstrLen = 4, QstrName = 8;

    /// <summary>mm_struct declares start_code, end_code, start_data, end_data, start_brk, brk, start_stack (u64 each) in this order.</summary>
    public const int MmEndCode = 8, MmStartBrk = 32, MmBrk = 40, MmStartStack = 48;
    /// <summary>struct inode's i_uid is one of its first words, after umode_t i_mode and unsigned short i_opflags: at 4
    /// in 6.1, at 0x18 in 7.x (i_flags, i_acl and i_default_acl moved before it); the i_uid rule searches [4, 64).</summary>
    public const int InodeFirstUid = 4, MaxInodeUidOffset = 64;
    /// <summary>super_block starts with struct list_head s_list, then dev_t s_dev.</summary>
    public const int SuperBlockDev = 16;

    /// <summary>list_head is { next, prev }.</summary>
    public const int ListHeadPrev = 8;

    /// <summary>
    /// Maple tree nodes (6.1+) are 256 bytes (MAPLE_NODE_SLOTS = 31 on 64-bit): maple_range_64 = { parent, pivot[15], slot[16] }
    /// with its metadata in the last slot's bytes (0xf8), maple_arange_64 = { parent, pivot[9], slot[10], gap[10], meta };
    /// maple_metadata = { u8 end; u8 gap; }; enum maple_type = { dense, leaf_64, range_64, arange_64 }. Checked by walking
    /// every user mm's tree: the entry count must equal its map_count and every entry must point back to its mm.
    /// </summary>
    public const int MapleRangePivot = 8, MapleRangeSlot = 0x80, MapleRangeMeta = 0xf8, MapleRangeSlots = 16;
    public const int MapleArangePivot = 8, MapleArangeSlot = 0x50, MapleArangeMeta = 0xf0, MapleArangeSlots = 10;
    public const int MapleMetaEnd = 0, MapleDense = 0, MapleLeaf64 = 1, MapleRange64 = 2, MapleArange64 = 3;

    /// <summary>struct cred's eight ids follow the usage counter in this order: uid, gid, suid, sgid, euid, egid, fsuid, fsgid
    /// (u32 each), then securebits (u32) and the capability sets inheritable, permitted, effective, bset (u64 each since 6.3,
    /// u32[2] before: the same bytes).</summary>
    public const int CredGidAfterUid = 4, CredEuidAfterUid = 16, CredIdsBytes = 36;

    /// <summary>The x86-64 vsyscall page: gate_vma's vm_start, and its vm_flags VM_READ|VM_EXEC.</summary>
    public const ulong VSYSCALL_ADDR = 0xffff_ffff_ff60_0000;
    public const ulong GateVmaFlags = 0x5;
    /// <summary>VM_MAYREAD: set on every user mapping ([vvar] and guard pages aside).</summary>
    public const ulong VM_MAYREAD = 0x10;
}
