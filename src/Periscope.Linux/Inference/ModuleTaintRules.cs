using Periscope.Linux.Kallsyms;
using Periscope.Linux.Model;
using Periscope.Memory;

namespace Periscope.Linux.Inference;

/// <summary>
/// The taint markers of /proc/modules without BTF: kernel/panic.c's taint_flags[] layout from the table itself, and
/// module->taints from the modules' values (<see cref="ModuleTaintRule"/>).
/// </summary>
public sealed partial class OffsetInference
{
    /// <summary>The taint_flags table as found by <see cref="InferTaintFlags"/>: its layout and the TAINT_* bits that are
    /// module flags.</summary>
    private (TaintFlagLayout Layout, ulong ModuleBits)? _taintFlags;

    /// <summary>The taint rules alone on the given struct modules (read as the search reads them), for tests:
    /// taint_flags and tainted_mask from <paramref name="symbols"/>, module.kallsyms at <paramref name="kallsyms"/> when known.</summary>
    public static InferenceReport InferModuleTaints(GuestReader reader, KernelSymbols symbols, IntrospectionLimits limits, IReadOnlyList<ulong> modules, int? kallsyms) =>
        RulesAlone(reader, symbols, limits, "module taint", search =>
        {
            search.InferTaintFlags();
            var windows = modules.Select(m => (m, search.StructWindow(m))).Where(x => x.Item2 is not null).Select(x => (x.m, x.Item2!)).ToList();
            search.InferModuleTaints(new ModuleEvidence { Kallsyms = kallsyms }, windows);
        });

    private void InferTaintFlags()
    {
        if (ModuleTaintRule.FindTable(_r, _symbols, _limits, n => Step(n)) is not { } table)
        {
            _report.AddUnknown("taint_flag", InferenceReport.SizeOfMember,
                $"needs taint_flags: not in kallsyms, and no one address the code of {string.Join(", ", ModuleTaintRule.TableUsers)} refers to fits the table");
            return;
        }
        var bytes = new byte[ModuleTaintRule.TableBytes];
        Step(bytes.Length / 64);
        int read = _r.Read(table, bytes);
        var span = bytes.AsSpan(0, Math.Max(read, 0));
        var layouts = ModuleTaintRule.Layouts(span, n => Step(n));
        const string rule = "taint_flags[] entries in TAINT_* order: c_true P F S R M B U D A W C I O E at one offset of one stride, "
            + "c_false 'G' then ' ', module 1 exactly for P F C O E (no such member since 7.x)";
        if (layouts.Count != 1)
        {
            _report.Add("taint_flag", InferenceReport.SizeOfMember, layouts.Select(l => l.Stride).Distinct().ToList(),
                layouts.Count == 0 ? $"{rule} (read {read} bytes at 0x{table:x})" : $"{rule}; {layouts.Count} layouts fit: "
                    + string.Join(", ", layouts.Select(l => $"stride {l.Stride} c_true +{l.CTrue} c_false +{l.CFalse} module {(l.Module is { } m ? $"+{m}" : "none")}")));
            return;
        }
        var found = layouts[0];
        _report.Add("taint_flag", InferenceReport.SizeOfMember, [found.Stride], rule);
        _report.Add("taint_flag", "c_true", [found.CTrue], rule);
        _report.Add("taint_flag", "c_false", [found.CFalse], rule);
        if (found.Module is { } module) _report.Add("taint_flag", "module", [module], rule);
        else _report.AddUnknown("taint_flag", "module", $"{rule}: no offset holds the module flags, so the struct has no module member (7.x: every set bit of module.taints is printed)");
        _taintFlags = (found, ModuleTaintRule.ModuleBits(span, found));
    }

    private void InferModuleTaints(ModuleEvidence ev, List<(ulong Address, byte[] W)> modules)
    {
        if (_taintFlags is not { } flags)
        {
            _report.AddUnknown("module", "taints", "needs the taint_flags layout (see taint_flag)");
            return;
        }
        // tainted_mask holds every taint the kernel took, module taints included (add_taint_module sets both); without the
        // symbol the module bits alone bound the values.
        ulong? mask = _symbols.TryGetAddress("tainted_mask", out ulong maskAt) && _r.TryPointer(maskAt, out ulong m) ? m : null;
        var windows = modules.Select(x => x.W).ToList();
        int from = _w.ModuleListOffset + 2 * _p + _w.ModuleNameLength;
        var candidates = ModuleTaintRule.Candidates(windows, from, _p, flags.ModuleBits, mask, n => Step(n), out int zeroEverywhere);
        string rule = $"unsigned long using only the module taint bits 0x{flags.ModuleBits:x} of taint_flags"
            + (mask is { } tm ? $" within tainted_mask 0x{tm:x}" : " (tainted_mask not in kallsyms)") + $" in every module, non-zero in some ({modules.Count} modules)";
        if (candidates.Count == 0)
        {
            _report.AddUnknown("module", "taints", zeroEverywhere > 0
                ? $"no listed module carries taint evidence: {zeroEverywhere} words fit and are zero in all {modules.Count} modules (taint markers not shown); rule: {rule}"
                : $"no candidate: {rule}");
            return;
        }
        // Declaration order: taints, num_bugs, bug_list, bug_table, kallsyms (KallsymsAfterTaints); checked: bug_list is a
        // list node in every module.
        var ordered = ev.Kallsyms is { } kallsyms
            ? candidates.Where(c => kallsyms - c == _w.KallsymsAfterTaints && modules.All(x => IsListNode(x.Address, x.W, c + _w.BugListAfterTaints))).ToList()
            : [];
        if (candidates.Count > 1 && ordered.Count == 1)
            _report.Add("module", "taints", candidates, rule, _ => ordered[0],
                "declared taints, num_bugs, bug_list, bug_table, kallsyms (checked: bug_list is a list node in every module)");
        else
            _report.Add("module", "taints", candidates, rule);
    }
}
