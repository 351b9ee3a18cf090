using Periscope.X86;
using Periscope.Linux.Model;
using static Periscope.Linux.Inference.StructuralFacts;

namespace Periscope.Linux.Inference;

/// <summary>mm_struct, maple tree and vm_area_struct rules: the evidence is every user mm's tree of VMAs.</summary>
public sealed partial class OffsetInference
{
    private const string Mm = "mm_struct", Vma = "vm_area_struct";

    private sealed class MmEvidence
    {
        public int? Root, MapCount, VmStart, VmEnd, VmMm, VmFlags, VmFile, VmPgoff, ExeFile, StartCode, VmOps, VmPrivate, SpecialName;
        public Dictionary<ulong, List<ulong>> Vmas { get; } = [];
        public List<ulong> Files { get; } = [];
    }

    private static MapleOffsets MapleLayout(WordLayout _w) => new()
    {
        Root = 0, RangePivot = _w.MapleRangePivot, RangeSlot = _w.MapleRangeSlot, RangeMeta = _w.MapleRangeMeta, RangeSlots = _w.MapleRangeSlots,
        ArangePivot = _w.MapleArangePivot, ArangeSlot = _w.MapleArangeSlot, ArangeMeta = _w.MapleArangeMeta, ArangeSlots = _w.MapleArangeSlots,
        MetaEnd = MapleMetaEnd, TypeDense = MapleDense, TypeLeaf64 = MapleLeaf64, TypeRange64 = MapleRange64, TypeArange64 = MapleArange64,
    };

    private MmEvidence InferMmAndVmas(TaskEvidence tasks)
    {
        var ev = new MmEvidence();
        // A few dozen address spaces settle every rule; thousands only cost time (a 2,000-process guest).
        var mms = tasks.UserMms.Take(_limits.MaxInferenceAddressSpaces).Select(m => (Mm: m, W: StructWindow(m))).Where(x => x.W is not null)
            .Select(x => (x.Mm, W: x.W!)).ToList();
        if (mms.Count == 0)
        {
            foreach (var m in new[] { "mm_mt", "map_count" }) _report.AddUnknown(Mm, m, "no user process to take evidence from");
            return ev;
        }

        // mm_mt.ma_root: a tagged maple node pointer ((v & 3) == 2, node type 1..3) in every user mm, whose tree (walked with
        // the maple on-node format) yields entries that all point back to their mm at one offset (vm_mm).
        var maple = MapleLayout(_w);
        var diagnostics = new Diagnostics();
        var roots = new List<int>();
        var entriesByRoot = new Dictionary<int, Dictionary<ulong, List<ulong>>>();
        var vmMmByRoot = new Dictionary<int, List<int>>();
        for (int o = 0; o + _p <= _structBytes; o += _p)
        {
            Step(mms.Count);
            if (!mms.All(x => Word(x.W, o) is var v && (v & 3) == 2 && IsKernel(v & ~KernelMacros.MAPLE_NODE_MASK)
                && ((v >> KernelMacros.MAPLE_NODE_TYPE_SHIFT) & KernelMacros.MAPLE_NODE_TYPE_MASK) is >= MapleLeaf64 and <= MapleArange64)) continue;
            var entries = new Dictionary<ulong, List<ulong>>();
            foreach (var (mm, w) in mms)
            {
                var tree = new MapleTree(_r, maple, _limits, diagnostics);
                var list = tree.Entries(Word(w, o), _limits.MaxVmasPerProcess).Take(_limits.MaxInferenceSamples + 1).ToList();
                Step(list.Count + 1);
                // A tree longer than the sample cap is not evidence: its count and its last VMAs (the stack) would be missing.
                if (list.Count <= _limits.MaxInferenceSamples) entries[mm] = list;
            }
            var backs = new List<int>();
            for (int b = 0; b + _p <= _smallBytes; b += _p)
            {
                Step();
                if (entries.Count > 0 && entries.All(kv => kv.Value.Count > 0 && kv.Value.All(v => SmallWindow(v) is { } vw && Word(vw, b) == kv.Key))) backs.Add(b);
            }
            if (backs.Count == 0) continue;
            roots.Add(o);
            entriesByRoot[o] = entries;
            vmMmByRoot[o] = backs;
        }
        ev.Root = _report.Add(Mm, "mm_mt.ma_root", roots,
            "tagged maple root in every user mm whose tree's entries (maple on-node format) all point back to their mm at one offset");
        if (ev.Root is not { } root)
        {
            _report.AddUnknown(Vma, "vm_mm", "needs the VMA tree");
            return ev;
        }
        foreach (var (k, v) in entriesByRoot[root]) ev.Vmas[k] = v;
        mms = mms.Where(x => ev.Vmas.ContainsKey(x.Mm)).ToList();
        _report.Vmas = ev.Vmas.Values.Sum(v => v.Count);
        ev.VmMm = _report.Add(Vma, "vm_mm", vmMmByRoot[root], "pointer equal to the owning mm in every VMA of every user mm's tree");

        var mapCounts = new List<int>();
        for (int o = 0; o + 4 <= _structBytes; o += 4)
        {
            Step(mms.Count);
            if (mms.All(x => I32(x.W, o) == ev.Vmas[x.Mm].Count)) mapCounts.Add(o);
        }
        ev.MapCount = _report.Add(Mm, "map_count", mapCounts, "int equal to the number of entries in the mm's tree, in every user mm");

        var vmas = ev.Vmas.SelectMany(kv => kv.Value.Select(v => (Mm: kv.Key, Vma: v, W: SmallWindow(v)!))).ToList();
        InferVmaRange(ev, vmas);
        InferVmaFile(ev, vmas, mms);
        InferVmaFlags(ev, vmas);
        InferSpecialMappings(ev, vmas);
        InferMmBounds(ev, mms);
        return ev;
    }

