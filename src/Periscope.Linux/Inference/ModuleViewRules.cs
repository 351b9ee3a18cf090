using Periscope.Linux.Model;
using static Periscope.Linux.Inference.StructuralFacts;

namespace Periscope.Linux.Inference;

/// <summary>
/// Module members for /proc as the guest shows it, without BTF: "used by" (module_use lists), [permanent] (init
/// without exit), and each module's own symbol table (mod_kallsyms) with its exports (module.syms).
/// </summary>
public sealed partial class OffsetInference
{
    private void InferModuleUse(ModuleEvidence ev, List<(ulong Address, byte[] W)> modules)
    {
        if (ev.RefCnt is not { } refcnt)
        {
            _report.AddUnknown("module", "source_list", "needs module.refcnt (declared after source_list, target_list and exit)");
            return;
        }
        // Declaration order: source_list, target_list, exit, refcnt (RefcntAfterLists). Checked on every module_use reachable
        // from any module: on b->source_list each entry's target is b and its source a module on the list; on
        // a->target_list each entry's source is a.
        int source = refcnt - RefcntAfterLists, target = source + 16;
        var set = modules.Select(m => m.Address).ToHashSet();
        int uses = 0;
        bool ok = true;
        foreach (var (m, _) in modules)
        {
            var bySource = WalkThreadList(m + (ulong)source, ModuleUseSourceList, null);
            var byTarget = WalkThreadList(m + (ulong)target, ModuleUseTargetList, null);
            if (bySource is null || byTarget is null) { ok = false; break; }
            foreach (ulong use in bySource) { Step(); ok &= Ptr(use + (ulong)ModuleUseTarget) == m && set.Contains(Ptr(use + (ulong)ModuleUseSource)); }
            foreach (ulong use in byTarget) { Step(); ok &= Ptr(use + (ulong)ModuleUseSource) == m && set.Contains(Ptr(use + (ulong)ModuleUseTarget)); }
            uses += bySource.Count;
            if (!ok) break;
        }
        if (!ok)
        {
            _report.AddUnknown("module", "source_list", $"the list_heads at refcnt - {RefcntAfterLists} and - {RefcntAfterLists - 16} are not module_use lists linking modules");
            return;
        }
        string check = uses > 0 ? $"checked: {uses} module_use entries link back (target, source)" : "no module uses another here: only the empty lists were checked";
        ev.SourceList = _report.AddStructural("module", "source_list", source, $"declared source_list, target_list, exit, refcnt; {check}");
        _report.AddStructural("module", "exit", refcnt - 8, "the function pointer before refcnt (NULL or in the module's text, see refcnt)");
        _report.AddStructural("module_use", "source_list", ModuleUseSourceList, $"module_use {{ source_list, target_list, source, target }}; {check}");
        _report.AddStructural("module_use", "source", ModuleUseSource, $"after the two list_heads; {check}");

        // init: the startup function, the last member before the layout (core_layout or mem[], cache-aligned: zero padding
        // may sit between). Its value is NULL or an address in the module area (init text, freed after init).
        int layout = ev.CoreLayout ?? ev.Mem ?? 0;
        var inits = new List<int>();
        for (int o = Math.Max(ModuleListOffset + 16, layout - 64); o + 8 <= layout; o += 8)
        {
            Step(modules.Count);
            if (modules.All(m => U64(m.W, o) is var f && (f == 0 || _moduleArea.Contains(f))) && modules.Any(m => U64(m.W, o) != 0)) inits.Add(o);
        }
        ev.Init = _report.Add("module", "init", inits, "pointer in the 64 bytes before the layout: NULL or in the module area in every module, set in some",
            c => c.Max(), "the highest (init is declared last before the layout; extable and others come before)");
    }

