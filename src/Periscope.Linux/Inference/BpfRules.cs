using System.Text;
using Periscope.Linux.Model;

namespace Periscope.Linux.Inference;

/// <summary>
/// `bpf`'s members without BTF (<see cref="BpfOffsets"/>): the evidence is the objects prog_idr, map_idr and link_idr
/// hold (kallsyms data symbols, else the code that passes them to idr_find, <see cref="BpfIdrCode"/>), each at the IDR
/// index that is its id (bpf_prog_alloc_id, bpf_map_alloc_id, bpf_link_prime), checked with the facts of
/// <see cref="BpfRule"/>. The closing constraints: aux->prog is the program (bpf_prog_aux's back link); the program's
/// kallsyms entry in aux->ksym names its tag and name and starts at bpf_func; the instructions at insnsi are a verified
/// program of len instructions; a link's prog is a listed program; a program's used maps are listed maps.
/// </summary>
public sealed partial class OffsetInference
{
    /// <summary>Bytes of struct bpf_prog searched (its header is 72 bytes on 6.x x86-64, 48 on i386; insnsi follow).</summary>
    private const int BpfProgHeaderWindow = 256;
    /// <summary>Bytes of struct bpf_map searched for map_type (0x18 on 6.x x86-64) and name.</summary>
    private const int BpfMapWindow = 256;
    /// <summary>Objects of each IDR used as evidence, and the instructions of one program read by the rules.</summary>
    private const int BpfSamples = 256, BpfMaxEvidenceInsns = 4096;
    /// <summary>A program type's number is small (32 in 6.1; the enum only grows).</summary>
    private const uint BpfMaxProgType = 64, BpfMaxLinkType = 64;
    /// <summary>A program uses at most MAX_USED_MAPS (64) maps.</summary>
    private const uint BpfMaxUsedMaps = 64;
    /// <summary>load_time is ktime_get_boottime_ns() at load: a millisecond after boot at least, 2^58 ns (9 years) at most.</summary>
    private const ulong BpfMinLoadTime = 1_000_000, BpfMaxLoadTime = 1UL << 58;

    private readonly record struct BpfObject(uint Id, ulong Address);

    private static readonly (string Struct, string Member)[] BpfProgMembers =
    [
        ("bpf_prog", "type"), ("bpf_prog", "len"), ("bpf_prog", "jited_len"), ("bpf_prog", "tag"), ("bpf_prog", "bpf_func"), ("bpf_prog", "aux"),
        ("bpf_prog", "insnsi"), ("bpf_prog_aux", "id"), ("bpf_prog_aux", "name"), ("bpf_prog_aux", "load_time"), ("bpf_prog_aux", "used_maps"),
        ("bpf_prog_aux", "used_map_cnt"),
    ];
    private static readonly (string Struct, string Member)[] BpfMapMembers =
    [
        ("bpf_map", "map_type"), ("bpf_map", "key_size"), ("bpf_map", "value_size"), ("bpf_map", "max_entries"), ("bpf_map", "id"), ("bpf_map", "name"),
    ];
    private static readonly (string Struct, string Member)[] BpfLinkMembers = [("bpf_link", "id"), ("bpf_link", "type"), ("bpf_link", "prog")];

    /// <summary>The bpf rules alone, on their own step budget, given struct idr's xa_head offset (for tests).</summary>
    /// <exception cref="KernelModelException">The search exceeded MaxInferenceSteps.</exception>
    public static InferenceReport InferBpfObjects(GuestReader reader, Kallsyms.KernelSymbols symbols, Memory.IntrospectionLimits limits, int idrXaHead) =>
        RulesAlone(reader, symbols, limits, "bpf", search => search.InferBpf(idrXaHead));

    private void InferBpf() => InferBpf(_report.Find("pid_namespace", "idr.idr_rt.xa_head")?.Offset);