    private void InferVmaRange(MmEvidence ev, List<(ulong Mm, ulong Vma, byte[] W)> vmas)
    {
        // vm_start/vm_end: two u64 columns, page-aligned user addresses, start < end, and in tree order each VMA ends at
        // or before the next one starts; gate_vma (when kallsyms has it) holds the vsyscall page.
        // TASK_SIZE: below the kernel half (PAGE_OFFSET on i386).
        ulong userTop = _r.Mode.Is32Bit() ? _layout.PageOffsetBase ?? X86.PagingModes.DefaultI386PageOffset
            : _r.Mode == X86.PagingMode.FiveLevel ? 1UL << 56 : 1UL << 47;
        bool hasGate = _symbols.TryGetAddress("gate_vma", out ulong gate);
        byte[]? gw = hasGate ? SmallWindow(gate) : null;
        var pairs = new List<(int S, int E)>();
        var trees = ev.Vmas.Values.Select(list => list.Select(v => SmallWindow(v)!).ToArray()).ToArray();
        for (int s = 0; s + _p <= _smallBytes; s += _p)
            for (int e = 0; e + _p <= _smallBytes; e += _p)
            {
                if (s == e) continue;
                Step();
                if (gw is not null && (Word(gw, s) != VSYSCALL_ADDR || Word(gw, e) != VSYSCALL_ADDR + 4096)) continue;
                bool ok = true;
                foreach (var tree in trees)
                {
                    ulong prevEnd = 0;
                    foreach (var w in tree)
                    {
                        ulong a = Word(w, s), b = Word(w, e);
                        if (a >= b || (a & 0xfff) != 0 || (b & 0xfff) != 0 || b > userTop || a < prevEnd) { ok = false; break; }
                        prevEnd = b;
                    }
                    if (!ok) break;
                }
                if (ok) pairs.Add((s, e));
            }
        string rule = "u64 pair: page-aligned user addresses, start < end, VMAs in tree order do not overlap" + (gw is not null ? ", gate_vma holds the vsyscall page" : "");
        ev.VmStart = _report.Add(Vma, "vm_start", pairs.Select(p => p.S).Distinct().ToList(), rule);
        ev.VmEnd = _report.Add(Vma, "vm_end", pairs.Where(p => p.S == ev.VmStart).Select(p => p.E).Distinct().ToList(), rule);
    }

