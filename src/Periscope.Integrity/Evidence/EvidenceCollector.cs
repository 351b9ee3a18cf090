using System.Buffers.Binary;
using Periscope.Linux;
using Periscope.Linux.Bpf;

namespace Periscope.Integrity.Evidence;

/// <summary>
/// Reads an <see cref="EvidenceSnapshot"/> from a kernel: the kernel's and every module's jump-label and static-call
/// tables, ftrace's records and registered ops, the ftrace entry code's patch sites, modules (listed and hidden) and
/// their own symbol tables. Every count is capped before anything is allocated; what cannot be read becomes an
/// <see cref="EvidenceGap"/>, never an exception.
/// </summary>
public sealed class EvidenceCollector
{
    /// <summary>ELF symbol type of a function (STT_FUNC, low nibble of st_info): an ELF constant, not a kernel layout.</summary>
    private const int ElfFunctionType = 2;
    /// <summary>Module symbol names longer than this are cut when read (KSYM_NAME_LEN is 512 since 6.1).</summary>
    private const int MaxSymbolName = 512;

    private readonly LinuxKernel _kernel;
    private readonly EvidenceLayout _layout;
    private readonly List<EvidenceGap> _gaps = [];
    private int _entryBudget;

    private EvidenceCollector(LinuxKernel kernel)
    {
        _kernel = kernel;
        _layout = EvidenceLayout.FromBtf(kernel.Btf!);
        _entryBudget = kernel.Limits.MaxEvidenceEntries;
    }

    /// <summary>With BTF, every family through one BTF-derived layout; without it (offsets inferred), see <see cref="WithoutBtf"/>.</summary>
    public static EvidenceSnapshot Collect(LinuxKernel kernel) => kernel.Btf is null ? WithoutBtf(kernel) : new EvidenceCollector(kernel).Run();

    /// <summary>
    /// Without BTF the model still has the listed modules (inferred struct module) and every code symbol (kallsyms text
    /// symbols; each module's own symbols through the inferred module.kallsyms), so hooks and patches are attributed to
    /// their owner. The allow-list tables need what inference does not give: their bounds are data symbols
    /// (__start___jump_table, __start_static_call_sites, ftrace_pages_start, ftrace_ops_list) and their
    /// entry layouts come from BTF; each is a gap with that reason, so verify stays incomplete rather than judging code
    /// changes it has no record of.
    /// </summary>
    private static EvidenceSnapshot WithoutBtf(LinuxKernel kernel)
    {
        var gaps = new List<EvidenceGap>();
        var s = kernel.Symbols;
        ulong textStart = 0, textEnd = 0;
        if (s.TryGetAddress("_stext", out ulong ts) && s.TryGetAddress("_etext", out ulong te) && te > ts
            && te - ts <= kernel.Limits.MaxKernelRegionBytes) (textStart, textEnd) = (ts, te);
        else gaps.Add(new(EvidenceFamily.Symbols, $"kernel text [_stext, _etext) missing or larger than {kernel.Limits.MaxKernelRegionBytes} bytes"));

        var listed = kernel.Modules.Where(m => m.Base != 0).ToList();
        var modules = listed.Select(m => new ModuleEvidence(m.Address, m.Name, m.Base, m.Size, m.TextSize ?? 0, Hidden: false)).ToList();
        foreach (var h in ModuleAreaScanner.FindHidden(kernel, gaps)) // vmalloc areas through the inferred struct vmap_area
            modules.Add(new ModuleEvidence(h.Address, h.Name, h.Base, h.Size, h.TextSize, Hidden: true));
        var symbols = new List<CodeSymbol>();
        if (textEnd > textStart)
            foreach (var sym in s.All)
                if (sym.Address >= textStart && sym.Address < textEnd) symbols.Add(new CodeSymbol(sym.Address, 0, sym.Name, 0));
        ModuleCodeSymbols(kernel, modules, symbols, gaps);

        const string NoBtf = "no BTF (offsets inferred)";
        gaps.Add(new(EvidenceFamily.JumpLabels, $"{NoBtf}: the jump tables' bounds are data symbols and struct jump_entry / module.jump_entries come from BTF"));
        gaps.Add(new(EvidenceFamily.StaticCalls, $"{NoBtf}: the static-call site tables' bounds are data symbols and their layout comes from BTF"));
        gaps.Add(new(EvidenceFamily.FtraceRecords, $"{NoBtf}: ftrace_pages_start is a data symbol and struct ftrace_page / dyn_ftrace come from BTF"));
        gaps.Add(new(EvidenceFamily.FtraceOps, $"{NoBtf}: ftrace_ops_list is a data symbol and struct ftrace_ops comes from BTF"));
        gaps.Add(new(EvidenceFamily.FtraceEntry, $"{NoBtf}: ftrace's patch sites are judged with the ftrace records and ops, which are not read"));
        gaps.Add(new(EvidenceFamily.BpfTrampolines, $"{NoBtf}: BPF trampolines are read through BTF-described bpf structures"));
        return new EvidenceSnapshot
        {
            KernelTextStart = textStart, KernelTextEnd = textEnd, Modules = modules, Symbols = [.. symbols.OrderBy(x => x.Address)],
            Gaps = gaps,
        };
    }

