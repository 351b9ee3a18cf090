using Periscope.Linux.Model;
using Periscope.X86;

namespace Periscope.Linux.Inference;

/// <summary>
/// Rules for the integrity evidence's own members: struct module's jump-label and static-call tables and the ftrace_ops
/// members (func, next, trampoline, trampoline_size). Entry layouts are fixed by the x86 ABI (<see cref="X86PatchTableAbi"/>);
/// where struct module and struct ftrace_ops keep them depends on the config, so they are found from the data.
/// </summary>
public sealed partial class OffsetInference
{
    private void InferModulePatchTables(ModuleEvidence ev, List<(ulong Address, byte[] W)> modules)
    {
        if (ev.CoreLayout is null && ev.MemLayout is null)
        {
            foreach (var m in (ReadOnlySpan<string>)["jump_entries", "num_jump_entries", "static_call_sites", "num_static_call_sites"])
                _report.AddUnknown("module", m, "needs the module layout (each module's text bounds)");
            return;
        }
        int from = _w.ModuleListOffset + 2 * _p;
        int jumpSize = X86PatchTableAbi.JumpEntrySize(_p);
        var jumps = new List<int>();
        for (int k = from; k + _p + 4 <= _structBytes; k += _p)
        {
            Step(modules.Count);
            if (InModuleMemory(ev, k)) continue;
            if (TableFits(ev, modules, k, k + _p, jumpSize, X86PatchTableAbi.JumpEntryCode, X86PatchTableAbi.JumpEntryKey, IsJumpLabelSite, X86PatchTableAbi.JumpEntryTarget)) jumps.Add(k);
        }
        int? j = _report.Add("module", "jump_entries", jumps,
            $"pointer NULL exactly when the u32 after it (num_jump_entries) is 0, else into the module area, to {jumpSize}-byte jump_entry records whose "
            + "place-relative code lies in the module area (in its own text for some entry of some module, each such starting a jmp or NOP, with its target in that text) and whose key is a kernel address; some module has jump labels");
        if (j is { } jo) _report.AddStructural("module", "num_jump_entries", jo + _p, "unsigned int declared right after jump_entries (checked with it)");
        else _report.AddUnknown("module", "num_jump_entries", "needs module.jump_entries");

        // CONFIG_HAVE_STATIC_CALL_INLINE (x86-64 only): { int num_static_call_sites; struct static_call_site *static_call_sites; },
        // the count right before the pointer or one padded word before it.
        var calls = new List<int>();
        var countAt = new Dictionary<int, int>();
        if (_p == 8)
            for (int k = from + _p; k + _p <= _structBytes; k += _p)
            {
                Step(modules.Count);
                foreach (int gap in (ReadOnlySpan<int>)[4, _p])
                    if (TableFits(ev, modules, k, k - gap, X86PatchTableAbi.StaticCallSiteSize, X86PatchTableAbi.StaticCallSiteAddr, X86PatchTableAbi.StaticCallSiteKey, IsStaticCallSite)) { calls.Add(k); countAt[k] = k - gap; break; }
            }
        string? fromCode = null;
        if (_p == 8 && calls.Count == 0)
            foreach (var pair in StaticCallSitesFromCode(modules, out fromCode)) { calls.Add(pair.Pointer); countAt[pair.Pointer] = pair.Count; }
        int? s = fromCode is not null ? _report.Add("module", "static_call_sites", calls, fromCode) : _report.Add("module", "static_call_sites", calls,
            _p == 8 ? "pointer NULL exactly when the int before it (num_static_call_sites) is 0, else into the module area, to 8-byte static_call_site records whose "
            + "place-relative addr lies in the module area (in its own text for some entry of some module, each such starting a call, jmp, NOP, ret or xor) and whose key is a kernel address; some module has inline static calls"
            : "i386 has no inline static calls (HAVE_STATIC_CALL_INLINE is x86-64 only): the member does not exist");
        if (s is { } so) _report.AddStructural("module", "num_static_call_sites", countAt[so], "int declared right before static_call_sites (checked with it)");
        else _report.AddUnknown("module", "num_static_call_sites", "needs module.static_call_sites");
    }

