using System.Text;
using Periscope.Linux.Inference;
using Periscope.Linux.Kallsyms;
using Periscope.Linux.Model;
using Periscope.Memory;
using Periscope.UnitTests.Linux;

namespace Periscope.UnitTests;

/// <summary>
/// The bpf rules without BTF (BpfRules) on a synthetic x86-64 guest laid out as Debian 6.1's BTF says: prog_idr with two
/// JIT-ed programs (one using a map), map_idr with one map, link_idr with one link. Every member must come out as BTF has
/// it; hostile IDRs and objects (a node cycle, a huge IDR, lying lengths, no back link) must stop, bounded, and leave
/// members unknown rather than guessed.
/// </summary>
public class InferenceBpfTests
{
    private const ulong B = SyntheticGuest.Base;
    private const ulong ProgIdr = B + 0x1000, MapIdr = B + 0x1100, LinkIdr = B + 0x1200;
    private const ulong ProgNode = B + 0x2000, MapNode = B + 0x2400, LinkNode = B + 0x2800;
    private const ulong Prog1 = B + 0x10_0000, Prog2 = B + 0x11_0000, Aux1 = B + 0x20_0000, Aux2 = B + 0x21_0000;
    private const ulong Map = B + 0x30_0000, UsedMaps = B + 0x31_0000, Link = B + 0x40_0000, Jit = B + 0x50_0000;
    private const int XaHead = 8, RtXaHead = 40;
    // bpf_prog, bpf_prog_aux, bpf_map and bpf_link members (Debian 6.1 x86-64 BTF).
    private const int Type = 4, Len = 0xc, JitedLen = 0x10, Tag = 0x14, BpfFunc = 0x30, AuxPtr = 0x38, Insnsi = 0x48;
    private const int AuxId = 0x20, UsedMapCnt = 8, UsedMapsPtr = 0x358, AuxProg = 0x388, LoadTime = 0x398, AuxName = 0x3b8, KsymName = 0x108;
    private const int MapType = 0x18, MapId = 0x44, MapName = 0x68, LinkId = 8, LinkType = 0xc, LinkProg = 0x18;

    private static readonly byte[] ReturnZero = [0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0];

    private static InferenceReport Infer(Action<SyntheticGuest>? tamper = null, IntrospectionLimits? limits = null, bool withMaps = true, ulong aux2 = Aux2, uint mapId = 11,
        bool rtXa = false)
    {
        using var g = new SyntheticGuest();
        int xaHead = rtXa ? RtXaHead : XaHead;
        Idr(g, ProgIdr, ProgNode, [(3, Prog1), (7, Prog2)], xaHead);
        Idr(g, MapIdr, MapNode, withMaps ? [((int)mapId, Map)] : [], xaHead);
        Idr(g, LinkIdr, LinkNode, [(5, Link)], xaHead);
        Program(g, Prog1, Aux1, id: 3, type: 2, "pscope_kp", [0xa0, 0x4f, 0x5e, 0xef, 0x06, 0xa7, 0xf5, 0x55], ReturnZero, jit: Jit, loadTime: 5_000_000_000);
        // ld_imm64 r1, map; mov r0, 0; exit
        byte[] withMap = [0x18, 0x01, 0, 0, 0, 0, 0x30, 0x00, 0, 0, 0, 0, 0x80, 0x88, 0xff, 0xff, .. ReturnZero];
        Program(g, Prog2, aux2, id: 7, type: 1, "pscope_sf", [0x45, 0x62, 0xe7, 0xd0, 0x2f, 0x2e, 0x0f, 0x12], withMap, jit: Jit + 0x40, loadTime: 4_000_000_000);
        if (withMaps)
        {
            g.U32(aux2 + UsedMapCnt, 1);
            g.U64(aux2 + UsedMapsPtr, UsedMaps);
            g.U64(UsedMaps, Map);
            g.U64(Map, B + 0x9_0000); // ops
            g.U32(Map + MapType, 2);  // array
            g.U32(Map + MapType + 4, 4);
            g.U32(Map + MapType + 8, 8);
            g.U32(Map + MapType + 12, 4);
            g.U32(Map + MapId, mapId);
            g.Text(Map + MapName, "pscope_map");
        }
        g.U32(Link + LinkId, 5);
        g.U32(Link + LinkType, 3);
        g.U64(Link + LinkProg, Prog1);
        tamper?.Invoke(g);
        var limitsUsed = limits ?? new IntrospectionLimits();
        var symbols = new KernelSymbols([new(ProgIdr, 'd', "prog_idr"), new(MapIdr, 'd', "map_idr"), new(LinkIdr, 'd', "link_idr")]);
        return OffsetInference.InferBpfObjects(g.Reader(limitsUsed), symbols, limitsUsed, xaHead);
    }