    private void InferVmaFile(MmEvidence ev, List<(ulong Mm, ulong Vma, byte[] W)> vmas, List<(ulong Mm, byte[] W)> mms)
    {
        // vm_file + mm.exe_file: the executable's struct file is both mm->exe_file and the vm_file of its mappings.
        var pairs = new List<(int F, int E)>();
        for (int f = 0; f + _p <= _smallBytes; f += _p)
        {
            Step(vmas.Count);
            if (f == ev.VmStart || f == ev.VmEnd || f == ev.VmMm) continue;
            if (!vmas.All(v => Word(v.W, f) is var p && (p == 0 || IsKernel(p))) || !vmas.Any(v => Word(v.W, f) == 0)) continue;
            var byMm = vmas.GroupBy(v => v.Mm).ToDictionary(g => g.Key, g => g.Select(v => Word(v.W, f)).Where(p => p != 0).ToHashSet());
            for (int e = 0; e + _p <= _structBytes; e += _p)
            {
                Step(mms.Count);
                if (mms.All(x => Word(x.W, e) is var p && IsKernel(p) && byMm.TryGetValue(x.Mm, out var files) && files.Contains(p))) pairs.Add((f, e));
            }
        }
        const string rule = "vm_file: NULL or a kernel pointer in every VMA; exe_file: in every user mm, equal to the vm_file of one of its VMAs";
        // The same member of the next VMA in the slab (same mm, same executable) repeats the column one object size higher:
        // the true member is the lowest.
        ev.VmFile = _report.Add(Vma, "vm_file", pairs.Select(p => p.F).Distinct().ToList(), rule,
            c => c.Min(), "lowest offset (a higher one is the same member of the next VMA in the slab)");
        ev.ExeFile = _report.Add(Mm, "exe_file", pairs.Where(p => p.F == ev.VmFile).Select(p => p.E).Distinct().ToList(), rule);
        if (ev.VmFile is { } vf)
            foreach (var v in vmas) if (Word(v.W, vf) is var p && p != 0 && !ev.Files.Contains(p)) ev.Files.Add(p);
        if (ev.ExeFile is { } ef)
            foreach (var (_, w) in mms) if (Word(w, ef) is var p && p != 0 && !ev.Files.Contains(p)) ev.Files.Add(p);
        _report.Files = ev.Files.Count;

        // vm_pgoff: anonymous private mappings start with pgoff = start >> PAGE_SHIFT; the executable's first mapping has 0.
        // vm_pgoff: anonymous private mappings made by mmap or brk start with pgoff = start >> PAGE_SHIFT (the stack, moved
        // at exec, and the special mappings do not); the executable's lowest mapping has pgoff 0.
        var anon = ev.VmFile is { } file ? vmas.Where(v => Word(v.W, file) == 0).ToList() : [];
        var exeFirst = ev.VmFile is { } vf0 && ev.ExeFile is { } ef0
            ? mms.Select(x => ev.Vmas[x.Mm].Select(SmallWindow).Where(w => w is not null && Word(w, vf0) == Word(x.W, ef0)).MinBy(w => Word(w!, ev.VmStart ?? 0))).Where(w => w is not null).ToList()
            : [];
        var pgoffs = new List<int>();
        for (int o = 0; o + _p <= _smallBytes && anon.Count > 0; o += _p)
        {
            Step(vmas.Count);
            if (o == ev.VmStart || o == ev.VmEnd || o == ev.VmMm || o == ev.VmFile) continue;
            bool anyAnon = anon.Any(v => Word(v.W, ev.VmStart!.Value) >> KernelMacros.PAGE_SHIFT is var pg && pg != 0 && Word(v.W, o) == pg);
            if (anyAnon && vmas.All(v => Word(v.W, o) < 1UL << 52) && exeFirst.All(w => Word(w!, o) == 0)) pgoffs.Add(o);
        }
        ev.VmPgoff = _report.Add(Vma, "vm_pgoff", pgoffs, "u64 below 2^52 in every VMA, vm_start >> 12 in some anonymous VMA, 0 in each executable's lowest mapping",
            c => c.Min(), "lowest offset");
    }

