using Periscope.Linux.Model;
using static Periscope.Linux.Inference.StructuralFacts;

namespace Periscope.Linux.Inference;

/// <summary>Rules for modules, credentials and file paths.</summary>
public sealed partial class OffsetInference
{
    internal sealed class ModuleEvidence
    {
        public int? Name, CoreLayout, Mem, RefCnt, Init, SourceList, Kallsyms, Syms;
        public ModuleMemoryLayout? MemLayout;
    }

    private ModuleEvidence InferModules()
    {
        var ev = new ModuleEvidence();
        if (!_symbols.TryGetAddress("modules", out ulong head))
        {
            // No data symbols: the list head by its structure (the module rules below check it again).
            if (FindModulesHeadByStructure(out string why) is not { } found)
            {
                _report.AddUnknown("module", "name", $"needs the modules list head: not in kallsyms, and by structure: {why}");
                return ev;
            }
            head = found;
            _report.ModulesHead = head;
        }
        var modules = new List<(ulong Address, byte[] W)>();
        var walked = WalkThreadList(head, _w.ModuleListOffset, null);
        foreach (ulong m in walked ?? [])
        {
            if (modules.Count >= _limits.MaxInferenceSamples) break;
            if (StructWindow(m) is { } w) modules.Add((m, w));
        }
        _report.Modules = modules.Count;
        if (modules.Count == 0)
        {
            _report.AddUnknown("module", "name", walked is null ? "the modules list is not a proper cycle" : "no module loaded: nothing to take evidence from");
            return ev;
        }
        // The list's container offset is a declaration-order fact; checked: the word before the list is a module_state.
        bool stateOk = modules.All(m => I32(m.W, 0) is >= ModuleStateLive and <= ModuleStateUnformed);
        if (!stateOk)
        {
            _report.AddUnknown("module", "list", $"the u32 before the list_head is not a module_state in every module (struct module no longer starts with state, list?)");
            return ev;
        }
        _report.AddStructural("module", "state", 0, "first member (enum module_state); checked: 0..3 in every module");
        _report.AddStructural("module", "list", _w.ModuleListOffset, "second member, after the 4-byte state; checked as above");

        var names = new List<int>();
        for (int o = _w.ModuleListOffset + 2 * _p; o + _w.ModuleNameLength <= _structBytes; o += _p)
        {
            Step(modules.Count);
            if (modules.All(m => IsModuleName(m.W.AsSpan(o, _w.ModuleNameLength)))) names.Add(o);
        }
        ev.Name = _report.Add("module", "name", names, $"char[{_w.ModuleNameLength}] holding a NUL-terminated [a-z0-9_]+ name in every module");

        // 6.4+: struct module_memory mem[MOD_MEM_NUM_TYPES]. Tried first: its MOD_DATA entry would also pass for a core_layout.
        // (The module_memory rule reads 64-bit entries: not generalised to i386, whose Debian kernels are 6.1.)
        var memLayouts = _p != 8 ? [] : ModuleMemoryRule.Candidates(modules.Select(m => (m.Address, m.W, I32(m.W, 0) == ModuleStateLive)).ToList(), _moduleArea,
            _w.ModuleListOffset + 2 * _p, n => Step(n));
        string memRule = "mem[7] of { base; [bool is_rox;] size; [mtn.mod] }: base NULL exactly when size is 0, else in the module area; MOD_TEXT non-empty; "
            + "MOD_DATA holds the struct module; a live module's init entries empty; mtn.mod points back to the module (taken first when it fits)";
        if (memLayouts.Count > 0)
        {
            ev.Mem = _report.Add("module", "mem", memLayouts.Select(l => l.Offset).ToList(),
                memLayouts.Count == 1 ? memRule : memRule + $"; {memLayouts.Count} layouts fit: " + string.Join(", ", memLayouts.Select(l => $"mem 0x{l.Offset:x} size +{l.SizeOffset} stride {l.Stride}")));
            if (memLayouts.Count == 1)
            {
                var l = memLayouts[0];
                ev.MemLayout = l;
                _report.Add("module_memory", "size", [l.SizeOffset], "u32 after base (6.4..6.12) or after bool is_rox (6.13+): the only placement that fits, see module.mem");
                _report.Add("module_memory", InferenceReport.SizeOfMember, [l.Stride], "the mem[] stride that fits, see module.mem");
                if (l.TreeNode) _report.AddStructural("module_memory", "mtn", _w.ModMemTreeNodeMod, "struct mod_tree_node after base and size; checked: mtn.mod points back to the module");
            }
            _report.AddUnknown("module", "core_layout", "6.4+ layout (module.mem found): there is no core_layout");
            InferModuleRefcnt(ev, modules);
            return ev;
        }
        _report.AddUnknown("module", "mem", memRule + ": no layout fits (before 6.4: core_layout)");

        // core_layout (6.1..6.3): base page-aligned inside the module area, size at +8, and the struct module itself inside it.
        var cores = new List<int>();
        for (int o = 0; o + _w.LayoutRoSize + 4 <= _structBytes; o += _p)
        {
            Step(modules.Count);
            if (modules.All(m => Word(m.W, o + _w.LayoutBase) is var b && (b & 0xfff) == 0 && b >= _moduleArea.Start && b < _moduleArea.End
                && U32(m.W, o + _w.LayoutSize) is var s && s > 0 && m.Address >= b && m.Address < b + s
                && U32(m.W, o + _w.LayoutTextSize) is var t && t <= s && U32(m.W, o + _w.LayoutRoSize) is var ro && ro >= t && ro <= s))
                cores.Add(o);
        }
        ev.CoreLayout = _report.Add("module", "core_layout", cores,
            "module_layout { base, size, text_size, ro_size }: base page-aligned in the module area, text_size <= ro_size <= size, the struct module inside [base, base+size)");

        // refcnt (CONFIG_MODULE_UNLOAD): declared after source_list, target_list (list_heads: proper, or empty pointing to
        // themselves) and the exit function (NULL or in the module's text); MODULE_REF_BASE (1) plus the references.
        InferModuleRefcnt(ev, modules);
        return ev;
    }