    /// <summary>struct idr { xarray { spinlock, gfp_t xa_flags (IDR_RT_MARKER), xa_head } }; one xa_node (shift 0) holding
    /// the objects. xa_flags follows the spinlock: 4 bytes, or on PREEMPT_RT 32 (then padding before xa_head).</summary>
    private static void Idr(SyntheticGuest g, ulong idr, ulong node, (int Index, ulong Object)[] objects, int xaHead)
    {
        g.U32(idr + (xaHead == XaHead ? 4UL : 32UL), 0x0400_0004);
        if (objects.Length == 0) return;
        g.U64(idr + (ulong)xaHead, node | 2);
        g.U64(node + 16, idr); // array
        foreach (var (i, o) in objects) g.U64(node + 40 + (ulong)i * 8, o);
        g.U32(node, (uint)objects.Length << 16); // shift 0, offset 0, count
    }

    private static void Program(SyntheticGuest g, ulong prog, ulong aux, uint id, uint type, string name, byte[] tag, byte[] insns, ulong jit, ulong loadTime)
    {
        g.U32(prog, 1 | 7 << 16);
        g.U32(prog + Type, type);
        g.U32(prog + Len, (uint)(insns.Length / 8));
        g.U32(prog + JitedLen, 16);
        for (int i = 0; i < tag.Length; i += 4) g.U32(prog + Tag + (ulong)i, BitConverter.ToUInt32(tag, i));
        g.U64(prog + 0x20, B + 0x60_0000 + id * 0x100); // stats (per-CPU)
        g.U64(prog + BpfFunc, jit);
        g.U64(prog + AuxPtr, aux);
        for (int i = 0; i < insns.Length; i += 4) g.U32(prog + Insnsi + (ulong)i, BitConverter.ToUInt32(insns, i));
        g.U32(aux + AuxId, id);
        g.U64(aux + AuxProg, prog);
        g.U64(aux + LoadTime, loadTime);
        g.Text(aux + AuxName, name);
        g.U64(aux + KsymName - 16, jit);
        g.U64(aux + KsymName - 8, jit + 16);
        g.Text(aux + KsymName, $"bpf_prog_{Convert.ToHexStringLower(tag)}_{name}");
    }

    private static int? Offset(InferenceReport r, string s, string m) => r.Find(s, m)?.Offset;

    [Fact]
    public void Every_member_comes_out_as_btf_has_it()
    {
        var r = Infer();
        Assert.Equal(XaHead, Offset(r, "idr", "idr_rt.xa_head"));
        Assert.Equal([Type, Len, JitedLen, Tag, BpfFunc, AuxPtr, Insnsi],
            new[] { "type", "len", "jited_len", "tag", "bpf_func", "aux", "insnsi" }.Select(m => Offset(r, "bpf_prog", m)));
        Assert.Equal([AuxId, AuxName, LoadTime, UsedMapsPtr, UsedMapCnt, AuxProg],
            new[] { "id", "name", "load_time", "used_maps", "used_map_cnt", "prog" }.Select(m => Offset(r, "bpf_prog_aux", m)));
        Assert.Equal([MapType, MapType + 4, MapType + 8, MapType + 12, MapId, MapName],
            new[] { "map_type", "key_size", "value_size", "max_entries", "id", "name" }.Select(m => Offset(r, "bpf_map", m)));
        Assert.Equal([LinkId, LinkType, LinkProg], new[] { "id", "type", "prog" }.Select(m => Offset(r, "bpf_link", m)));
        var offsets = BpfOffsets.FromReport(r);
        Assert.NotNull(offsets?.Prog);
        Assert.NotNull(offsets.Map);
        Assert.NotNull(offsets.Link);
    }