    private void InferVmaFlags(MmEvidence ev, List<(ulong Mm, ulong Vma, byte[] W)> vmas)
    {
        bool hasGate = _symbols.TryGetAddress("gate_vma", out ulong gate);
        byte[]? gw = hasGate ? SmallWindow(gate) : null;
        var candidates = new List<int>();
        for (int o = 0; o + _p <= _smallBytes; o += _p)
        {
            Step(vmas.Count);
            if (gw is not null && Word(gw, o) != GateVmaFlags) continue;
            bool ok = true, exec = false, noExec = false;
            foreach (var v in vmas)
            {
                ulong f = Word(v.W, o);
                // VM_READ/WRITE/EXEC/SHARED each imply their VM_MAY* bit (bits 4..7).
                if (f >= 1UL << 48 || (f & 0xf & ~((f >> 4) & 0xf)) != 0) { ok = false; break; }
                if ((f & KernelMacros.VM_EXEC) != 0) exec = true; else noExec = true;
            }
            if (ok && exec && noExec) candidates.Add(o);
        }
        ev.VmFlags = _report.Add(Vma, "vm_flags", candidates,
            "u64 where VM_READ/WRITE/EXEC/SHARED each imply VM_MAY*, some VMAs executable and some not" + (gw is not null ? ", gate_vma's is VM_READ|VM_EXEC" : ""),
            c => c.Min(), "lowest offset");
    }

    private void InferSpecialMappings(MmEvidence ev, List<(ulong Mm, ulong Vma, byte[] W)> vmas)
    {
        // vm_ops: the column where some VMAs hold special_mapping_vmops ([vdso], [vvar]); vm_private_data: the column where
        // those VMAs point to a vm_special_mapping whose name (at one offset) is a "[...]" string.
        if (!_symbols.TryGetAddress("special_mapping_vmops", out ulong ops))
        {
            // No data symbols: the ops table by what it does (see FindSpecialMappingOps); the rules below check it again.
            if (FindSpecialMappingOps(ev, vmas, out string why) is not { } found)
            {
                foreach (var m in new[] { "vm_ops", "vm_private_data" }) _report.AddUnknown(Vma, m, $"needs special_mapping_vmops: not in kallsyms, and by structure: {why}");
                return;
            }
            ops = found;
            _report.SpecialMappingOpsFromText = ops - _layout.TextVa;
        }
        ulong gateOps = 0;
        byte[]? gw = _symbols.TryGetAddress("gate_vma", out ulong gate) && _symbols.TryGetAddress("gate_vma_ops", out gateOps) ? SmallWindow(gate) : null;
        var opsCols = new List<int>();
        for (int o = 0; o + _p <= _smallBytes; o += _p)
        {
            Step(vmas.Count);
            if (gw is not null && Word(gw, o) != gateOps) continue;
            if (vmas.Any(v => Word(v.W, o) == ops) && vmas.All(v => Word(v.W, o) is var p && (p == 0 || IsKernel(p)))) opsCols.Add(o);
        }
        ev.VmOps = _report.Add(Vma, "vm_ops", opsCols, "pointer column where some VMAs hold special_mapping_vmops" + (gw is not null ? " and gate_vma holds gate_vma_ops" : ""),
            c => c.Min(), "lowest offset (a higher one is the same member of the next VMA in the slab)");
        if (ev.VmOps is not { } vo) { _report.AddUnknown(Vma, "vm_private_data", "needs vm_ops"); return; }
        var special = vmas.Where(v => Word(v.W, vo) == ops).ToList();
        var pairs = new List<(int P, int N)>();
        for (int p = 0; p + _p <= _smallBytes; p += _p)
        {
            if (p == vo) continue;
            for (int n = 0; n < 64; n += _p)
            {
                Step(special.Count);
                if (special.All(v => IsKernel(Word(v.W, p)) && Ptr(Word(v.W, p) + (ulong)n) is var s && IsKernel(s)
                    && _r.ReadCString(s, 64) is { Length: >= 3 } name && name[0] == '[' && name[^1] == ']')) pairs.Add((p, n));
            }
        }
        ev.VmPrivate = _report.Add(Vma, "vm_private_data", pairs.Select(x => x.P).Distinct().ToList(), "pointer, in every special-mapping VMA, to an object naming it \"[...]\"");
        ev.SpecialName = _report.Add("vm_special_mapping", "name", pairs.Where(x => x.P == ev.VmPrivate).Select(x => x.N).Distinct().ToList(), "the \"[...]\" name pointer");
    }