    /// <summary>The module's text [base, base + size): core_layout's text part (6.1..6.3) or mem[MOD_TEXT] (6.4+).</summary>
    private (ulong Base, ulong Size) TextOf(ModuleEvidence ev, byte[] w)
    {
        if (ev.MemLayout is { } l)
        {
            int e = l.Offset + ModMemText * l.Stride;
            return (Word(w, e), U32(w, e + l.SizeOffset));
        }
        return (Word(w, ev.CoreLayout!.Value + _w.LayoutBase), U32(w, ev.CoreLayout.Value + _w.LayoutTextSize));
    }

    private void InferModuleRefcnt(ModuleEvidence ev, List<(ulong Address, byte[] W)> modules)
    {
        if (ev.CoreLayout is not null || ev.MemLayout is not null)
        {
            var refs = new List<int>();
            for (int r = _w.RefcntAfterLists; r + 4 <= _structBytes; r += _p)
            {
                Step(modules.Count);
                if (modules.All(m => IsListNode(m.Address, m.W, r - _w.RefcntAfterLists) && IsListNode(m.Address, m.W, r - _w.RefcntAfterLists + 2 * _p)
                    && Word(m.W, r - _p) is var exit && TextOf(ev, m.W) is var text && (exit == 0 || (exit >= text.Base && exit - text.Base < text.Size))
                    && I32(m.W, r) is >= KernelMacros.MODULE_REF_BASE and <= 1 << 20)) refs.Add(r);
            }
            ev.RefCnt = _report.Add("module", "refcnt", refs, "int >= 1 after two list_heads (source_list, target_list) and the exit function (NULL or in the module's text)");
        }
        InferModuleUse(ev, modules);
        InferModuleSymbols(ev, modules);
        InferModulePatchTables(ev, modules);
        InferModuleTaints(ev, modules);
    }