    [Fact]
    public void A_slab_neighbours_members_do_not_make_the_used_maps_ambiguous()
    {
        // The second program's aux is the first one's slab neighbour (kmalloc-2k): the first aux's window holds its
        // used_map_cnt/used_maps pair too, 0x800 further on.
        var r = Infer(aux2: Aux1 + 0x800);
        Assert.Equal(UsedMapCnt, Offset(r, "bpf_prog_aux", "used_map_cnt"));
        Assert.Equal(InferenceDecision.TieBreak, r.Find("bpf_prog_aux", "used_map_cnt")!.Decision);
        Assert.Equal(UsedMapsPtr, Offset(r, "bpf_prog_aux", "used_maps"));
    }

    [Fact]
    public void A_map_id_of_1_before_zeros_does_not_read_as_a_second_map_type()
    {
        // Debian 6.12: { u32 map_flags; u32 id = 1; struct btf_record *record = NULL; int numa_node = -1; } after the
        // attributes, and past the bpf_map the bpf_array's { 1, 0, elem_size 8, index_mask 3 }: both read as
        // { hash, key_size 0, ... } with the first map's id 1, which no hash map has.
        var r = Infer(g =>
        {
            g.U32(Map + 0x34, 1);
            g.U32(Map + 0x40, uint.MaxValue);
            g.U32(Map + 0xf0, 1);
            g.U32(Map + 0xf8, 8);
            g.U32(Map + 0xfc, 3);
        }, mapId: 1);
        Assert.Equal(MapType, Offset(r, "bpf_map", "map_type"));
        Assert.Equal(InferenceDecision.Unique, r.Find("bpf_map", "map_type")!.Decision);
        Assert.Equal(MapType + 12, Offset(r, "bpf_map", "max_entries"));
    }

    [Fact]
    public void Without_a_listed_map_the_used_maps_stay_unknown_and_the_map_members_too()
    {
        var r = Infer(withMaps: false);
        Assert.Null(Offset(r, "bpf_prog_aux", "used_maps"));
        Assert.Null(Offset(r, "bpf_map", "map_type"));
        Assert.NotNull(Offset(r, "bpf_prog", "aux"));
    }

    [Fact]
    public void A_program_whose_aux_does_not_point_back_leaves_aux_and_everything_behind_it_unknown()
    {
        var r = Infer(g => g.U64(Aux2 + AuxProg, Prog1));
        Assert.Null(Offset(r, "bpf_prog", "aux"));
        Assert.Null(Offset(r, "bpf_prog_aux", "name"));
        Assert.Null(BpfOffsets.FromReport(r)?.Prog);
    }

    [Fact]
    public void A_lying_length_is_no_program_and_len_stays_unknown()
    {
        // len 300 reads past the two instructions into zeros: no verified program ends so.
        var r = Infer(g => g.U32(Prog1 + Len, 300));
        Assert.Null(Offset(r, "bpf_prog", "len"));
        Assert.Null(Offset(r, "bpf_prog", "insnsi"));
        Assert.Null(Offset(r, "bpf_prog", "type"));
        // A length past the evidence cap is refused before reading.
        var huge = Infer(g => g.U32(Prog1 + Len, uint.MaxValue));
        Assert.Null(Offset(huge, "bpf_prog", "len"));
    }

    [Fact]
    public void An_idr_node_cycle_is_no_evidence()
    {
        // A slot of the prog_idr node pointing back at the node itself (an internal entry): the walk reports it, the rules refuse it.
        var r = Infer(g => g.U64(ProgNode + 40 + 9 * 8, ProgNode | 2));
        Assert.Null(Offset(r, "bpf_prog", "aux"));
        Assert.Contains("prog_idr", r.Find("bpf_prog", "aux")!.Rule, StringComparison.Ordinal);
    }