    /// <summary>No loaded module has inline static calls, so the data cannot place the NULL/0 pair: the code that reads
    /// it can (<see cref="StaticCallSitesCode"/>). A pair is kept when every module holds NULL and 0 there together.</summary>
    private List<(int Pointer, int Count)> StaticCallSitesFromCode(List<(ulong Address, byte[] W)> modules, out string? rule)
    {
        rule = null;
        foreach (string fn in StaticCallSitesCode.Functions)
        {
            if (!_symbols.TryGetAddress(fn, out ulong at)) continue;
            var code = new byte[_limits.MaxDataFinderCodeBytes];
            Step(code.Length / 64);
            int n = _r.Read(at, code);
            if (n < 16) continue;
            var fits = StaticCallSitesCode.Pairs(code[..n], at, _structBytes)
                .Where(x => modules.All(m => x.Pointer + _p <= m.W.Length && (Word(m.W, x.Pointer) == 0) == (U32(m.W, x.Count) == 0)
                    && (Word(m.W, x.Pointer) == 0 || _moduleArea.Contains(Word(m.W, x.Pointer))))).ToList();
            rule = $"no loaded module has inline static calls; {fn}'s code loads a pointer at d and an int at d - 4 or d - 8 from the module "
                + $"({string.Join(", ", fits.Select(x => $"0x{x.Pointer:x}/0x{x.Count:x}"))} fit every module: NULL exactly when the count is 0)";
            return fits;
        }
        return [];
    }

    /// <summary>Whether a (table pointer, u32 count) pair at these offsets fits every module: NULL exactly when the count is
    /// 0, else a table in the module area whose first entries' place-relative code addresses lie in the module area and
    /// for some module at least one of them in the module's own text (a module may have sites in its init code only), each such starting an instruction <paramref name="opcode"/> accepts (entries in
    /// init text, freed after init, are not read), each key field a kernel address (low two bits are flags); and some
    /// module has a non-empty table.</summary>
    private bool TableFits(ModuleEvidence ev, List<(ulong Address, byte[] W)> modules, int table, int count, int entrySize, int codeField, int keyField,
        Func<byte, bool> opcode, int? targetField = null)
    {
        if (count < 0 || table < 0) return false;
        bool any = false;
        foreach (var (_, w) in modules)
        {
            if (count + 4 > w.Length || table + _p > w.Length) return false;
            ulong t = Word(w, table);
            uint n = U32(w, count);
            if ((t == 0) != (n == 0)) return false;
            if (n == 0) continue;
            if (n > _limits.MaxEvidenceEntries || !_moduleArea.Contains(t)) return false;
            var (textBase, textSize) = TextOf(ev, w);
            int check = (int)Math.Min(n, (uint)_limits.MaxInferencePatchEntriesPerModule);
            var entries = new byte[check * entrySize];
            Step(check);
            if (_r.Read(t, entries) != entries.Length) return false;
            bool inText = false;
            for (int i = 0; i < check; i++)
            {
                ulong field = t + (ulong)(i * entrySize + codeField);
                int relative = I32(entries, i * entrySize + codeField);
                if (relative == 0) return false; // code at the entry itself: a zero entry, not a patch site
                ulong code = _r.Mode.Wrap(field + (ulong)(long)relative);
                ulong keyAt = t + (ulong)(i * entrySize + keyField);
                ulong key = _r.Mode.Wrap(keyAt + (ulong)(long)I32(entries, i * entrySize + keyField)) & ~3UL;
                if (!_moduleArea.Contains(code) || !IsKernel(key)) return false;
                if (code < textBase || code - textBase >= textSize) continue;
                if (!_r.TryU8(code, out byte first) || !opcode(first)) return false;
                // A jump entry's target lies in the same function: in the module's text too.
                if (targetField is { } tf && _r.Mode.Wrap(t + (ulong)(i * entrySize + tf) + (ulong)(long)I32(entries, i * entrySize + tf)) is var target
                    && (target < textBase || target - textBase >= textSize)) return false;
                inText = true;
            }
            any |= inText;
        }
        return any;
    }

    /// <summary>
    /// struct ftrace_ops { ftrace_func_t func; struct ftrace_ops *next; ... unsigned long trampoline; unsigned long
    /// trampoline_size; struct list_head list; ... }: func and next lead the struct in every kernel since 2.6.28 (checked:
    /// from ftrace_ops_list, next reaches the ftrace_list_end sentinel and every func is code); trampoline is searched:
    /// NULL exactly when trampoline_size is 0, else in the module area (arch_ftrace_update_trampoline allocates it there)
    /// with a size below 64 KiB, and some registered ops has one.
    /// </summary>
    /// <summary>ftrace_ops_list and ftrace_list_end from kallsyms, else from the code that walks them (no data symbols).</summary>
    private (ulong List, ulong End) FtraceOpsListAndEnd()
    {
        if (DataSymbol("ftrace_ops_list") is var l and not 0 && DataSymbol("ftrace_list_end") is var e and not 0) return (l, e);
        Step(_limits.MaxDataFinderCodeBytes / 64);
        return PatchTableDataSearch.FtraceOpsList(_r, _symbols, _limits) ?? (0, 0);
    }