    /// <summary>Each listed module's function symbols (type t/T) as the model reads them (the same list /proc/kallsyms
    /// prints), each sized up to the next symbol of its module or the end of the module's core: ELF sizes are not read
    /// without BTF's Elf_Sym layout, and a symbol must not reach past its module.</summary>
    private static void ModuleCodeSymbols(LinuxKernel kernel, List<ModuleEvidence> modules, List<CodeSymbol> into, List<EvidenceGap> gaps)
    {
        if (kernel.Offsets.ModuleSymbols is null)
        {
            gaps.Add(new(EvidenceFamily.Symbols, "module symbols: module.kallsyms and its symbol table were not inferred"));
            return;
        }
        var all = Periscope.Linux.Model.ModuleSymbols.Read(kernel);
        foreach (var group in all.GroupBy(x => x.Module))
        {
            var owners = modules.Where(m => m.Name == group.Key).ToList();
            var starts = group.Select(x => x.Address).Where(a => owners.Any(m => m.Contains(a))).Distinct().Order().ToArray();
            foreach (var sym in group)
            {
                if (sym.Type is not ('t' or 'T')) continue;
                var owner = owners.FirstOrDefault(m => m.Contains(sym.Address));
                if (owner is null) continue;
                int next = Array.BinarySearch(starts, sym.Address) + 1;
                ulong end = next > 0 && next < starts.Length ? Math.Min(starts[next], owner.Base + owner.Size) : owner.Base + owner.Size;
                into.Add(new CodeSymbol(sym.Address, Math.Max(1, end - sym.Address), sym.Name, owner.Address));
            }
        }
    }