    private void InferModuleSymbols(ModuleEvidence ev, List<(ulong Address, byte[] W)> modules)
    {
        // module.kallsyms points to the module's own core_kallsyms (a member of struct module) once init is done:
        // mod_kallsyms { Elf64_Sym *symtab; unsigned int num_symtab; char *strtab; char *typetab; }. Checked: symtab[0]
        // is ELF's all-zero null symbol, strtab starts with the empty name, and the tables lie in the module area.
        var live = modules.Where(m => I32(m.W, 0) == ModuleStateLive).ToList();
        var candidates = new List<int>();
        var sym0 = new byte[ElfSymSize];
        for (int k = ModuleListOffset + 16; k + 8 <= _structBytes && live.Count > 0; k += 8)
        {
            Step(live.Count);
            long c = (long)(U64(live[0].W, k) - live[0].Address);
            if (c <= 0 || c + ModKallsymsBytes > _structBytes || c % 8 != 0) continue;
            bool ok = true;
            foreach (var (m, w) in live)
            {
                Step();
                int at = (int)c;
                ulong symtab = U64(w, at), strtab = U64(w, at + ModKallsymsStrtab), typetab = U64(w, at + ModKallsymsTypetab);
                uint count = U32(w, at + ModKallsymsNumSymtab);
                if (U64(w, k) != m + (ulong)c || count == 0 || count > _limits.MaxModuleSymbols
                    || !_moduleArea.Contains(symtab) || !_moduleArea.Contains(strtab) || !_moduleArea.Contains(typetab)
                    || _r.Read(symtab, sym0) != ElfSymSize || sym0.AsSpan().ContainsAnyExcept((byte)0)
                    || !_r.TryU8(strtab, out byte first) || first != 0) { ok = false; break; }
            }
            if (ok) candidates.Add(k);
        }
        ev.Kallsyms = _report.Add("module", "kallsyms", candidates,
            "pointer into the module itself (core_kallsyms) in every live module, to { symtab, num_symtab, strtab, typetab } in the module area with symtab[0] the ELF null symbol and strtab[0] = 0");
        if (ev.Kallsyms is null) return;
        const string layoutRule = "mod_kallsyms { Elf_Sym *symtab; unsigned int num_symtab; char *strtab; char *typetab; } (since 4.x; checked as module.kallsyms)";
        _report.AddStructural("mod_kallsyms", "symtab", 0, layoutRule);
        _report.AddStructural("mod_kallsyms", "num_symtab", ModKallsymsNumSymtab, layoutRule);
        _report.AddStructural("mod_kallsyms", "strtab", ModKallsymsStrtab, layoutRule);
        _report.AddStructural("mod_kallsyms", "typetab", ModKallsymsTypetab, layoutRule);
        const string elf = "Elf64_Sym as the ELF specification fixes it";
        _report.AddStructural("elf64_sym", "st_name", ElfSymName, elf);
        _report.AddStructural("elf64_sym", "st_value", ElfSymValue, elf);
        _report.AddStructural("elf64_sym", InferenceReport.SizeOfMember, ElfSymSize, elf);

        // module.syms (EXPORT_SYMBOL table): { const struct kernel_symbol *syms; const s32 *crcs; unsigned int num_syms; }
        // before 7.0, { syms; crcs; const u8 *flagstab; num_syms } since. kernel_symbol on x86-64 holds place-relative s32
        // offsets { value_offset, name_offset, namespace_offset }. Every module: syms NULL exactly when num_syms is 0
        // (and flagstab too, in the 7.0 layout); otherwise in the module area, and its first entry names an identifier and
        // a value in the module area. Some module must export something. The wrong layout fails on an exporting module:
        // its num_syms would be the low half of a pointer, or a NULL-when-unlocked mutex word.
        var syms = new List<int>();
        var numAfter = new Dictionary<int, int>();
        foreach (int after in (ReadOnlySpan<int>)[KernelSymbolNumAfterSyms, KernelSymbolNumAfterSymsWithFlags])
        {
            for (int s = ModuleListOffset + 16; s + after + 4 <= _structBytes; s += 8)
            {
                Step(modules.Count);
                if (ExportTableFits(modules, s, after)) { syms.Add(s); numAfter[s] = after; }
            }
        }
        ev.Syms = _report.Add("module", "syms", syms,
            "pointer NULL exactly when num_syms (the u32 16 bytes later, or 24 after a flagstab pointer that is NULL with it: Linux 7.0+) is 0, else in the module area with a first kernel_symbol (place-relative) naming an identifier and a module address; some module exports");
        if (ev.Syms is { } found)
        {
            int after = numAfter[found];
            _report.AddStructural("module", "num_syms", found + after,
                after == KernelSymbolNumAfterSyms ? "after syms and crcs" : "after syms, crcs and flagstab (Linux 7.0+)");
            const string ks = "x86-64 kernel_symbol (CONFIG_HAVE_ARCH_PREL32_RELOCATIONS): { int value_offset; int name_offset; int namespace_offset; }";
            _report.AddStructural("kernel_symbol", "value_offset", KernelSymbolValueOffset, ks);
            _report.AddStructural("kernel_symbol", "name_offset", KernelSymbolNameOffset, ks);
            _report.AddStructural("kernel_symbol", InferenceReport.SizeOfMember, KernelSymbolSize, ks);
        }
    }

    private bool ExportTableFits(List<(ulong Address, byte[] W)> modules, int s, int numAfter)
    {
        bool any = false;
        foreach (var (_, w) in modules)
        {
            ulong table = U64(w, s);
            uint count = U32(w, s + numAfter);
            if ((table == 0) != (count == 0) || count > _limits.MaxModuleSymbols) return false;
            if (numAfter == KernelSymbolNumAfterSymsWithFlags)
            {
                ulong flags = U64(w, s + 16);
                if ((flags == 0) != (count == 0) || (flags != 0 && !_moduleArea.Contains(flags))) return false;
            }
            if (table == 0) continue;
            any = true;
            if (!_moduleArea.Contains(table) || !_r.TryI32(table + (ulong)KernelSymbolValueOffset, out int dv) || !_r.TryI32(table + (ulong)KernelSymbolNameOffset, out int dn)
                || !_moduleArea.Contains(table + (ulong)KernelSymbolValueOffset + (ulong)(long)dv)
                || _r.ReadCString(table + (ulong)KernelSymbolNameOffset + (ulong)(long)dn, 128) is not { Length: > 0 } name || !IsIdentifier(name)) return false;
        }
        return any;
    }

    private static bool IsIdentifier(string s)
    {
        foreach (char c in s) if (!(char.IsAsciiLetterOrDigit(c) || c == '_')) return false;
        return true;
    }
}