    private void InferFtraceOps((ulong List, ulong End) ops)
    {
        var (listVar, end) = ops;
        const string S = "ftrace_ops";
        if (listVar == 0 || end == 0)
        {
            foreach (var m in (ReadOnlySpan<string>)["func", "next", "trampoline", "trampoline_size"])
                _report.AddUnknown(S, m, "needs ftrace_ops_list and ftrace_list_end");
            return;
        }
        ulong textStart = DataSymbol("_stext"), textEnd = DataSymbol("_etext");
        bool IsCode(ulong va) => va != 0 && ((va >= textStart && va < textEnd) || _moduleArea.Contains(va));
        var registered = new List<byte[]>();
        ulong op = Ptr(listVar);
        var seen = new HashSet<ulong>();
        while (op != end)
        {
            Step();
            if (registered.Count >= _limits.MaxFtraceNodes || !seen.Add(op) || SmallWindow(op) is not { } w || !IsCode(Word(w, 0)) || !IsKernel(Word(w, _p)))
            {
                foreach (var m in (ReadOnlySpan<string>)["func", "next", "trampoline", "trampoline_size"])
                    _report.AddUnknown(S, m, $"the list from ftrace_ops_list does not reach ftrace_list_end through ops {{ func (code), next }} (at 0x{op:x})");
                return;
            }
            registered.Add(w);
            op = Word(w, _p);
        }
        const string lead = "declared first and second since ftrace_ops exists; checked: from ftrace_ops_list, next reaches ftrace_list_end and every func is code";
        _report.AddStructural(S, "func", 0, lead);
        _report.AddStructural(S, "next", _p, lead);
        var candidates = new List<int>();
        for (int k = 2 * _p; k + 2 * _p <= _smallBytes && registered.Count > 0; k += _p)
        {
            Step(registered.Count);
            bool any = false, ok = true;
            foreach (var w in registered)
            {
                ulong tramp = Word(w, k), size = Word(w, k + _p);
                if ((tramp == 0) != (size == 0) || (tramp != 0 && (!_moduleArea.Contains(tramp) || size >= MaxFtraceTrampolineSize))) { ok = false; break; }
                any |= tramp != 0;
            }
            if (ok && any) candidates.Add(k);
        }
        int? t = _report.Add(S, "trampoline", candidates, registered.Count == 0
            ? "no ftrace_ops registered (ftrace_ops_list is ftrace_list_end): nothing to read, nothing to infer from"
            : "pointer NULL exactly when the word after it (trampoline_size) is 0, else in the module area with a size below 64 KiB; some registered ops has one");
        if (t is { } to) _report.AddStructural(S, "trampoline_size", to + _p, "unsigned long declared right after trampoline (checked with it)");
        else _report.AddUnknown(S, "trampoline_size", "needs ftrace_ops.trampoline");
    }

    /// <summary>A jump-label site: jmp rel8 (eb), jmp rel32 (e9), the 2-byte NOP (66 90) or the 5-byte NOP (x86-64: 0f 1f
    /// 44 00 00; i386: 3e 8d 74 26 00), as arch/x86/kernel/jump_label.c writes them.</summary>
    private static bool IsJumpLabelSite(byte first) => first is 0xeb or 0xe9 or 0x66 or 0x0f or 0x3e;

    /// <summary>An inline static-call site: call (e8), tail jmp (e9), the 5-byte NOP, ret (c3), or the 5-byte "xor eax,eax"
    /// of a NULL/return-0 target (2e 2e 2e 31 c0 in 6.1, 66 66 48 31 c0 since), as arch/x86/kernel/static_call.c writes them.</summary>
    private static bool IsStaticCallSite(byte first) => first is 0xe8 or 0xe9 or 0x0f or 0x3e or 0xc3 or 0x2e or 0x66;

    /// <summary>Inside module.mem[] (6.4+): a { base, size } entry there is a region, and MOD_RO_AFTER_INIT's base is
    /// the very address of the module's jump table, so it would pass for the table with its size as the count.</summary>
    private static bool InModuleMemory(ModuleEvidence ev, int offset) =>
        ev.MemLayout is { } l && offset >= l.Offset && offset < l.Offset + StructuralFacts.ModMemTypes * l.Stride;

    private ulong DataSymbol(string name) => _symbols.TryGetAddress(name, out ulong a) ? a : 0;

    /// <summary>An ftrace trampoline is a copy of ftrace_(regs_)caller plus a jump (a few hundred bytes); 64 KiB is not one.</summary>
    private const ulong MaxFtraceTrampolineSize = 1 << 16;
}