    /// <summary>
    /// special_mapping_vmops without kallsyms: a value X in the kernel's read-only data (_etext..__init_begin, where the
    /// const vm_operations_struct lives) held at one column by anonymous VMAs, such that every anonymous VMA holding it
    /// has, at one other column, a pointer to an object whose pointer at one offset names it "[...]", with at least two
    /// distinct names among them ([vdso], [vvar]); when kallsyms has the text symbol special_mapping_fault, the table at X
    /// must hold it (its fault hook). Exactly one such X must exist.
    /// </summary>
    private ulong? FindSpecialMappingOps(MmEvidence ev, List<(ulong Mm, ulong Vma, byte[] W)> vmas, out string why)
    {
        if (ev.VmFile is not { } vf || !_symbols.TryGetAddress("_etext", out ulong from) || !_symbols.TryGetAddress("__init_begin", out ulong to))
        {
            why = "needs vm_file and kallsyms' _etext and __init_begin";
            return null;
        }
        // The table's hooks are text, which kallsyms keeps: special_mapping_vmops.fault is special_mapping_fault.
        _symbols.TryGetAddress("special_mapping_fault", out ulong fault);
        var anon = vmas.Where(v => Word(v.W, vf) == 0).ToList();
        var found = new HashSet<ulong>();
        for (int o = 0; o + _p <= _smallBytes; o += _p)
        {
            if (o == ev.VmStart || o == ev.VmEnd || o == ev.VmMm || o == vf) continue;
            foreach (ulong x in anon.Select(v => Word(v.W, o)).Where(x => x >= from && x < to && (x & (ulong)(_p - 1)) == 0).Distinct().ToList())
            {
                var special = anon.Where(v => Word(v.W, o) == x).ToList();
                if ((fault == 0 || HoldsPointer(x, fault, 32)) && NamesSpecialMappings(special, o)) found.Add(x);
            }
        }
        why = found.Count == 1 ? "" : found.Count == 0 ? "no read-only-data pointer shared by anonymous VMAs leads to two or more \"[...]\" names"
            : $"{found.Count} values fit ({string.Join(", ", found.Take(4).Select(a => $"0x{a:x}"))}): ambiguous";
        return found.Count == 1 ? found.Single() : null;
    }

    /// <summary>Whether one of the first <paramref name="words"/> pointers of the object at <paramref name="va"/> is <paramref name="value"/>.</summary>
    private bool HoldsPointer(ulong va, ulong value, int words)
    {
        Step(words);
        for (int i = 0; i < words; i++) if (Ptr(va + (ulong)(i * _p)) == value) return true;
        return false;
    }

