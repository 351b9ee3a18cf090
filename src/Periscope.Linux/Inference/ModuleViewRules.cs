using Periscope.X86;
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
        int source = refcnt - _w.RefcntAfterLists, target = source + 2 * _p;
        var set = modules.Select(m => m.Address).ToHashSet();
        int uses = 0;
        bool ok = true;
        foreach (var (m, _) in modules)
        {
            var bySource = WalkThreadList(m + (ulong)source, _w.ModuleUseSourceList, null);
            var byTarget = WalkThreadList(m + (ulong)target, _w.ModuleUseTargetList, null);
            if (bySource is null || byTarget is null) { ok = false; break; }
            foreach (ulong use in bySource) { Step(); ok &= Ptr(use + (ulong)_w.ModuleUseTarget) == m && set.Contains(Ptr(use + (ulong)_w.ModuleUseSource)); }
            foreach (ulong use in byTarget) { Step(); ok &= Ptr(use + (ulong)_w.ModuleUseSource) == m && set.Contains(Ptr(use + (ulong)_w.ModuleUseTarget)); }
            uses += bySource.Count;
            if (!ok) break;
        }
        if (!ok)
        {
            _report.AddUnknown("module", "source_list", $"the list_heads at refcnt - {_w.RefcntAfterLists} and - {_w.RefcntAfterLists - 2 * _p} are not module_use lists linking modules");
            return;
        }
        string check = uses > 0 ? $"checked: {uses} module_use entries link back (target, source)" : "no module uses another here: only the empty lists were checked";
        ev.SourceList = _report.AddStructural("module", "source_list", source, $"declared source_list, target_list, exit, refcnt; {check}");
        _report.AddStructural("module", "exit", refcnt - _p, "the function pointer before refcnt (NULL or in the module's text, see refcnt)");
        _report.AddStructural("module_use", "source_list", _w.ModuleUseSourceList, $"module_use {{ source_list, target_list, source, target }}; {check}");
        _report.AddStructural("module_use", "source", _w.ModuleUseSource, $"after the two list_heads; {check}");

        // init: the startup function, the last member before the layout (core_layout or mem[], cache-aligned: zero padding
        // may sit between). Its value is NULL or an address in the module area (init text, freed after init).
        int layout = ev.CoreLayout ?? ev.Mem ?? 0;
        var inits = new List<int>();
        for (int o = Math.Max(_w.ModuleListOffset + 2 * _p, layout - 64); o + _p <= layout; o += _p)
        {
            Step(modules.Count);
            if (modules.All(m => Word(m.W, o) is var f && (f == 0 || _moduleArea.Contains(f))) && modules.Any(m => Word(m.W, o) != 0)) inits.Add(o);
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
        var sym0 = new byte[_w.ElfSymSize];
        for (int k = _w.ModuleListOffset + 2 * _p; k + _p <= _structBytes && live.Count > 0; k += _p)
        {
            Step(live.Count);
            long c = (long)(Word(live[0].W, k) - live[0].Address);
            if (c <= 0 || c + _w.ModKallsymsBytes > _structBytes || c % _p != 0) continue;
            bool ok = true;
            foreach (var (m, w) in live)
            {
                Step();
                int at = (int)c;
                ulong symtab = Word(w, at), strtab = Word(w, at + _w.ModKallsymsStrtab), typetab = Word(w, at + _w.ModKallsymsTypetab);
                uint count = U32(w, at + _w.ModKallsymsNumSymtab);
                if (Word(w, k) != m + (ulong)c || count == 0 || count > _limits.MaxModuleSymbols
                    || !_moduleArea.Contains(symtab) || !_moduleArea.Contains(strtab) || !_moduleArea.Contains(typetab)
                    || _r.Read(symtab, sym0) != _w.ElfSymSize || sym0.AsSpan().ContainsAnyExcept((byte)0)
                    || !_r.TryU8(strtab, out byte first) || first != 0) { ok = false; break; }
            }
            if (ok) candidates.Add(k);
        }
        ev.Kallsyms = _report.Add("module", "kallsyms", candidates,
            "pointer into the module itself (core_kallsyms) in every live module, to { symtab, num_symtab, strtab, typetab } in the module area with symtab[0] the ELF null symbol and strtab[0] = 0");
        if (ev.Kallsyms is null) return;
        const string layoutRule = "mod_kallsyms { Elf_Sym *symtab; unsigned int num_symtab; char *strtab; char *typetab; } (since 4.x; checked as module.kallsyms)";
        _report.AddStructural("mod_kallsyms", "symtab", 0, layoutRule);
        _report.AddStructural("mod_kallsyms", "num_symtab", _w.ModKallsymsNumSymtab, layoutRule);
        _report.AddStructural("mod_kallsyms", "strtab", _w.ModKallsymsStrtab, layoutRule);
        _report.AddStructural("mod_kallsyms", "typetab", _w.ModKallsymsTypetab, layoutRule);
        string elf = $"{_w.ElfSymStruct} as the ELF specification fixes it";
        _report.AddStructural(_w.ElfSymStruct, "st_name", _w.ElfSymName, elf);
        _report.AddStructural(_w.ElfSymStruct, "st_value", _w.ElfSymValue, elf);
        _report.AddStructural(_w.ElfSymStruct, InferenceReport.SizeOfMember, _w.ElfSymSize, elf);

        // module.syms (EXPORT_SYMBOL table): { const struct kernel_symbol *syms; const s32 *crcs; unsigned int num_syms; }
        // before 7.0, { syms; crcs; const u8 *flagstab; num_syms } since. kernel_symbol on x86-64 holds place-relative s32
        // offsets { value_offset, name_offset, namespace_offset }. Every module: syms NULL exactly when num_syms is 0
        // (and flagstab too, in the 7.0 layout); otherwise in the module area, and its first entry names an identifier and
        // a value in the module area. Some module must export something. The wrong layout fails on an exporting module:
        // its num_syms would be the low half of a pointer, or a NULL-when-unlocked mutex word.
        var layouts = ModuleExportRule.Candidates(modules.Select(m => m.W).ToList(), _w.ModuleListOffset + 2 * _p, _w, _moduleArea, _r, _limits.MaxModuleSymbols, n => Step(n));
        var syms = layouts.Select(l => l.Syms).ToList();
        var numAfter = layouts.GroupBy(l => l.Syms).ToDictionary(g => g.Key, g => g.First().NumAfter);
        var relativeAt = layouts.GroupBy(l => l.Syms).ToDictionary(g => g.Key, g => g.First().Relative);
        ev.Syms = _report.Add("module", "syms", syms,
            $"pointer NULL exactly when num_syms (the u32 {_w.KernelSymbolNumAfterSyms} bytes later, or {_w.KernelSymbolNumAfterSymsWithFlags} after a flagstab pointer that is NULL with it: Linux 7.0+) is 0, else in the module area with a first kernel_symbol (place-relative, else absolute) naming an identifier and a module address; some module exports");
        if (ev.Syms is { } found)
        {
            int after = numAfter[found];
            _report.AddStructural("module", "num_syms", found + after,
                after == _w.KernelSymbolNumAfterSyms ? "after syms and crcs" : "after syms, crcs and flagstab (Linux 7.0+)");
            if (relativeAt[found])
            {
                const string ks = "x86 kernel_symbol (CONFIG_HAVE_ARCH_PREL32_RELOCATIONS): { int value_offset; int name_offset; int namespace_offset; }";
                _report.AddStructural("kernel_symbol", "value_offset", KernelSymbolValueOffset, ks);
                _report.AddStructural("kernel_symbol", "name_offset", KernelSymbolNameOffset, ks);
                _report.AddStructural("kernel_symbol", InferenceReport.SizeOfMember, KernelSymbolSize, ks);
            }
            else
            {
                const string ks = "kernel_symbol without PREL32 relocations: { unsigned long value; const char *name; const char *namespace; } (the place-relative form fits no module)";
                _report.AddStructural("kernel_symbol", "value", 0, ks);
                _report.AddStructural("kernel_symbol", "name", _p, ks);
                _report.AddStructural("kernel_symbol", InferenceReport.SizeOfMember, 3 * _p, ks);
            }
        }
    }
}