    private EvidenceSnapshot Run()
    {
        var s = _kernel.Symbols;
        ulong textStart = 0, textEnd = 0;
        if (s.TryGetAddress("_stext", out ulong ts) && s.TryGetAddress("_etext", out ulong te) && te > ts
            && te - ts <= _kernel.Limits.MaxKernelRegionBytes) (textStart, textEnd) = (ts, te);
        else _gaps.Add(new(EvidenceFamily.Symbols, $"kernel text [_stext, _etext) missing or larger than {_kernel.Limits.MaxKernelRegionBytes} bytes"));

        var modules = _kernel.Modules.Select(m => new ModuleEvidence(m.Address, m.Name, m.Base, m.Size, m.TextSize ?? 0, Hidden: false)).ToList();
        foreach (var h in ModuleAreaScanner.FindHidden(_kernel, _gaps))
            modules.Add(new ModuleEvidence(h.Address, h.Name, h.Base, h.Size, h.TextSize, Hidden: true));

        var symbols = new List<CodeSymbol>();
        if (textEnd > textStart)
            foreach (var sym in s.All)
                if (sym.Address >= textStart && sym.Address < textEnd) symbols.Add(new CodeSymbol(sym.Address, 0, sym.Name, 0));
        var jumps = new List<JumpEntry>();
        var staticCalls = new List<ulong>();
        if (s.TryGetAddress("__start___jump_table", out ulong js) && s.TryGetAddress("__stop___jump_table", out ulong je) && je >= js)
            ReadJumpEntries(js, je - js, jumps, "kernel");
        else _gaps.Add(new(EvidenceFamily.JumpLabels, "__start___jump_table/__stop___jump_table not found"));
        if (s.TryGetAddress("__start_static_call_sites", out ulong ss) && s.TryGetAddress("__stop_static_call_sites", out ulong se) && se >= ss)
            ReadStaticCallSites(ss, se - ss, staticCalls, "kernel");
        else _gaps.Add(new(EvidenceFamily.StaticCalls, "__start_static_call_sites/__stop_static_call_sites not found"));

        foreach (var m in modules) ReadModuleTables(m, jumps, staticCalls, symbols);

        return new EvidenceSnapshot
        {
            KernelTextStart = textStart, KernelTextEnd = textEnd, Modules = modules,
            Symbols = [.. symbols.OrderBy(x => x.Address)], JumpEntries = jumps, StaticCallSites = staticCalls,
            FtraceSites = ReadFtraceRecords(), FtraceOps = ReadFtraceOps(),
            FtraceEntryCode = Ranges(("ftrace_caller", "ftrace_caller_end"), ("ftrace_regs_caller", "ftrace_regs_caller_end")),
            FtracePatchSites = PatchSites(("ftrace_call", FtracePatchKind.Call), ("ftrace_regs_call", FtracePatchKind.Call), ("ftrace_graph_call", FtracePatchKind.GraphJump)),
            FtraceDispatchTargets = Addresses("ftrace_stub", "ftrace_ops_list_func", "arch_ftrace_ops_list_func", "ftrace_ops_assist_func", "ftrace_ops_no_ops"),
            FtraceGraphTargets = Addresses("ftrace_graph_caller", "ftrace_stub", "ftrace_stub_graph"),
            BpfTrampolines = ReadBpfTrampolines(),
            Gaps = _gaps,
        };
    }

    private bool Budget(ulong count, EvidenceFamily family, string owner)
    {
        if (count <= (ulong)_entryBudget) { _entryBudget -= (int)count; return true; }
        _gaps.Add(new(family, $"{owner}: {count} entries exceed the remaining evidence budget ({_entryBudget} of {_kernel.Limits.MaxEvidenceEntries})"));
        return false;
    }

    /// <summary>Reads count × size bytes at <paramref name="va"/>, or null (and a gap) when the table is unreadable.</summary>
    private byte[]? ReadTable(ulong va, ulong count, int size, EvidenceFamily family, string owner)
    {
        if (count == 0) return [];
        if (size <= 0 || !Budget(count, family, owner)) return null;
        var buffer = new byte[count * (ulong)size];
        if (_kernel.KernelSpace.Read(va, buffer) == buffer.Length) return buffer;
        _gaps.Add(new(family, $"{owner}: table of {count} entries at 0x{va:x} is not fully mapped"));
        return null;
    }

    private static ulong Relative(ulong field, ReadOnlySpan<byte> entry, int offset) =>
        field + (ulong)(long)BinaryPrimitives.ReadInt32LittleEndian(entry[offset..]);

    private void ReadJumpEntries(ulong start, ulong bytes, List<JumpEntry> into, string owner)
    {
        if (_layout.JumpEntry is not { } je) { _gaps.Add(new(EvidenceFamily.JumpLabels, "struct jump_entry not in BTF")); return; }
        ulong count = bytes / (ulong)je.Size;
        if (ReadTable(start, count, je.Size, EvidenceFamily.JumpLabels, owner + " jump table") is not { } table) return;
        int code = je["code"], target = je["target"];
        for (int i = 0; i < (int)count; i++)
        {
            ulong entry = start + (ulong)i * (ulong)je.Size;
            var e = table.AsSpan(i * je.Size, je.Size);
            into.Add(new JumpEntry(Relative(entry + (ulong)code, e, code), Relative(entry + (ulong)target, e, target)));
        }
    }