    private void InferBpf(int? idrXaHead)
    {
        var all = BpfProgMembers.Concat(BpfMapMembers).Concat(BpfLinkMembers).ToArray();
        if (idrXaHead is not { } head)
        {
            ReportUnknown("needs pid_namespace.idr.idr_rt.xa_head (struct idr's layout)", [("idr", "idr_rt.xa_head"), .. all]);
            return;
        }
        var idrs = new Dictionary<string, ulong?>();
        foreach (string name in new[] { "prog_idr", "map_idr", "link_idr" })
            idrs[name] = _symbols.TryGetAddress(name, out ulong at) ? at : BpfIdrCode.Find(_r, _symbols, name, head, out _);
        var found = idrs.Where(i => i.Value is not null).Select(i => i.Value!.Value).ToList();
        Step(found.Count);
        if (found.Count == 0 || !found.All(i => BpfIdrCode.IsIdr(_r, i, head)))
        {
            ReportUnknown(found.Count == 0 ? "prog_idr, map_idr and link_idr not found (kallsyms, or the code using them)"
                : "an IDR's head is not an IDR root at pid_namespace's xa_head offset", [("idr", "idr_rt.xa_head"), .. all]);
            return;
        }
        _report.AddStructural("idr", "idr_rt.xa_head", head, "struct idr starts with its xarray, as pid_namespace's idr (its first member) does; checked: in prog_idr, map_idr and link_idr the gfp_t before it has ROOT_IS_IDR and it is NULL or a root xa_node naming the IDR");
        var progs = BpfEntries("prog_idr", idrs["prog_idr"], head, out string? progsWhy);
        var maps = BpfEntries("map_idr", idrs["map_idr"], head, out string? mapsWhy);
        var links = BpfEntries("link_idr", idrs["link_idr"], head, out string? linksWhy);
        if (progsWhy is not null) ReportUnknown(progsWhy, BpfProgMembers); else InferBpfProgs(progs, maps);
        if (mapsWhy is not null) ReportUnknown(mapsWhy, BpfMapMembers); else InferBpfMaps(maps);
        if (linksWhy is not null) ReportUnknown(linksWhy, BpfLinkMembers); else InferBpfLinks(links, progs);
    }

    /// <summary>The IDR's objects (at most BpfSamples), or null with the reason when it is missing, empty or not a clean tree.</summary>
    private List<BpfObject> BpfEntries(string name, ulong? idr, int head, out string? why)
    {
        why = null;
        if (idr is not { } at) { why = $"{name} not found (kallsyms, or the code using it)"; return []; }
        var gaps = new List<string>();
        var entries = XArrayReader.FromAbi(_r).Read(Ptr(at + (ulong)head), BpfSamples, name, gaps);
        Step(entries.Count);
        var objects = entries.Where(e => e.Kind == XArrayEntryKind.Pointer && e.Index is > 0 and <= uint.MaxValue && IsKernel(e.Entry))
            .Select(e => new BpfObject((uint)e.Index, e.Entry)).ToList();
        if (gaps.Count > 0 && !gaps.All(g => g.Contains("stopped at", StringComparison.Ordinal))) why = $"{name}: {gaps[0]}";
        else if (objects.Count != entries.Count) why = $"{name} holds an entry that is not a kernel pointer at an index above 0";
        else if (objects.Count == 0) why = $"{name} is empty: no object to take evidence from";
        return objects;
    }

