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

    private EvidenceCollector(LinuxKernel kernel, EvidenceLayout layout)
    {
        _kernel = kernel;
        _layout = layout;
        _entryBudget = kernel.Limits.MaxEvidenceEntries;
        _wordSize = kernel.Reader.PointerSize;
    }

    /// <summary>The guest's pointer and unsigned long size (4 on i386).</summary>
    private readonly int _wordSize;

    /// <summary>Every family through one layout: BTF's, or without BTF the x86 ABI's fixed entry layouts and the inferred
    /// members (<see cref="EvidenceLayout.FromInferred"/>). Table bounds are data objects asked of
    /// <see cref="LinuxKernel.DataAddresses"/> (kallsyms, else found by the code that uses them).</summary>
    public static EvidenceSnapshot Collect(LinuxKernel kernel) => new EvidenceCollector(kernel,
        kernel.Btf is { } btf ? EvidenceLayout.FromBtf(btf) : EvidenceLayout.FromInferred(kernel.Offsets, kernel.Reader.PointerSize)).Run();

    private ulong Word(ReadOnlySpan<byte> b) => _wordSize == 8 ? BinaryPrimitives.ReadUInt64LittleEndian(b) : BinaryPrimitives.ReadUInt32LittleEndian(b);

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
        var data = _kernel.DataAddresses;
        if (data.TryGetAddress("__start___jump_table", out ulong js) && data.TryGetAddress("__stop___jump_table", out ulong je) && je >= js)
            ReadJumpEntries(js, je - js, jumps, "kernel");
        else _gaps.Add(new(EvidenceFamily.JumpLabels, "__start___jump_table/__stop___jump_table not found"));
        if (!HasInlineStaticCalls()) { }
        else if (data.TryGetAddress("__start_static_call_sites", out ulong ss) && data.TryGetAddress("__stop_static_call_sites", out ulong se) && se >= ss)
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
        if (_layout.ModuleTables is not { } mt) { _gaps.Add(new(EvidenceFamily.JumpLabels, $"{owner}: struct module's tables unknown: {string.Join("; ", _layout.Missing)}")); return; }
        if (r.TryPointer(m.Address + (ulong)mt["jump_entries"], out ulong jt) && r.TryU32(m.Address + (ulong)mt["num_jump_entries"], out uint jn))
        {
            if (jn > 0 && _layout.JumpEntry is { } je) ReadJumpEntries(jt, jn * (ulong)je.Size, jumps, owner);
        }
        else _gaps.Add(new(EvidenceFamily.JumpLabels, $"{owner}: jump_entries unreadable"));
        if (!HasInlineStaticCalls()) { }
        else if (!mt.Members.ContainsKey("static_call_sites")) _gaps.Add(new(EvidenceFamily.StaticCalls, $"{owner}: module.static_call_sites unknown"));
        else if (r.TryPointer(m.Address + (ulong)mt["static_call_sites"], out ulong st) && r.TryU32(m.Address + (ulong)mt["num_static_call_sites"], out uint sn))
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
            ulong value = Word(e[es["st_value"]..]);
            ulong size = Word(e[es["st_size"]..]);
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
        if (!_kernel.DataAddresses.TryGetAddress("ftrace_pages_start", out ulong startVar) || !r.TryPointer(startVar, out ulong page))
        {
            string why = _kernel.DataAddresses.WhyMissing("ftrace_pages_start");
            _gaps.Add(new(EvidenceFamily.FtraceRecords, "ftrace_pages_start not found or unreadable" + (why.Length > 0 ? $": {why}" : "")));
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
                    sites.Add(Word(table.AsSpan(i * df.Size + df["ip"])));
            page = next;
        }
        return sites;
    }

    /// <summary>Registered ftrace_ops: ftrace_ops_list → next … until ftrace_list_end (the list's sentinel).</summary>
    private List<FtraceOpsEvidence> ReadFtraceOps()
    {
        var ops = new List<FtraceOpsEvidence>();
        if (_layout.FtraceOps is not { } fo) { _gaps.Add(new(EvidenceFamily.FtraceOps, "struct ftrace_ops unknown: " + string.Join("; ", _layout.Missing))); return ops; }
        var r = _kernel.Reader;
        if (!_kernel.DataAddresses.TryGetAddress("ftrace_ops_list", out ulong listVar) || !_kernel.DataAddresses.TryGetAddress("ftrace_list_end", out ulong end)
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
            // Without BTF the trampoline pair is inferred only from an ops that has a trampoline: when none had one, each
            // reads as none, which can only leave a call into a trampoline unexplained (a finding), never excuse one.
            ulong tramp = 0, trampSize = 0;
            bool hasTrampoline = fo.Members.ContainsKey("trampoline");
            if (!r.TryPointer(op + (ulong)fo["func"], out ulong func) || !r.TryPointer(op + (ulong)fo["next"], out ulong next)
                || hasTrampoline && (!r.TryPointer(op + (ulong)fo["trampoline"], out tramp) || !r.TryULong(op + (ulong)fo["trampoline_size"], out trampSize)))
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
        if (_kernel.Btf is null) { BpfTrampolinesWithoutBtf(); return []; }
        var table = new BpfView(_kernel).ReadTrampolineTable();
        foreach (var g in table.Gaps) _gaps.Add(new(EvidenceFamily.BpfTrampolines, g));
        return [.. table.Trampolines.Select(t => new BpfTrampolineEvidence(t.Address, t.Function, t.FunctionName, t.Fops, t.Image, t.ImageSymbolStart, t.ImageSymbol,
            [.. t.Programs.Select(p => new BpfTrampolineProgramEvidence(p.Program.Id, p.Program.Name, p.Program.Tag, p.Program.TypeName, p.Kind, p.Listed) { Entry = p.Program.JitAddress })])
        {
            ImageSize = t.ImageSize,
            ImageCode = ReadTrampolineImage(t.Image, t.ImageSize),
        })];
    }

    /// <summary>
    /// Without BTF a bpf_trampoline cannot be read (its struct, the link and program structs are BTF's alone), so each
    /// present trampoline is a gap, but a kernel with none verifies: the hash tables' buckets (trampoline_table, or 7.x's
    /// trampoline_key_table and trampoline_ip_table) are plain hlist_head pointers, all NULL when no trampoline exists.
    /// The i386 BPF JIT implements no arch_prepare_bpf_trampoline (only x86-64's does), so an i386 kernel has none.
    /// </summary>
    private void BpfTrampolinesWithoutBtf()
    {
        if (_wordSize == 4) return;
        int tables = 0, used = 0;
        var buckets = new byte[BpfView.TrampolineTableSize * _wordSize];
        foreach (string name in (ReadOnlySpan<string>)["trampoline_table", "trampoline_key_table", "trampoline_ip_table"])
        {
            if (!_kernel.DataAddresses.TryGetAddress(name, out ulong table)) continue;
            tables++;
            if (_kernel.KernelSpace.Read(table, buckets) != buckets.Length)
            {
                _gaps.Add(new(EvidenceFamily.BpfTrampolines, $"no BTF: {name} at 0x{table:x} is not fully mapped"));
                return;
            }
            for (int i = 0; i < BpfView.TrampolineTableSize; i++)
                if (Word(buckets.AsSpan(i * _wordSize)) != 0) used++;
        }
        if (tables == 0 && _kernel.Symbols.TryGetAddress("bpf_trampoline_link_prog", out _))
            _gaps.Add(new(EvidenceFamily.BpfTrampolines, "no BTF: the kernel has bpf trampolines but its trampoline table was not found"));
        else if (used > 0)
            _gaps.Add(new(EvidenceFamily.BpfTrampolines, $"no BTF: {used} trampoline hash bucket(s) in use; struct bpf_trampoline and the program structs are read through BTF only"));
    }

    /// <summary>Inline static calls (CONFIG_HAVE_STATIC_CALL_INLINE, x86-64 only) exist exactly when the kernel has
    /// kernel/static_call_inline.c's static_call_init in its code symbols (without it the function is an inline stub):
    /// a kernel without them has no sites to read, which is no gap.</summary>
    private bool HasInlineStaticCalls() => _kernel.Symbols.TryGetAddress("static_call_init", out _);

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
            if (_kernel.Symbols.TryGetAddress(a, out ulong s) && (_kernel.Symbols.TryGetAddress(b, out ulong e) || NextOuterSymbol(s, out e)) && e > s && e - s < 1 << 16)
                ranges.Add(new CodeRange(a, s, e));
            else _gaps.Add(new(EvidenceFamily.FtraceEntry, $"{a}..{b} not found"));
        return ranges;
    }

    /// <summary>Labels inside ftrace_caller and ftrace_regs_caller (arch/x86/kernel/ftrace_32.S), which kallsyms lists
    /// like functions.</summary>
    private static readonly HashSet<string> FtraceInnerLabels = ["ftrace_call", "ftrace_regs_call", "ftrace_graph_call", "ftrace_stub", "ftrace_stub_graph"];

    /// <summary>i386's entry code has no *_end labels (ftrace_32.S): the code ends where the next symbol that is not one
    /// of its own inner labels starts (ftrace_regs_caller after ftrace_caller, ftrace_graph_caller after that).</summary>
    private bool NextOuterSymbol(ulong start, out ulong end)
    {
        end = ulong.MaxValue;
        foreach (var sym in _kernel.Symbols.All)
            if (sym.Address > start && sym.Address < end && !FtraceInnerLabels.Contains(sym.Name)) end = sym.Address;
        return end != ulong.MaxValue;
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