    private void ReadStaticCallSites(ulong start, ulong bytes, List<ulong> into, string owner)
    {
        if (_layout.StaticCallSite is not { } sc) { _gaps.Add(new(EvidenceFamily.StaticCalls, "struct static_call_site not in BTF")); return; }
        ulong count = bytes / (ulong)sc.Size;
        if (ReadTable(start, count, sc.Size, EvidenceFamily.StaticCalls, owner + " static-call sites") is not { } table) return;
        int addr = sc["addr"];
        for (int i = 0; i < (int)count; i++)
            into.Add(Relative(start + (ulong)i * (ulong)sc.Size + (ulong)addr, table.AsSpan(i * sc.Size, sc.Size), addr));
    }

    private void ReadModuleTables(ModuleEvidence m, List<JumpEntry> jumps, List<ulong> staticCalls, List<CodeSymbol> symbols)
    {
        var r = _kernel.Reader;
        string owner = $"module {m.Name} (0x{m.Address:x})";
        if (_layout.ModuleTables is not { } mt) { _gaps.Add(new(EvidenceFamily.JumpLabels, $"{owner}: struct module tables not in BTF")); return; }
        if (r.TryPointer(m.Address + (ulong)mt["jump_entries"], out ulong jt) && r.TryU32(m.Address + (ulong)mt["num_jump_entries"], out uint jn))
        {
            if (jn > 0 && _layout.JumpEntry is { } je) ReadJumpEntries(jt, jn * (ulong)je.Size, jumps, owner);
        }
        else _gaps.Add(new(EvidenceFamily.JumpLabels, $"{owner}: jump_entries unreadable"));
        if (r.TryPointer(m.Address + (ulong)mt["static_call_sites"], out ulong st) && r.TryU32(m.Address + (ulong)mt["num_static_call_sites"], out uint sn))
        {
            if (sn > 0 && _layout.StaticCallSite is { } sc) ReadStaticCallSites(st, sn * (ulong)sc.Size, staticCalls, owner);
        }
        else _gaps.Add(new(EvidenceFamily.StaticCalls, $"{owner}: static_call_sites unreadable"));
        ReadModuleSymbols(m, mt["kallsyms"], symbols);
    }

    /// <summary>A module's own symbol table (mod->kallsyms: symtab, num_symtab, strtab): functions inside its core,
    /// which also names the code of a module that hid itself from the list.</summary>
    private void ReadModuleSymbols(ModuleEvidence m, int kallsymsOffset, List<CodeSymbol> into)
    {
        if (_layout.ModuleKallsyms is not { } mk || _layout.ElfSymbol is not { } es) { _gaps.Add(new(EvidenceFamily.Symbols, "struct mod_kallsyms or elf64_sym not in BTF")); return; }
        var r = _kernel.Reader;
        string owner = $"module {m.Name} symbols";
        if (!r.TryPointer(m.Address + (ulong)kallsymsOffset, out ulong ks) || ks == 0
            || !r.TryPointer(ks + (ulong)mk["symtab"], out ulong symtab) || !r.TryU32(ks + (ulong)mk["num_symtab"], out uint count)
            || !r.TryPointer(ks + (ulong)mk["strtab"], out ulong strtab))
        {
            _gaps.Add(new(EvidenceFamily.Symbols, $"{owner}: mod_kallsyms unreadable"));
            return;
        }
        if (count > _kernel.Limits.MaxModuleSymbols)
        {
            _gaps.Add(new(EvidenceFamily.Symbols, $"{owner}: {count} symbols exceed the limit of {_kernel.Limits.MaxModuleSymbols}"));
            return;
        }
        if (ReadTable(symtab, count, es.Size, EvidenceFamily.Symbols, owner) is not { } table) return;
        for (int i = 0; i < (int)count; i++)
        {
            var e = table.AsSpan(i * es.Size, es.Size);
            if ((e[es["st_info"]] & 0xf) != ElfFunctionType) continue;
            ulong value = BinaryPrimitives.ReadUInt64LittleEndian(e[es["st_value"]..]);
            ulong size = BinaryPrimitives.ReadUInt64LittleEndian(e[es["st_size"]..]);
            if (!m.Contains(value) || size == 0 || size > m.Size) continue;
            uint name = BinaryPrimitives.ReadUInt32LittleEndian(e[es["st_name"]..]);
            string? text = r.ReadCString(strtab + name, MaxSymbolName);
            if (text is { Length: > 0 }) into.Add(new CodeSymbol(value, size, text, m.Address));
        }
    }