    private void InferBpfProgs(List<BpfObject> progs, List<BpfObject> maps)
    {
        var pw = progs.Select(p => StructWindow(p.Address)).ToList();
        if (pw.Any(w => w is null)) { ReportUnknown("a listed bpf_prog is unreadable", BpfProgMembers); return; }
        var windows = progs.Select((p, i) => (P: p, W: pw[i]!)).ToList();

        // aux: the pointer whose bpf_prog_aux points back at the program (aux->prog), in every program.
        var pairs = new List<(int Aux, int Back)>();
        for (int x = 0; x + _p <= BpfProgHeaderWindow; x += _p)
        {
            Step(windows.Count);
            HashSet<int>? backs = null;
            foreach (var (p, w) in windows)
            {
                ulong aux = Word(w, x);
                if (!IsKernel(aux) || aux == p.Address || StructWindow(aux) is not { } aw) { backs = null; break; }
                var here = new HashSet<int>();
                for (int y = 0; y + _p <= aw.Length; y += _p) if (Word(aw, y) == p.Address) here.Add(y);
                Step(aw.Length / _p);
                if (backs is null) backs = here; else backs.IntersectWith(here);
                if (backs.Count == 0) break;
            }
            if (backs is not null) pairs.AddRange(backs.Select(b => (x, b)));
        }
        const string auxRule = "pointer in every listed bpf_prog to a bpf_prog_aux holding the program's own address (aux->prog)";
        int? auxOff = _report.Add("bpf_prog", "aux", pairs.Select(c => c.Aux).Distinct().ToList(), auxRule);
        _report.Add("bpf_prog_aux", "prog", pairs.Where(c => c.Aux == auxOff).Select(c => c.Back).Distinct().ToList(), auxRule);
        if (auxOff is not { } ao)
        {
            ReportUnknown("needs bpf_prog.aux", BpfProgMembers.Where(m => m.Member != "aux").ToArray());
            return;
        }
        var aws = windows.Select(x => StructWindow(Ptr(x.P.Address + (ulong)ao))!).ToList();

        // id: the u32 equal to the IDR index in every program.
        var ids = new List<int>();
        for (int y = 0; y + 4 <= _structBytes; y += 4)
        {
            Step(aws.Count);
            if (windows.Select((x, i) => U32(aws[i], y) == x.P.Id).All(b => b)) ids.Add(y);
        }
        _report.Add("bpf_prog_aux", "id", ids, "u32 equal to the program's prog_idr index in every listed program (bpf_prog_alloc_id stores the index it got)");

        InferBpfKsym(windows, aws);
        InferBpfInstructions(windows);
        InferBpfUsedMaps(aws, maps.Select(m => m.Address).ToHashSet());
        InferBpfLoadTime(aws);
    }

    /// <summary>aux->ksym.name ("bpf_prog_TAG_NAME"), and from it tag, aux->name and bpf_func (ksym.start, two words before the name).</summary>
    private void InferBpfKsym(List<(BpfObject P, byte[] W)> windows, List<byte[]> aws)
    {
        HashSet<int>? common = null;
        for (int i = 0; i < aws.Count; i++)
        {
            Step(aws[i].Length / 64);
            var here = FindAll(aws[i], Encoding.ASCII.GetBytes(BpfRule.KsymPrefix)).Where(k => BpfRule.ParseKsymName(aws[i].AsSpan(k)) is not null).ToHashSet();
            if (common is null) common = here; else common.IntersectWith(here);
        }
        const string ksymRule = "the kallsyms name \"bpf_prog_<tag in hex>[_<name>]\" (bpf_get_prog_name) at one offset of every listed program's bpf_prog_aux (a JIT-ed program's aux->ksym)";
        int? ksym = _report.Add("bpf_prog_aux", "ksym.name", common?.ToList() ?? [], ksymRule, c => c.Min(), SlabNeighbourTieBreak);
        if (ksym is not { } k)
        {
            ReportUnknown("needs bpf_prog_aux.ksym.name (programs not JIT-ed, or no program)", ("bpf_prog", "tag"), ("bpf_prog_aux", "name"), ("bpf_prog", "bpf_func"));
            return;
        }
        var parsed = aws.Select(w => BpfRule.ParseKsymName(w.AsSpan(k))!.Value).ToList();

        var tags = new List<int>();
        for (int t = 0; t + BpfRule.TagSize <= BpfProgHeaderWindow; t++)
        {
            Step(windows.Count);
            if (windows.Select((x, i) => x.W.AsSpan(t, BpfRule.TagSize).SequenceEqual(parsed[i].Tag)).All(b => b)) tags.Add(t);
        }
        _report.Add("bpf_prog", "tag", tags, "the 8 bytes the program's kallsyms name spells in hex, in every listed program");

        // The name: the object-name field equal to the kallsyms name's suffix; the suffix's own place inside ksym.name is not it.
        int suffix = k + BpfRule.KsymPrefix.Length + 2 * BpfRule.TagSize + 1;
        var names = new List<int>();
        if (parsed.Any(p => p.Name.Length > 0))
            for (int n = 0; n + BpfRule.ObjectNameLength <= _structBytes; n++)
            {
                Step(aws.Count);
                if (n != suffix && aws.Select((w, i) => BpfRule.IsObjectName(w.AsSpan(n)) && BpfRule.ObjectName(w.AsSpan(n)) == parsed[i].Name).All(b => b)) names.Add(n);
            }
        _report.Add("bpf_prog_aux", "name", names, "char[16] object name equal to the suffix of the program's kallsyms name, in every listed program (some with a name)");

        // bpf_func: struct bpf_ksym { unsigned long start; unsigned long end; char name[]; }: the JIT image starts at ksym.start.
        var funcs = new List<int>();
        if (k >= 2 * _p)
            for (int f = 0; f + _p <= BpfProgHeaderWindow; f += _p)
            {
                Step(windows.Count);
                if (windows.Select((x, i) => Word(x.W, f) is var v && IsKernel(v) && v == Word(aws[i], k - 2 * _p) && v < Word(aws[i], k - _p)).All(b => b)) funcs.Add(f);
            }
        _report.Add("bpf_prog", "bpf_func", funcs, "pointer in every listed program equal to aux->ksym.start (the word two before ksym.name, below ksym.end): the JIT image");
    }