    [Fact]
    public void A_huge_idr_is_read_up_to_the_sample_cap_within_the_step_budget()
    {
        var limits = new IntrospectionLimits { MaxInferenceSteps = 2_000_000 };
        var r = Infer(g =>
        {
            // Every slot of the node holds a program-looking pointer (64 of them, most with nothing behind them).
            for (int i = 0; i < 64; i++) if (i is not 3 and not 7) g.U64(ProgNode + 40 + (ulong)i * 8, B + 0x100_0000 + (ulong)i * 0x1000);
        }, limits);
        Assert.True(r.Steps <= limits.MaxInferenceSteps);
        Assert.Null(Offset(r, "bpf_prog", "aux"));
    }

    /// <summary>With one map its id (1) is also usercnt's value; usercnt is declared after name (after PREEMPT_RT's larger
    /// freeze_mutex too), id before it.</summary>
    [Fact]
    public void A_counter_equal_to_the_map_id_after_the_name_is_not_the_id()
    {
        var r = Infer(g => g.U64(Map + MapName + 0x30, 11), mapId: 11);
        Assert.Equal(MapId, Offset(r, "bpf_map", "id"));
        Assert.Equal(InferenceDecision.Unique, r.Find("bpf_map", "id")!.Decision);
    }

    /// <summary>PREEMPT_RT: struct xarray { spinlock_t (a 32-byte rt_mutex), gfp_t xa_flags, 4 bytes of padding, xa_head @40 }.</summary>
    [Fact]
    public void Preempt_rt_idrs_have_their_flags_before_the_padding()
    {
        var r = Infer(rtXa: true);
        Assert.Equal(RtXaHead, Offset(r, "idr", "idr_rt.xa_head"));
        Assert.Equal(Len, Offset(r, "bpf_prog", "len"));
        // Padding that is not zero is no padding: the word before xa_head must then be xa_flags itself.
        Assert.Null(Offset(Infer(g => g.U32(ProgIdr + RtXaHead - 4, 0x10), rtXa: true), "idr", "idr_rt.xa_head"));
    }

    [Fact]
    public void An_idr_not_flagged_as_an_idr_is_refused()
    {
        var r = Infer(g => g.U32(ProgIdr + 4, 0));
        Assert.Null(Offset(r, "idr", "idr_rt.xa_head"));
        Assert.Null(BpfOffsets.FromReport(r));
    }

    [Theory]
    [InlineData("pscope_map", true)]
    [InlineData("", true)]
    [InlineData("bad name", false)]
    [InlineData("sixteen_chars_xx", false)]
    public void Object_names_are_what_bpf_obj_name_cpy_accepts(string name, bool accepted)
    {
        var field = new byte[16];
        Encoding.ASCII.GetBytes(name).AsSpan(0, Math.Min(name.Length, 16)).CopyTo(field);
        Assert.Equal(accepted, BpfRule.IsObjectName(field));
    }

    [Fact]
    public void A_kallsyms_name_gives_tag_and_name()
    {
        var parsed = BpfRule.ParseKsymName(Encoding.ASCII.GetBytes("bpf_prog_a04f5eef06a7f555_pscope_kp\0"));
        Assert.NotNull(parsed);
        Assert.Equal("a04f5eef06a7f555", Convert.ToHexStringLower(parsed.Value.Tag));
        Assert.Equal("pscope_kp", parsed.Value.Name);
        Assert.Null(BpfRule.ParseKsymName(Encoding.ASCII.GetBytes("bpf_prog_A04F5EEF06A7F555_x\0")));
        Assert.Null(BpfRule.ParseKsymName(Encoding.ASCII.GetBytes("bpf_prog_a04f\0")));
    }

    [Fact]
    public void Instructions_read_as_a_program_only_with_valid_registers_and_an_exit_last()
    {
        Assert.True(BpfRule.IsProgram(ReturnZero));
        Assert.False(BpfRule.IsProgram(ReturnZero.AsSpan(0, 8)));                                   // no exit
        Assert.False(BpfRule.IsProgram([0xb7, 0xbb, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0])); // r11
        Assert.False(BpfRule.IsProgram(new byte[16]));                                             // zero opcodes
        Assert.False(BpfRule.IsProgram([0x18, 0x01, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0])); // ld_imm64 without its second half
    }