    /// <summary>dyn_ftrace records: ftrace_pages_start → ftrace_page{next, records, index}, each record's ip.</summary>
    private List<ulong> ReadFtraceRecords()
    {
        var sites = new List<ulong>();
        if (_layout.FtracePage is not { } fp || _layout.DynFtrace is not { } df) { _gaps.Add(new(EvidenceFamily.FtraceRecords, "struct ftrace_page or dyn_ftrace not in BTF")); return sites; }
        var r = _kernel.Reader;
        if (!_kernel.Symbols.TryGetAddress("ftrace_pages_start", out ulong startVar) || !r.TryPointer(startVar, out ulong page))
        {
            _gaps.Add(new(EvidenceFamily.FtraceRecords, "ftrace_pages_start not found or unreadable"));
            return sites;
        }
        var seen = new HashSet<ulong>();
        for (int n = 0; page != 0; n++)
        {
            if (n >= _kernel.Limits.MaxFtraceNodes || !seen.Add(page))
            {
                _gaps.Add(new(EvidenceFamily.FtraceRecords, n >= _kernel.Limits.MaxFtraceNodes ? $"more than {_kernel.Limits.MaxFtraceNodes} ftrace pages" : $"ftrace page list loops at 0x{page:x}"));
                break;
            }
            if (!r.TryPointer(page + (ulong)fp["records"], out ulong records) || !r.TryI32(page + (ulong)fp["index"], out int index) || index < 0
                || !r.TryPointer(page + (ulong)fp["next"], out ulong next))
            {
                _gaps.Add(new(EvidenceFamily.FtraceRecords, $"ftrace page at 0x{page:x} unreadable"));
                break;
            }
            if (ReadTable(records, (ulong)index, df.Size, EvidenceFamily.FtraceRecords, $"ftrace page 0x{page:x}") is { } table)
                for (int i = 0; i < index; i++)
                    sites.Add(BinaryPrimitives.ReadUInt64LittleEndian(table.AsSpan(i * df.Size + df["ip"])));
            page = next;
        }
        return sites;
    }

