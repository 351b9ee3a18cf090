using Periscope.Linux.Btf;

namespace Periscope.Linux.Model;

/// <summary>
/// Where struct module keeps its own jump-label and static-call tables, and the ftrace_ops members the integrity
/// evidence reads. Not fixed by any ABI (config-dependent members come before them), so from BTF or inferred from the
/// data (<see cref="Inference.OffsetInference"/>'s patch-table rules). Each member is null when unknown.
/// </summary>
public sealed record PatchTableOffsets
{
    public int? ModuleJumpEntries { get; init; }
    public int? ModuleNumJumpEntries { get; init; }
    public int? ModuleStaticCallSites { get; init; }
    public int? ModuleNumStaticCallSites { get; init; }
    public int? FtraceOpsFunc { get; init; }
    public int? FtraceOpsNext { get; init; }
    public int? FtraceOpsTrampoline { get; init; }
    public int? FtraceOpsTrampolineSize { get; init; }

    /// <summary>The same members from BTF; a member BTF lacks (CONFIG_JUMP_LABEL=n, no inline static calls) stays null.</summary>
    public static PatchTableOffsets FromBtf(BtfTypes btf)
    {
        var module = btf.FindStruct("module");
        var ops = btf.FindStruct("ftrace_ops");
        static int? Of(StructLayout? s, string member) =>
            s is not null && s.HasMember(member) && s.Offset(member) is var o && o >= 0 && o < s.Size ? (int)o : null;
        return new PatchTableOffsets
        {
            ModuleJumpEntries = Of(module, "jump_entries"), ModuleNumJumpEntries = Of(module, "num_jump_entries"),
            ModuleStaticCallSites = Of(module, "static_call_sites"), ModuleNumStaticCallSites = Of(module, "num_static_call_sites"),
            FtraceOpsFunc = Of(ops, "func"), FtraceOpsNext = Of(ops, "next"),
            FtraceOpsTrampoline = Of(ops, "trampoline"), FtraceOpsTrampolineSize = Of(ops, "trampoline_size"),
        };
    }
}

/// <summary>
/// The patch tables' entry layouts that the x86 ABI fixes, for both word sizes: the one place these constants live.
/// Sources (Linux 6.1..7.x): include/linux/jump_label.h with CONFIG_HAVE_ARCH_JUMP_LABEL_RELATIVE, which arch/x86
/// selects for i386 and x86-64 alike: struct jump_entry { s32 code; s32 target; long key; } (code and target relative
/// to their own fields; key relative, low bits flags); include/linux/static_call_types.h (CONFIG_HAVE_STATIC_CALL_INLINE,
/// x86-64 only): struct static_call_site { s32 addr; s32 key; }; include/linux/ftrace.h: struct dyn_ftrace { unsigned
/// long ip; unsigned long flags; struct dyn_arch_ftrace arch; } with x86's dyn_arch_ftrace empty; kernel/trace/ftrace.c:
/// struct ftrace_page { struct ftrace_page *next; struct dyn_ftrace *records; int index; int order; }. The ELF symbol
/// layouts are the ELF specification's. Each is checked against the data where it is used (every jump entry's code in
/// kernel or module text, every ftrace record's ip a function's patch site), and with BTF the tests compare them.
/// </summary>
public static class X86PatchTableAbi
{
    public const int JumpEntryCode = 0, JumpEntryTarget = 4, JumpEntryKey = 8;
    public static int JumpEntrySize(int pointerSize) => JumpEntryKey + pointerSize;

    public const int StaticCallSiteAddr = 0, StaticCallSiteKey = 4, StaticCallSiteSize = 8;

    public const int DynFtraceIp = 0;
    public static int DynFtraceSize(int pointerSize) => 2 * pointerSize;

    public const int FtracePageNext = 0;
    public static int FtracePageRecords(int pointerSize) => pointerSize;
    public static int FtracePageIndex(int pointerSize) => 2 * pointerSize;
    public static int FtracePageOrder(int pointerSize) => 2 * pointerSize + 4;
    public static int FtracePageSize(int pointerSize) => 2 * pointerSize + 8;

    /// <summary>Elf64_Sym { u32 st_name; u8 st_info, st_other; u16 st_shndx; u64 st_value; u64 st_size; } and
    /// Elf32_Sym { u32 st_name; u32 st_value; u32 st_size; u8 st_info, st_other; u16 st_shndx; }.</summary>
    public static (string Struct, int Size, int Name, int Info, int Value, int SymbolSize) ElfSym(int pointerSize) =>
        pointerSize == 8 ? ("elf64_sym", 24, 0, 4, 8, 16) : ("elf32_sym", 16, 0, 12, 4, 8);

}
