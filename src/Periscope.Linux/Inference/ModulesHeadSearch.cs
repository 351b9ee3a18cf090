using Periscope.Linux.Kallsyms;
using Periscope.Linux.Model;

namespace Periscope.Linux.Inference;

/// <summary>The `modules` list head without data symbols (CONFIG_KALLSYMS_ALL=n): found by its own structure in the kernel's data.</summary>
public sealed partial class OffsetInference
{
    /// <summary>The modules list head found by its structure (see <see cref="FindModulesHeadByStructure"/>); null when no
    /// module is loaded or nothing (or more than one list) fits, with the reason in <paramref name="why"/>.</summary>
    public static ulong? FindModulesHead(GuestReader reader, KernelSymbols symbols, Discovery.KernelLayout layout, Periscope.Memory.IntrospectionLimits limits,
        VirtualRange moduleArea, out string why)
    {
        var search = new OffsetInference(reader, symbols, layout, limits, moduleArea);
        try { return search.FindModulesHeadByStructure(out why); }
        catch (StepBudgetExhausted) { throw new KernelModelException($"modules list search stopped after {search._steps} tests (IntrospectionLimits.MaxInferenceSteps = {limits.MaxInferenceSteps})"); }
    }

    /// <summary>
    /// A list_head in the kernel image between _etext and __init_begin (rodata and .data, where LIST_HEAD(modules) lives)
    /// whose next pointer leads into the module area to a node whose prev points back to it, and which cycles back to
    /// itself through nodes that are all in the module area, each preceded by a module_state (0..3) and followed by a
    /// [a-z0-9_]+ name. Exactly one such head must exist; several are reported as ambiguous.
    /// </summary>
    private ulong? FindModulesHeadByStructure(out string why)
    {
        if (!_symbols.TryGetAddress("_etext", out ulong from) || !_symbols.TryGetAddress("__init_begin", out ulong to) || to <= from
            || to - from > (ulong)_limits.MaxKernelImageBytes)
        {
            why = "kallsyms has no _etext..__init_begin range to search for the modules list head";
            return null;
        }
        from = _w.AlignDown(from + (ulong)_p - 1);
        var found = new List<ulong>();
        const int Chunk = 1 << 20;
        var buffer = new byte[Chunk];
        for (ulong at = from; at < to; at += Chunk)
        {
            int length = (int)Math.Min((ulong)Chunk, to - at);
            Step(length / 4096 + 1);
            var span = buffer.AsSpan(0, length);
            if (_r.Space.Physical.Read(_layout.ImageVaToPa(at), span) != length) break;
            for (int i = 0; i + _p <= length; i += _p)
            {
                ulong next = _p == 8 ? System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(span[i..]) : System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(span[i..]);
                if (!_moduleArea.Contains(next)) continue;
                ulong head = at + (ulong)i;
                Step();
                if (Ptr(next + (ulong)_w.ListHeadPrev) != head || found.Contains(head)) continue;
                if (IsModuleList(head)) found.Add(head);
            }
        }
        if (found.Count == 1) { why = ""; return found[0]; }
        why = found.Count == 0
            ? "no list_head between _etext and __init_begin cycles through module-area nodes shaped like struct module (no module loaded?)"
            : $"{found.Count} list heads fit ({string.Join(", ", found.Take(4).Select(a => $"0x{a:x}"))}): ambiguous";
        return null;
    }

    private bool IsModuleList(ulong head)
    {
        var modules = WalkThreadList(head, _w.ModuleListOffset, null);
        if (modules is not { Count: > 0 } || !modules.All(m => _moduleArea.Contains(m))) return false;
        var windows = new List<byte[]>();
        foreach (ulong m in modules.Take(_limits.MaxInferenceSamples))
        {
            if (StructWindow(m) is not { } w || I32(w, 0) is < StructuralFacts.ModuleStateLive or > StructuralFacts.ModuleStateUnformed) return false;
            windows.Add(w);
        }
        // struct module { enum module_state state; struct list_head list; char name[MODULE_NAME_LEN]; ... }: the name right
        // after the list. Another global list through every module (module_bug_list through mod->bug_list) passes the
        // rest, with the name elsewhere relative to its node.
        int name = _w.ModuleListOffset + 2 * _p;
        Step(windows.Count);
        return name + _w.ModuleNameLength <= _structBytes && windows.All(w => IsModuleName(w.AsSpan(name, _w.ModuleNameLength)));
    }
}