    /// <summary>Registered ftrace_ops: ftrace_ops_list → next … until ftrace_list_end (the list's sentinel).</summary>
    private List<FtraceOpsEvidence> ReadFtraceOps()
    {
        var ops = new List<FtraceOpsEvidence>();
        if (_layout.FtraceOps is not { } fo) { _gaps.Add(new(EvidenceFamily.FtraceOps, "struct ftrace_ops not in BTF")); return ops; }
        var r = _kernel.Reader;
        if (!_kernel.Symbols.TryGetAddress("ftrace_ops_list", out ulong listVar) || !_kernel.Symbols.TryGetAddress("ftrace_list_end", out ulong end)
            || !r.TryPointer(listVar, out ulong op))
        {
            _gaps.Add(new(EvidenceFamily.FtraceOps, "ftrace_ops_list or ftrace_list_end not found or unreadable"));
            return ops;
        }
        var seen = new HashSet<ulong>();
        for (int n = 0; op != end && op != 0; n++)
        {
            if (n >= _kernel.Limits.MaxFtraceNodes || !seen.Add(op))
            {
                _gaps.Add(new(EvidenceFamily.FtraceOps, n >= _kernel.Limits.MaxFtraceNodes ? $"more than {_kernel.Limits.MaxFtraceNodes} ftrace_ops" : $"ftrace_ops list loops at 0x{op:x}"));
                break;
            }
            if (!r.TryPointer(op + (ulong)fo["func"], out ulong func) || !r.TryU64(op + (ulong)fo["trampoline"], out ulong tramp)
                || !r.TryU64(op + (ulong)fo["trampoline_size"], out ulong trampSize) || !r.TryPointer(op + (ulong)fo["next"], out ulong next))
            {
                _gaps.Add(new(EvidenceFamily.FtraceOps, $"ftrace_ops at 0x{op:x} unreadable"));
                break;
            }
            ops.Add(new FtraceOpsEvidence(op, func, tramp, trampSize));
            op = next;
        }
        return ops;
    }

    /// <summary>The kernel's bpf trampolines (the bpf views' trampoline_table walk). A kernel without the table has no
    /// trampolines to vouch for a call, which is no gap: such a call stays unexplained. Faults while walking are gaps.</summary>
    private List<BpfTrampolineEvidence> ReadBpfTrampolines()
    {
        var table = new BpfView(_kernel).ReadTrampolineTable();
        foreach (var g in table.Gaps) _gaps.Add(new(EvidenceFamily.BpfTrampolines, g));
        return [.. table.Trampolines.Select(t => new BpfTrampolineEvidence(t.Address, t.Function, t.FunctionName, t.Fops, t.Image, t.ImageSymbolStart, t.ImageSymbol,
            [.. t.Programs.Select(p => new BpfTrampolineProgramEvidence(p.Program.Id, p.Program.Name, p.Program.Tag, p.Program.TypeName, p.Kind, p.Listed) { Entry = p.Program.JitAddress })])
        {
            ImageSize = t.ImageSize,
            ImageCode = ReadTrampolineImage(t.Image, t.ImageSize),
        })];
    }

    /// <summary>The bytes of a trampoline image, capped at MaxBpfTrampolineImageBytes before allocating; as much as is
    /// mapped from the start (the judge reports an image that ends before its code does).</summary>
    private byte[] ReadTrampolineImage(ulong image, ulong size)
    {
        if (image == 0 || size == 0) return [];
        var buffer = new byte[(int)Math.Min(size, (ulong)_kernel.Limits.MaxBpfTrampolineImageBytes)];
        int read = _kernel.KernelSpace.Read(image, buffer);
        return read == buffer.Length ? buffer : buffer[..Math.Max(read, 0)];
    }

    private List<CodeRange> Ranges(params (string Start, string End)[] names)
    {
        var ranges = new List<CodeRange>();
        foreach (var (a, b) in names)
            if (_kernel.Symbols.TryGetAddress(a, out ulong s) && _kernel.Symbols.TryGetAddress(b, out ulong e) && e > s && e - s < 1 << 16)
                ranges.Add(new CodeRange(a, s, e));
            else _gaps.Add(new(EvidenceFamily.FtraceEntry, $"{a}..{b} not found"));
        return ranges;
    }

    private List<FtracePatchSite> PatchSites(params (string Name, FtracePatchKind Kind)[] names)
    {
        var sites = new List<FtracePatchSite>();
        foreach (var (n, k) in names)
            if (_kernel.Symbols.TryGetAddress(n, out ulong a)) sites.Add(new FtracePatchSite(a, n, k));
        return sites;
    }

    private List<ulong> Addresses(params string[] names)
    {
        var list = new List<ulong>();
        foreach (var n in names)
            if (_kernel.Symbols.TryGetAddress(n, out ulong a)) list.Add(a);
        return list;
    }
}