    [Fact]
    public void Map_attributes_follow_the_map_types_rules()
    {
        Assert.True(BpfRule.IsMapAttributes(2, 4, 8, 4));
        Assert.False(BpfRule.IsMapAttributes(2, 8, 8, 4));   // an array's key is a u32
        Assert.False(BpfRule.IsMapAttributes(1, 4, 8, 0));   // no entries
        Assert.False(BpfRule.IsMapAttributes(0, 4, 8, 4));   // unspec
        Assert.False(BpfRule.IsMapAttributes(1, 4096, 8, 4)); // a key larger than the stack
        Assert.False(BpfRule.IsMapAttributes(1, 0, 0, uint.MaxValue)); // a hash map needs a key and a value
        Assert.False(BpfRule.IsMapAttributes(1, 0, 8, 3));
        Assert.False(BpfRule.IsMapAttributes(2, 4, 0, 4));   // an array needs a value
        Assert.True(BpfRule.IsMapAttributes(27, 0, 0, 4096)); // ringbuf: neither key nor value
        Assert.False(BpfRule.IsMapAttributes(27, 4, 0, 4096));
        Assert.True(BpfRule.IsMapAttributes(22, 0, 8, 16));   // queue: a value, no key
        Assert.False(BpfRule.IsMapAttributes(22, 0, 0, 16));
        Assert.False(BpfRule.IsMapAttributes(22, 4, 8, 16));
        Assert.True(BpfRule.IsMapAttributes(40, 0, 0, 1));    // a type newer than the lists: only the generic bounds
    }
}

/// <summary>BpfIdrCode: the IDR passed to idr_find/idr_get_next as the first argument, on synthetic x86-64 and i386 code.</summary>
public class BpfIdrCodeTests
{
    private static byte[] Rel32(ulong from, ulong to) => BitConverter.GetBytes((int)(long)(to - from));

    /// <summary>bpf_prog_by_id: spin_lock_bh(&amp;prog_idr_lock); idr_find(&amp;prog_idr, id); ret.</summary>
    private static byte[] Code(ulong at, ulong lockFn, ulong lookup, uint lockAddress, uint idrAddress, bool x64)
    {
        var code = new List<byte>();
        void LoadFirst(uint value) { if (x64) code.AddRange([0x48, 0xc7, 0xc7]); else code.Add(0xb8); code.AddRange(BitConverter.GetBytes(value)); }
        void Call(ulong target) { code.Add(0xe8); code.AddRange(Rel32(at + (ulong)code.Count + 4, target)); }
        LoadFirst(lockAddress);
        Call(lockFn);
        LoadFirst(idrAddress);
        Call(lookup);
        code.Add(0xc3);
        return [.. code];
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void The_idr_is_the_first_argument_of_idr_find_not_the_lock(bool x64)
    {
        ulong high = x64 ? 0xffff_ffff_0000_0000 : 0;
        ulong fn = high | 0x8100_0000, lockFn = high | 0x8120_0000, idrFind = high | 0x8110_0000;
        uint lockAddress = 0x8200_0100, idrAddress = 0x8200_0200;
        var code = Code(fn, lockFn, idrFind, lockAddress, idrAddress, x64);
        var symbols = new Dictionary<string, ulong> { ["bpf_prog_by_id"] = fn, ["idr_find"] = idrFind, ["_raw_spin_lock_bh"] = lockFn };
        ulong? found = BpfIdrCode.Find("prog_idr", s => symbols.TryGetValue(s, out ulong a) ? a : null, a => a == fn ? code : null, x64 ? 8 : 4, _ => true, out string how);
        Assert.Equal(high | idrAddress, found);
        Assert.Contains("bpf_prog_by_id", how, StringComparison.Ordinal);
        // An address the shape check refuses is no answer.
        Assert.Null(BpfIdrCode.Find("prog_idr", s => symbols.TryGetValue(s, out ulong a) ? a : null, a => a == fn ? code : null, x64 ? 8 : 4, _ => false, out _));
        // Without idr_find in kallsyms nothing is taken.
        Assert.Null(BpfIdrCode.Find("prog_idr", s => s == "bpf_prog_by_id" ? fn : null, a => a == fn ? code : null, x64 ? 8 : 4, _ => true, out _));
    }
}