    /// <summary>len and insnsi: the u32 count and the offset where that many instructions read as a verified program, in every
    /// listed program; type and jited_len by declaration order around len (type, expected_attach_type, len, jited_len, tag since 4.17).</summary>
    private void InferBpfInstructions(List<(BpfObject P, byte[] W)> windows)
    {
        var pairs = new List<(int Len, int Insns)>();
        for (int l = 0; l + 4 <= BpfProgHeaderWindow; l += 4)
        {
            Step(windows.Count);
            if (!windows.All(x => U32(x.W, l) is >= 1 and <= BpfMaxEvidenceInsns)) continue;
            for (int i = l + 4; i + 8 <= BpfProgHeaderWindow; i += 4)
            {
                bool ok = true;
                foreach (var (p, w) in windows)
                {
                    uint count = U32(w, l);
                    Step(count);
                    var insns = new byte[count * 8];
                    if (_r.Read(p.Address + (ulong)i, insns) != insns.Length || !BpfRule.IsProgram(insns)) { ok = false; break; }
                }
                if (ok) pairs.Add((l, i));
            }
        }
        const string rule = "u32 count and offset where that many 8-byte instructions read as a verified program (registers r0..r10, an exit or jump last) in every listed program";
        int? len = _report.Add("bpf_prog", "len", pairs.Select(c => c.Len).Distinct().ToList(), rule);
        _report.Add("bpf_prog", "insnsi", pairs.Where(c => c.Len == len).Select(c => c.Insns).Distinct().ToList(), rule);
        if (len is not { } at || at < 8)
        {
            ReportUnknown("needs bpf_prog.len", ("bpf_prog", "type"), ("bpf_prog", "jited_len"));
            return;
        }
        Step(windows.Count);
        if (windows.All(x => U32(x.W, at - 8) is >= 1 and < BpfMaxProgType))
            _report.AddStructural("bpf_prog", "type", at - 8, "enum bpf_prog_type type; enum bpf_attach_type expected_attach_type; u32 len; (declaration order since 4.17); checked: a program type (1..63) in every listed program");
        else _report.AddUnknown("bpf_prog", "type", "two u32 before len is not a program type (1..63) in every listed program");
        _report.AddStructural("bpf_prog", "jited_len", at + 4, "u32 len; u32 jited_len; (declaration order since 4.1)");
    }