    /// <summary>Whether the VMAs sharing one ops value are special mappings: each points (one column) to an object naming it
    /// "[...]" (at one offset), and they carry at least two distinct names (the ops table is shared by [vdso] and [vvar]; a
    /// vm_special_mapping pointer itself, also a constant of read-only data, names one mapping only).</summary>
    private bool NamesSpecialMappings(List<(ulong Mm, ulong Vma, byte[] W)> special, int opsColumn)
    {
        for (int p = 0; p + _p <= _smallBytes; p += _p)
        {
            if (p == opsColumn) continue;
            for (int n = 0; n < 64; n += _p)
            {
                Step(special.Count);
                var names = new HashSet<string>();
                foreach (var v in special)
                {
                    ulong mapping = Word(v.W, p), text = Ptr(mapping + (ulong)n);
                    if (!IsKernel(mapping) || !IsKernel(text) || _r.ReadCString(text, 64) is not { Length: >= 3 } name || name[0] != '[' || name[^1] != ']') { names.Clear(); break; }
                    names.Add(name);
                }
                if (names.Count >= 2) return true;
            }
        }
        return false;
    }

    private bool Inside(List<ulong> vmas, ulong address) =>
        vmas.Any(v => SmallWindow(v) is { } vw && Word(vw, _vmStart) <= address && address < Word(vw, _vmEnd));

    private int _vmStart, _vmEnd = 8;

    private void InferMmBounds(MmEvidence ev, List<(ulong Mm, byte[] W)> mms)
    {
        // start_code .. env_end: eleven u64 declared in this order since 2.6: start_code < end_code, start_brk <= brk,
        // start_stack inside a VMA, arg_start < arg_end <= env_start < env_end.
        (_vmStart, _vmEnd) = (ev.VmStart ?? 0, ev.VmEnd ?? _p);
        var candidates = new List<int>();
        for (int o = 0; o + _w.MmBoundsCount * _p <= _structBytes; o += _p)
        {
            Step(mms.Count);
            bool ok = true;
            foreach (var (mm, w) in mms)
            {
                ulong sc = Word(w, o), ec = Word(w, o + _p), sb = Word(w, o + 4 * _p), brk = Word(w, o + 5 * _p), ss = Word(w, o + 6 * _p),
                    argS = Word(w, o + 7 * _p), argE = Word(w, o + 8 * _p), envS = Word(w, o + 9 * _p), envE = Word(w, o + 10 * _p);
                if (!(sc < ec && sb <= brk && argS < argE && argE <= envS && envS < envE && ss != 0)
                    || !ev.Vmas.TryGetValue(mm, out var list)
                    || !Inside(list, ss) || !Inside(list, sc) || !Inside(list, argS)) { ok = false; break; }
            }
            if (ok) candidates.Add(o);
        }
        ev.StartCode = _report.Add(Mm, "start_code", candidates,
            "eleven u64 in declaration order start_code < end_code .. start_brk <= brk, arg_start < arg_end <= env_start < env_end; start_code, start_stack and arg_start inside VMAs");

        if (ev.StartCode is { } startCode)
        {
            _report.AddStructural(Mm, "end_code", startCode + _w.MmEndCode, "declared after start_code");
            _report.AddStructural(Mm, "start_brk", startCode + _w.MmStartBrk, "start_code, end_code, start_data, end_data, start_brk");
            _report.AddStructural(Mm, "brk", startCode + _w.MmBrk, "declared after start_brk");
            _report.AddStructural(Mm, "start_stack", startCode + _w.MmStartStack, "declared after brk");
        }

        // context.flags: MM_CONTEXT_HAS_VSYSCALL set in every 64-bit process when vsyscall is enabled. Too weak a pattern
        // to search for (small flag words are common): left unknown, and /proc's [vsyscall] line is taken from vsyscall_mode.
        _report.AddUnknown(Mm, "context.flags", "a flag word with bit 1 set is too common a pattern to settle; [vsyscall] follows vsyscall_mode instead");
    }
}
