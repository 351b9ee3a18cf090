using Periscope.Linux.Btf;
using Periscope.Linux.Model;

namespace Periscope.Integrity.Evidence;

/// <summary>Offsets of one struct's members that evidence collection reads, or why the struct cannot be used.</summary>
public sealed record StructOffsets(string Struct, int Size, IReadOnlyDictionary<string, int> Members)
{
    public int this[string member] => Members[member];
}

/// <summary>
/// Every kernel layout evidence collection uses: jump_entry, static_call_site, dyn_ftrace, ftrace_page, ftrace_ops, the
/// module's own tables (jump_entries, static_call_sites, kallsyms), mod_kallsyms and the ELF symbol, from BTF or (without
/// it) from the x86 ABI's fixed layouts and the inferred members (<see cref="FromInferred"/>). The vmalloc areas the
/// hidden-module scan walks come from KernelOffsets.Vmalloc. A member neither source has leaves its family null, and
/// collection reports the gap.
/// </summary>
public sealed class EvidenceLayout
{
    public StructOffsets? JumpEntry { get; private init; }
    public StructOffsets? StaticCallSite { get; private init; }
    public StructOffsets? DynFtrace { get; private init; }
    public StructOffsets? FtracePage { get; private init; }
    public StructOffsets? FtraceOps { get; private init; }
    public StructOffsets? ModuleTables { get; private init; }
    public StructOffsets? ModuleKallsyms { get; private init; }
    public StructOffsets? ElfSymbol { get; private init; }
    public IReadOnlyList<string> Missing { get; private init; } = [];

    public static EvidenceLayout FromBtf(BtfTypes btf)
    {
        var missing = new List<string>();
        StructOffsets? Read(string name, params string[] members)
        {
            try
            {
                var s = btf.FindStruct(name);
                if (s is null) { missing.Add($"struct {name} not in BTF"); return null; }
                var map = new Dictionary<string, int>();
                foreach (var m in members)
                {
                    if (!s.HasMember(m)) { missing.Add($"struct {name} has no member {m} in BTF"); return null; }
                    long off = s.Offset(m);
                    if (off < 0 || off >= s.Size) { missing.Add($"struct {name}.{m} at offset {off} lies outside its {s.Size} bytes"); return null; }
                    map[m] = (int)off;
                }
                return new StructOffsets(name, s.Size, map);
            }
            catch (BtfFormatException e)
            {
                missing.Add($"struct {name}: {e.Message}");
                return null;
            }
        }
        return new EvidenceLayout
        {
            JumpEntry = Read("jump_entry", "code", "target"),
            StaticCallSite = Read("static_call_site", "addr"),
            DynFtrace = Read("dyn_ftrace", "ip"),
            FtracePage = Read("ftrace_page", "next", "records", "index"),
            FtraceOps = Read("ftrace_ops", "func", "next", "trampoline", "trampoline_size"),
            ModuleTables = Read("module", "jump_entries", "num_jump_entries", "static_call_sites", "num_static_call_sites", "kallsyms"),
            ModuleKallsyms = Read("mod_kallsyms", "symtab", "num_symtab", "strtab"),
            ElfSymbol = Read("elf64_sym", "st_name", "st_info", "st_shndx", "st_value", "st_size"),
            Missing = missing,
        };
    }

    /// <summary>
    /// Without BTF: the entry layouts the x86 ABI fixes (<see cref="X86PatchTableAbi"/>, for the guest's word size) and the
    /// members inference found (struct module's tables and kallsyms, ftrace_ops). A member left unknown leaves its family
    /// null (or, for ftrace_ops' trampoline pair, absent from <see cref="FtraceOps"/>) and collection reports the gap.
    /// i386 has no inline static calls: <see cref="StaticCallSite"/> is null there and the collector says why that is no gap.
    /// </summary>
    public static EvidenceLayout FromInferred(KernelOffsets offsets, int pointerSize)
    {
        var missing = new List<string>();
        var pt = offsets.PatchTables ?? new PatchTableOffsets();
        StructOffsets? Of(string name, int size, params (string Member, int? Offset)[] members)
        {
            var unknown = members.Where(m => m.Offset is null).Select(m => m.Member).ToList();
            if (unknown.Count > 0) { missing.Add($"{name}.{string.Join("/", unknown)} not inferred"); return null; }
            return new StructOffsets(name, size, members.ToDictionary(m => m.Member, m => m.Offset!.Value));
        }
        int p = pointerSize;
        var elf = X86PatchTableAbi.ElfSym(p);
        var ms = offsets.ModuleSymbols;
        var ops = Of("ftrace_ops", 0, ("func", pt.FtraceOpsFunc), ("next", pt.FtraceOpsNext));
        if (ops is not null && pt.FtraceOpsTrampoline is { } tr && pt.FtraceOpsTrampolineSize is { } ts)
            ops = ops with { Members = new Dictionary<string, int>(ops.Members) { ["trampoline"] = tr, ["trampoline_size"] = ts } };
        var moduleMembers = new List<(string, int?)> { ("jump_entries", pt.ModuleJumpEntries), ("num_jump_entries", pt.ModuleNumJumpEntries), ("kallsyms", ms?.Kallsyms) };
        if (p == 8) moduleMembers.AddRange([("static_call_sites", pt.ModuleStaticCallSites), ("num_static_call_sites", pt.ModuleNumStaticCallSites)]);
        return new EvidenceLayout
        {
            JumpEntry = new StructOffsets("jump_entry", X86PatchTableAbi.JumpEntrySize(p),
                new Dictionary<string, int> { ["code"] = X86PatchTableAbi.JumpEntryCode, ["target"] = X86PatchTableAbi.JumpEntryTarget }),
            StaticCallSite = p == 8 ? new StructOffsets("static_call_site", X86PatchTableAbi.StaticCallSiteSize,
                new Dictionary<string, int> { ["addr"] = X86PatchTableAbi.StaticCallSiteAddr }) : null,
            DynFtrace = new StructOffsets("dyn_ftrace", X86PatchTableAbi.DynFtraceSize(p), new Dictionary<string, int> { ["ip"] = X86PatchTableAbi.DynFtraceIp }),
            FtracePage = new StructOffsets("ftrace_page", X86PatchTableAbi.FtracePageSize(p), new Dictionary<string, int>
            {
                ["next"] = X86PatchTableAbi.FtracePageNext, ["records"] = X86PatchTableAbi.FtracePageRecords(p), ["index"] = X86PatchTableAbi.FtracePageIndex(p),
            }),
            FtraceOps = ops,
            ModuleTables = Of("module", 0, [.. moduleMembers]),
            ModuleKallsyms = ms is null ? Of("mod_kallsyms", 0, ("symtab", null)) : new StructOffsets("mod_kallsyms", 0,
                new Dictionary<string, int> { ["symtab"] = ms.Symtab, ["num_symtab"] = ms.NumSymtab, ["strtab"] = ms.Strtab }),
            ElfSymbol = new StructOffsets(elf.Struct, elf.Size, new Dictionary<string, int>
            {
                ["st_name"] = elf.Name, ["st_info"] = elf.Info, ["st_value"] = elf.Value, ["st_size"] = elf.SymbolSize,
            }),
            Missing = missing,
        };
    }
}