    /// <summary>used_map_cnt and used_maps: a count and an array of that many listed maps, in every program (one using a map at least).</summary>
    private void InferBpfUsedMaps(List<byte[]> aws, HashSet<ulong> maps)
    {
        var pairs = new List<(int Count, int Array)>();
        if (maps.Count > 0)
            for (int c = 0; c + 4 <= _structBytes; c += 4)
            {
                Step(aws.Count);
                if (!aws.All(w => U32(w, c) <= BpfMaxUsedMaps) || !aws.Any(w => U32(w, c) > 0)) continue;
                for (int a = 0; a + _p <= _structBytes; a += _p)
                {
                    Step(aws.Count);
                    if (aws.All(w => U32(w, c) is var n && (n == 0 || (Word(w, a) is var arr && IsKernel(arr)
                        && Enumerable.Range(0, (int)n).All(j => maps.Contains(Ptr(arr + (ulong)(j * _p))))))))
                        pairs.Add((c, a));
                }
            }
        const string rule = "u32 count (at most 64, non-zero in some program) and pointer to that many listed maps (map_idr), in every listed program";
        // The 4 KiB window of a bpf_prog_aux (a kmalloc-2k object on 6.1 x86-64) reaches into its slab neighbour, another
        // program's aux, whose own used_map_cnt/used_maps pair fits too when that program uses maps.
        int? count = _report.Add("bpf_prog_aux", "used_map_cnt", pairs.Select(p => p.Count).Distinct().ToList(), maps.Count == 0 ? "needs a listed map: " + rule : rule,
            c => c.Min(), SlabNeighbourTieBreak);
        _report.Add("bpf_prog_aux", "used_maps", pairs.Where(p => p.Count == count).Select(p => p.Array).Distinct().ToList(), rule);
    }

    /// <summary>load_time: ktime_get_boottime_ns() at load, a u64 no other bpf_prog_aux member looks like: nanoseconds (not a
    /// pointer, not a count), a different value in every program (two loads never share a nanosecond).</summary>
    private void InferBpfLoadTime(List<byte[]> aws)
    {
        var candidates = new List<int>();
        // A u64 member is word-aligned (8 on x86-64, 4 on i386); one that would overlap the id is the id with its neighbour.
        int? id = _report.Find("bpf_prog_aux", "id")?.Offset;
        // Nor is a word of the kallsyms name's text (its tail with the NUL padding reads as a small number).
        int? ksym = _report.Find("bpf_prog_aux", "ksym.name")?.Offset;
        int ksymEnd = ksym is { } k ? k + aws.Max(w => w.AsSpan(k).IndexOf((byte)0) is var n and >= 0 ? n : w.Length - k) : 0;
        if (aws.Count >= 2)
            for (int t = 0; t + 8 <= _structBytes; t += _p)
            {
                if (id is { } idAt && t > idAt - 8 && t < idAt + 4) continue;
                if (ksym is { } ks && t + 8 > ks && t < ksymEnd) continue;
                Step(aws.Count);
                if (aws.All(w => U64(w, t) is >= BpfMinLoadTime and <= BpfMaxLoadTime) && aws.Select(w => U64(w, t)).Distinct().Count() == aws.Count)
                    candidates.Add(t);
            }
        _report.Add("bpf_prog_aux", "load_time", candidates, aws.Count < 2 ? "needs two listed programs"
            : "word-aligned u64 nanoseconds (1 ms .. 2^58), overlapping neither the id nor the kallsyms name's text, different in every listed program",
            c => c.Min(), SlabNeighbourTieBreak);
    }