    private bool IsListNode(ulong objectAddress, byte[] w, int offset)
    {
        ulong node = objectAddress + (ulong)offset, next = Word(w, offset), prev = Word(w, offset + _p);
        if (next == node) return prev == node;
        return IsKernel(next) && IsKernel(prev) && Ptr(next + (ulong)_w.ListHeadPrev) == node;
    }

    private static bool IsModuleName(ReadOnlySpan<byte> b)
    {
        int n = b.IndexOf((byte)0);
        if (n <= 0) return false;
        foreach (byte c in b[..n]) if (!(c is >= (byte)'a' and <= (byte)'z' || c is >= (byte)'0' and <= (byte)'9' || c == '_')) return false;
        return true;
    }

    private (int Uid, int Gid, int Euid)? InferCredIds()
    {
        // The ids follow the usage counter (atomic_t, or atomic_long_t since 6.7 and its stable backports): uid at 4 or 8.
        // Which one is told by init_cred: the ids are 0, and after them and securebits come cap_inheritable (0) and
        // cap_permitted, cap_effective, cap_bset (the full set: equal, non-zero).
        if (InitCred() is not { } initCred || SmallWindow(initCred) is not { } w)
        {
            _report.AddUnknown("cred", "uid", "needs init_cred (from kallsyms, or the one init_cred-like object init_task points to)");
            return null;
        }
        var candidates = InitCredUidOffsets(w);
        if (_report.Add("cred", "uid", candidates, "after the usage counter (4 or 8 bytes): init_cred's eight ids are 0, then cap_inheritable 0 and three equal non-zero capability sets") is not { } uid)
            return null;
        _report.AddStructural("cred", "gid", uid + CredGidAfterUid, "declared right after uid");
        _report.AddStructural("cred", "euid", uid + CredEuidAfterUid, "uid, gid, suid, sgid, euid: the fifth id");
        return (uid, uid + CredGidAfterUid, uid + CredEuidAfterUid);
    }

    private ulong? _initCred;
    private bool _initCredSearched;

    /// <summary>
    /// init_cred from kallsyms; without data symbols (CONFIG_KALLSYMS_ALL=n), the one object init_task points to that has
    /// init_cred's shape (eight zero ids, then the empty inheritable and three equal full capability sets): init_task's
    /// real_cred and cred both point to it. Null when no or several objects fit.
    /// </summary>
    private ulong? InitCred()
    {
        if (_symbols.TryGetAddress("init_cred", out ulong symbol)) return symbol;
        if (_initCredSearched) return _initCred;
        _initCredSearched = true;
        if (TaskWindow(_report.InitTask) is not { } init) return null;
        var found = new HashSet<ulong>();
        for (int o = 0; o + _p <= init.Length; o += _p)
        {
            Step();
            ulong v = Word(init, o);
            if ((v & (ulong)(_p - 1)) == 0 && IsKernel(v) && SmallWindow(v) is { } w && InitCredUidOffsets(w).Count > 0) found.Add(v);
        }
        _initCred = found.Count == 1 ? found.Single() : null;
        return _initCred;
    }

    private List<int> InitCredUidOffsets(byte[] w)
    {
        var candidates = new List<int>();
        foreach (int u in new[] { 4, 8 })
        {
            // kernel_cap_t is u32[2] (4-byte aligned) before 6.3 and u64 since: the sets start right after securebits or at the next 8.
            foreach (int caps in new[] { u + CredIdsBytes, (u + CredIdsBytes + 7) & ~7 }.Distinct())
            {
                Step();
                bool idsZero = true;
                for (int i = 0; i < 8; i++) idsZero &= U32(w, u + 4 * i) == 0;
                if (idsZero && U64(w, caps) == 0 && U64(w, caps + 8) != 0 && U64(w, caps + 8) == U64(w, caps + 16) && U64(w, caps + 16) == U64(w, caps + 24)
                    && !candidates.Contains(u))
                    candidates.Add(u);
            }
        }
        return candidates;
    }
}
