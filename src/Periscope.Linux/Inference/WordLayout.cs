namespace Periscope.Linux.Inference;

/// <summary>
/// The declaration-order facts of <see cref="StructuralFacts"/> whose byte offsets depend on the size of a pointer and an
/// unsigned long (one size on every x86 Linux: 8 on x86-64, 4 on i386). The 64-bit numbers are StructuralFacts'
/// constants; each member here derives from the same declaration, so <c>For(8)</c> gives exactly those constants (a
/// unit test checks it) and <c>For(4)</c> the i386 layout. Like every structural fact, each is checked against the guest
/// by the rule that uses it.
/// </summary>
public sealed record WordLayout
{
    private WordLayout(int pointerSize) => PointerSize = pointerSize;

    public static readonly WordLayout X86_64 = new(8), I386 = new(4);

    /// <summary>The layout of <paramref name="pointerSize"/>-byte pointers (4 or 8).</summary>
    public static WordLayout For(int pointerSize) => pointerSize switch
    {
        8 => X86_64,
        4 => I386,
        _ => throw new ArgumentOutOfRangeException(nameof(pointerSize), pointerSize, "x86 Linux pointers are 4 or 8 bytes"),
    };

    /// <summary>A pointer or unsigned long of <paramref name="pointerSize"/> bytes (4 or 8) at <paramref name="at"/> in a
    /// window read from the guest, zero-extended: the one word reader of the rules that work on copied windows.</summary>
    public static ulong ReadWord(ReadOnlySpan<byte> window, int at, int pointerSize) => pointerSize == 8
        ? System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(window[at..])
        : System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(window[at..]);

    /// <summary>sizeof(void *) == sizeof(unsigned long).</summary>
    public int PointerSize { get; }
    private int P => PointerSize;

    /// <summary>list_head is { next, prev }.</summary>
    public int ListHeadPrev => P;
    /// <summary>struct module: enum module_state state (4 bytes), then struct list_head list at the next pointer boundary.</summary>
    public int ModuleListOffset => P;
    /// <summary>MODULE_NAME_LEN = 64 - sizeof(unsigned long).</summary>
    public int ModuleNameLength => 64 - P;
    /// <summary>source_list, target_list (two list_heads), void (*exit)(void), then atomic_t refcnt.</summary>
    public int RefcntAfterLists => 5 * P;
    /// <summary>module_layout (6.1..6.3): void *base, then unsigned int size, text_size, ro_size.</summary>
    public int LayoutBase => 0;
    public int LayoutSize => P;
    public int LayoutTextSize => P + 4;
    public int LayoutRoSize => P + 8;
    /// <summary>struct module_memory (6.4+): { void *base; unsigned int size; ... struct mod_tree_node mtn; } with mtn.mod
    /// right after base and size (padded to a pointer boundary).</summary>
    public int ModMemTreeNodeMod => 2 * P;
    /// <summary>struct module_use { list_head source_list; list_head target_list; struct module *source, *target; }.</summary>
    public int ModuleUseSourceList => 0;
    public int ModuleUseTargetList => 2 * P;
    public int ModuleUseSource => 4 * P;
    public int ModuleUseTarget => 5 * P;
    /// <summary>struct mod_kallsyms { Elf_Sym *symtab; unsigned int num_symtab; char *strtab; char *typetab; }.</summary>
    public int ModKallsymsNumSymtab => P;
    public int ModKallsymsStrtab => 2 * P;
    public int ModKallsymsTypetab => 3 * P;
    public int ModKallsymsBytes => 4 * P;
    /// <summary>Elf64_Sym { u32 st_name; u8 st_info, st_other; u16 st_shndx; u64 st_value; u64 st_size; } (24 bytes);
    /// Elf32_Sym { u32 st_name; u32 st_value; u32 st_size; u8 st_info, st_other; u16 st_shndx; } (16 bytes).</summary>
    public int ElfSymSize => P == 8 ? 24 : 16;
    /// <summary>The BTF name of the symbol struct (elf64_sym / elf32_sym), under which the report lists its members.</summary>
    public string ElfSymStruct => P == 8 ? "elf64_sym" : "elf32_sym";
    public int ElfSymName => 0;
    public int ElfSymValue => P == 8 ? 8 : 4;
    /// <summary>struct module { ... const struct kernel_symbol *syms; const s32 *crcs; [const u8 *flagstab; (7.0+)] unsigned int num_syms; }.</summary>
    public int KernelSymbolNumAfterSyms => 2 * P;
    public int KernelSymbolNumAfterSymsWithFlags => 3 * P;
    /// <summary>struct module { ... unsigned long taints; unsigned num_bugs; struct list_head bug_list; struct bug_entry *bug_table;
    /// struct mod_kallsyms *kallsyms; ... } (CONFIG_GENERIC_BUG, which every x86 kernel with CONFIG_BUG has): kallsyms is 5
    /// words after taints (num_bugs padded to a word), bug_list 2 words after.</summary>
    public int KallsymsAfterTaints => 5 * P;
    public int BugListAfterTaints => 2 * P;
    /// <summary>struct path is { struct vfsmount *mnt; struct dentry *dentry; }.</summary>
    public int PathMnt => 0;
    public int PathDentry => P;
    /// <summary>struct mount: struct mount *mnt_parent; struct dentry *mnt_mountpoint; struct vfsmount mnt;.</summary>
    public int MountParentBeforeMnt => 2 * P;
    public int MountMountpointBeforeMnt => P;
    /// <summary>mm_struct: unsigned long start_code, end_code, start_data, end_data, start_brk, brk, start_stack, arg_start,
    /// arg_end, env_start, env_end in this order.</summary>
    public int MmEndCode => P;
    public int MmStartBrk => 4 * P;
    public int MmBrk => 5 * P;
    public int MmStartStack => 6 * P;
    public int MmBoundsCount => 11;
    /// <summary>super_block: struct list_head s_list, then dev_t s_dev.</summary>
    public int SuperBlockDev => 2 * P;

    /// <summary>
    /// Maple tree nodes are 256 bytes whatever the word size, so the slot counts follow from it
    /// (include/linux/maple_tree.h: MAPLE_RANGE64_SLOTS 16 and MAPLE_ARANGE64_SLOTS 10 with CONFIG_64BIT, 32 and 21
    /// without): maple_range_64 = { parent, pivot[S-1], slot[S] } with the metadata in the last slot,
    /// maple_arange_64 = { parent, pivot[A-1], slot[A], gap[A], meta }.
    /// </summary>
    public int MapleRangeSlots => P == 8 ? 16 : 32;
    public int MapleArangeSlots => P == 8 ? 10 : 21;
    public int MapleRangePivot => P;
    public int MapleRangeSlot => P + (MapleRangeSlots - 1) * P;
    public int MapleRangeMeta => MapleRangeSlot + (MapleRangeSlots - 1) * P;
    public int MapleArangePivot => P;
    public int MapleArangeSlot => P + (MapleArangeSlots - 1) * P;
    public int MapleArangeMeta => MapleArangeSlot + 2 * MapleArangeSlots * P;

    /// <summary>Aligns an offset down to a pointer boundary.</summary>
    public ulong AlignDown(ulong va) => va & ~(ulong)(P - 1);
}