    private void InferBpfMaps(List<BpfObject> maps)
    {
        var windows = maps.Select(m => (M: m, W: StructWindow(m.Address))).ToList();
        if (windows.Any(x => x.W is null)) { ReportUnknown("a listed bpf_map is unreadable", BpfMapMembers); return; }
        var types = new List<int>();
        for (int t = 0; t + 16 <= BpfMapWindow; t += 4)
        {
            Step(windows.Count);
            if (windows.All(x => BpfRule.IsMapAttributes(U32(x.W!, t), U32(x.W!, t + 4), U32(x.W!, t + 8), U32(x.W!, t + 12)))) types.Add(t);
        }
        const string typeRule = "{ map_type, key_size, value_size, max_entries } (declared together since 3.18) as map attributes allow (a type 1..63, a key of at most 512 bytes, a u32 key for index-keyed maps, a zero key or value size only for the types without, an entry at least) in every listed map";
        int? mapType = _report.Add("bpf_map", "map_type", types, typeRule);
        if (mapType is { } type)
        {
            _report.AddStructural("bpf_map", "key_size", type + 4, typeRule);
            _report.AddStructural("bpf_map", "value_size", type + 8, typeRule);
            _report.AddStructural("bpf_map", "max_entries", type + 12, typeRule);
        }
        else ReportUnknown("needs bpf_map.map_type", ("bpf_map", "key_size"), ("bpf_map", "value_size"), ("bpf_map", "max_entries"));
        var names = new List<int>();
        for (int n = 0; n + BpfRule.ObjectNameLength <= BpfMapWindow; n++)
        {
            Step(windows.Count);
            if (windows.All(x => BpfRule.IsObjectName(x.W.AsSpan(n))) && windows.Any(x => x.W![n] != 0)) names.Add(n);
        }
        // A name's tail is a name too: only the first of a run of offsets starts the field.
        var starts = names.Where(n => !names.Contains(n - 1)).ToList();
        int? name = _report.Add("bpf_map", "name", starts, "char[16] object name (letters, digits, '_', '.', NUL-terminated, zero after) in every listed map, non-empty in some; the first offset of a run");
        // struct bpf_map has declared id after max_entries and before name since both came (4.13, 4.15): with few maps a
        // small id is also a counter's value elsewhere (usercnt after PREEMPT_RT's larger freeze_mutex, past name).
        int idFrom = mapType + 16 ?? 0, idBefore = name ?? BpfMapWindow; // past the four u32 attributes
        var ids = new List<int>();
        for (int y = idFrom; y + 4 <= idBefore; y += 4)
        {
            Step(windows.Count);
            if (windows.All(x => U32(x.W!, y) == x.M.Id)) ids.Add(y);
        }
        _report.Add("bpf_map", "id", ids, "u32 equal to the map's map_idr index in every listed map (bpf_map_alloc_id stores the index it got), "
            + "declared after max_entries and before name");
    }

    private void InferBpfLinks(List<BpfObject> links, List<BpfObject> progs)
    {
        var windows = links.Select(l => (L: l, W: SmallWindow(l.Address))).ToList();
        if (windows.Any(x => x.W is null)) { ReportUnknown("a listed bpf_link is unreadable", BpfLinkMembers); return; }
        var progSet = progs.Select(p => p.Address).ToHashSet();
        var ps = new List<int>();
        for (int x = 0; x + _p <= _smallBytes; x += _p)
        {
            Step(windows.Count);
            if (windows.All(l => progSet.Contains(Word(l.W!, x)))) ps.Add(x);
        }
        _report.Add("bpf_link", "prog", ps, "pointer to a listed program (prog_idr) in every listed link");
        var ids = new List<int>();
        for (int y = 0; y + 4 <= _smallBytes; y += 4)
        {
            Step(windows.Count);
            if (windows.All(l => U32(l.W!, y) == l.L.Id)) ids.Add(y);
        }
        int? id = _report.Add("bpf_link", "id", ids, "u32 equal to the link's link_idr index in every listed link (bpf_link_settle stores the index it got)");
        if (id is { } at && windows.All(l => U32(l.W!, at + 4) is >= 1 and < BpfMaxLinkType))
            _report.AddStructural("bpf_link", "type", at + 4, "u32 id; enum bpf_link_type type; (declaration order since 5.8); checked: a link type (1..63) in every listed link");
        else _report.AddUnknown("bpf_link", "type", "needs bpf_link.id, and a link type (1..63) after it in every listed link");
    }
}
