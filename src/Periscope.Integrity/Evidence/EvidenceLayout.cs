using Periscope.Linux.Btf;

namespace Periscope.Integrity.Evidence;

/// <summary>Offsets of one struct's members that evidence collection reads, or why the struct cannot be used.</summary>
public sealed record StructOffsets(string Struct, int Size, IReadOnlyDictionary<string, int> Members)
{
    public int this[string member] => Members[member];
}

/// <summary>
/// Every kernel layout evidence collection uses, from BTF and nothing else: jump_entry, static_call_site, dyn_ftrace,
/// ftrace_page, ftrace_ops, the module's own tables (jump_entries, static_call_sites, kallsyms), mod_kallsyms,
/// elf64_sym and vmap_area. A struct or member BTF lacks leaves its family null, and collection reports the gap.
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
    public StructOffsets? VmapArea { get; private init; }
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
            VmapArea = Read("vmap_area", "list", "va_start", "va_end"),
            Missing = missing,
        };
    }
}
