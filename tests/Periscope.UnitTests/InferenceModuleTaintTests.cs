using Periscope.Linux.Inference;
using Periscope.Linux.Kallsyms;
using Periscope.Linux.Model;
using Periscope.Memory;
using Periscope.UnitTests.Linux;

namespace Periscope.UnitTests;

/// <summary>
/// module.taints and the taint_flags[] layout without BTF (ModuleTaintRule) on synthetic memory: the 6.1 table (3-byte
/// entries) and the 6.12+ one (16 bytes with a desc pointer), module lists with and without a tainted module, and hostile
/// tables. Before this rule module.taints was never inferred, so /proc/modules' "(OE)" markers were missing without BTF.
/// </summary>
public class InferenceModuleTaintTests
{
    private const ulong B = SyntheticGuest.Base;
    private const ulong Table = B + 0x30_0000, TaintedMask = B + 0x31_0000;
    private const int Taints = 0x1d0, Kallsyms = Taints + 40;
    private static readonly ulong[] Modules = [B + 0x10_0000, B + 0x10_2000, B + 0x10_4000];
    private const ulong OE = 1UL << 12 | 1UL << 13;

    /// <summary>kernel/panic.c's taint_flags[] of 6.1+ (19 entries, P .. N) with entries of <paramref name="stride"/> bytes:
    /// { c_true, c_false, module } then, at 8, the desc pointer of 6.12+.</summary>
    private static void WriteTable(SyntheticGuest g, int stride, string letters = "PFSRMBUDAWCIOELKXTN", bool moduleMember = true)
    {
        const string moduleFlags = "PFCOEKXTN";
        for (int i = 0; i < letters.Length; i++)
        {
            ulong e = Table + (ulong)(i * stride);
            g.Text(e, $"{letters[i]}{(i == 0 ? 'G' : ' ')}");
            g.Text(e + 2, moduleMember && moduleFlags.Contains(letters[i]) ? "\u0001" : "");
            if (stride >= 16) g.U64(e + 8, B + 0x32_0000 + (ulong)(i * 0x40));
        }
    }

    /// <summary>Three modules; <paramref name="taints"/>[i] at module.taints, a bug_list (an empty list) after it.</summary>
    private static InferenceReport Infer(ulong[] taints, int stride = 3, ulong? mask = OE, Action<SyntheticGuest>? tamper = null, int? kallsyms = Kallsyms,
        string? letters = "PFSRMBUDAWCIOELKXTN", ulong? codeRefersTo = null, bool moduleMember = true)
    {
        using var g = new SyntheticGuest();
        if (letters is not null) WriteTable(g, stride, letters, moduleMember);
        if (mask is { } m) g.U64(TaintedMask, m);
        for (int i = 0; i < Modules.Length; i++)
        {
            ulong mod = Modules[i];
            g.Text(mod + 0x18, $"mod{i}");
            g.U64(mod + Taints, taints[i]);
            g.U64(mod + Taints + 16, mod + Taints + 16); // bug_list: empty, pointing to itself
            g.U64(mod + Taints + 24, mod + Taints + 16);
        }
        tamper?.Invoke(g);
        var symbols = new List<KernelSymbol>();
        if (codeRefersTo is { } target) symbols.Add(PrintTainted(g, target));
        else symbols.Add(new(Table, 'R', "taint_flags"));
        if (mask is not null) symbols.Add(new(TaintedMask, 'b', "tainted_mask"));
        var limits = new IntrospectionLimits();
        return OffsetInference.InferModuleTaints(g.Reader(limits), new KernelSymbols(symbols), limits, Modules, kallsyms);
    }

    private const ulong Code = B + 0x40_0000;

    /// <summary>print_tainted as a kernel without data symbols has it: a text symbol whose code loads
    /// <paramref name="target"/> (lea rax, [rip + disp32]; ret) — the table, or a member of its first entry; with
    /// <paramref name="returnFirst"/> after an early ret (6.1's "Not tainted" branch returns before the loop).</summary>
    private static KernelSymbol PrintTainted(SyntheticGuest g, ulong target, bool returnFirst = false)
    {
        ulong lea = returnFirst ? Code + 1 : Code;
        if (returnFirst) g.U32(Code, 0xc3);
        g.U32(lea, 0x00_05_8d_48); // 48 8d 05: lea rax, [rip + disp32]
        g.U32(lea + 3, (uint)(int)(long)(target - (lea + 7)));
        g.U32(lea + 7, 0xc3); // ret
        return new(Code, 't', "print_tainted");
    }

    [Theory]
    [InlineData(3, 0)]
    [InlineData(3, 1)]   // the code refers to taint_flags[0].c_false
    [InlineData(16, 2)]  // taint_flags[0].module, 6.12+ entries
    public void Without_data_symbols_the_table_is_the_one_address_print_tainted_refers_to(int stride, int member)
    {
        using var g = new SyntheticGuest();
        WriteTable(g, stride);
        var symbols = new KernelSymbols([PrintTainted(g, Table + (ulong)member)]);
        var limits = new IntrospectionLimits();
        Assert.Equal(Table, ModuleTaintRule.FindTable(g.Reader(limits), symbols, limits));
        var afterRet = new KernelSymbols([PrintTainted(g, Table + (ulong)member, returnFirst: true)]);
        Assert.Equal(Table, ModuleTaintRule.FindTable(g.Reader(limits), afterRet, limits));
        var r = Infer([0, OE, 0], stride, codeRefersTo: Table + (ulong)member);
        Assert.Equal(stride, r.Find("taint_flag", InferenceReport.SizeOfMember)?.Offset);
        Assert.Equal(Taints, r.Find("module", "taints")?.Offset);
    }

    [Fact]
    public void Without_data_symbols_code_referring_to_no_table_finds_none()
    {
        var r = Infer([0, OE, 0], codeRefersTo: B + 0x38_0000);
        Assert.False(r.Find("taint_flag", InferenceReport.SizeOfMember)!.IsKnown);
        Assert.Contains("print_tainted", r.Find("taint_flag", InferenceReport.SizeOfMember)!.Rule);
        Assert.False(r.Find("module", "taints")!.IsKnown);
    }

    [Theory]
    [InlineData(3)]  // 6.1: { char c_true; char c_false; bool module; }
    [InlineData(16)] // 6.12+: { ...; const char *desc; }
    public void The_table_layout_and_module_taints_are_found_on_a_tainted_module_list(int stride)
    {
        var r = Infer([0, OE, 0], stride);
        Assert.Equal(stride, r.Find("taint_flag", InferenceReport.SizeOfMember)?.Offset);
        Assert.Equal(0, r.Find("taint_flag", "c_true")?.Offset);
        Assert.Equal(1, r.Find("taint_flag", "c_false")?.Offset);
        Assert.Equal(2, r.Find("taint_flag", "module")?.Offset);
        var taints = r.Find("module", "taints");
        Assert.Equal(Taints, taints?.Offset);
        Assert.Equal(InferenceDecision.Unique, taints!.Decision);
    }

    [Fact]
    public void The_module_bits_are_the_entries_with_module_set_up_to_the_end_of_the_table()
    {
        using var g = new SyntheticGuest();
        WriteTable(g, 16);
        var bytes = new byte[ModuleTaintRule.TableBytes];
        g.Reader(new IntrospectionLimits()).Read(Table, bytes);
        var layout = Assert.Single(ModuleTaintRule.Layouts(bytes, _ => { }));
        Assert.Equal(new TaintFlagLayout(16, 0, 1, 2), layout);
        // P F C O E K X T N: bits 0 1 10 12 13 15 16 17 18; the zero bytes after entry 18 end the table.
        Assert.Equal(0b111_1011_0100_0000_0011UL, ModuleTaintRule.ModuleBits(bytes, layout));
    }

    [Fact]
    public void A_7_x_table_without_the_module_member_is_found_and_every_taint_bit_counts_as_a_modules()
    {
        // 7.x: struct taint_flag { char c_true; char c_false; const char *desc; }; module_flags_taint prints every set bit.
        var r = Infer([0, 1UL << 10, 0], stride: 16, mask: 1UL << 10 | 1UL << 9, moduleMember: false);
        Assert.Equal(16, r.Find("taint_flag", InferenceReport.SizeOfMember)?.Offset);
        Assert.Equal(1, r.Find("taint_flag", "c_false")?.Offset);
        Assert.Equal(InferenceDecision.NotFound, r.Find("taint_flag", "module")!.Decision);
        Assert.Equal(Taints, r.Find("module", "taints")?.Offset);

        using var g = new SyntheticGuest();
        WriteTable(g, 16, moduleMember: false);
        var bytes = new byte[ModuleTaintRule.TableBytes];
        g.Reader(new IntrospectionLimits()).Read(Table, bytes);
        var layout = Assert.Single(ModuleTaintRule.Layouts(bytes, _ => { }));
        Assert.Equal(new TaintFlagLayout(16, 0, 1, null), layout);
        Assert.Equal((1UL << 19) - 1, ModuleTaintRule.ModuleBits(bytes, layout));
    }

    [Fact]
    public void With_no_tainted_module_taints_stays_unknown_and_says_no_module_carries_taint_evidence()
    {
        var r = Infer([0, 0, 0]);
        var taints = r.Find("module", "taints");
        Assert.NotNull(taints);
        Assert.False(taints!.IsKnown);
        Assert.Contains("no listed module carries taint evidence", taints.Rule);
        Assert.Equal(3, r.Find("taint_flag", InferenceReport.SizeOfMember)?.Offset); // the table is found all the same
    }

    [Fact]
    public void A_word_with_bits_outside_tainted_mask_or_no_module_flag_is_no_candidate()
    {
        var r = Infer([0, OE, 0], tamper: g =>
        {
            g.U64(Modules[0] + 0x300, 1UL << 0);  // P: a module flag, but the kernel is not tainted P
            g.U64(Modules[1] + 0x308, 1UL << 9);  // W: no module flag
        });
        Assert.Equal([Taints], r.Find("module", "taints")!.Candidates);
    }

    [Fact]
    public void Two_fitting_words_are_told_apart_by_declaration_order_and_left_ambiguous_without_it()
    {
        static void Distractor(SyntheticGuest g) => g.U64(Modules[2] + 0x300, 1UL << 12);
        var ordered = Infer([0, OE, 0], tamper: Distractor);
        var taints = ordered.Find("module", "taints")!;
        Assert.Equal([Taints, 0x300], taints.Candidates);
        Assert.Equal((Taints, InferenceDecision.TieBreak), (taints.Offset, taints.Decision));

        var unordered = Infer([0, OE, 0], tamper: Distractor, kallsyms: null);
        Assert.Equal(InferenceDecision.Ambiguous, unordered.Find("module", "taints")!.Decision);
        Assert.Null(unordered.Find("module", "taints")!.Offset);
        // bug_list not a list node: the order fact is not checked, so no tie-break either
        var broken = Infer([0, OE, 0], tamper: g => { Distractor(g); g.U64(Modules[0] + Taints + 16, 0x1234); });
        Assert.Null(broken.Find("module", "taints")!.Offset);
    }

    [Fact]
    public void Without_tainted_mask_the_module_bits_alone_bound_the_values()
    {
        var r = Infer([OE, 0, 1UL << 0], mask: null);
        Assert.Equal(Taints, r.Find("module", "taints")?.Offset);
    }

    [Fact]
    public void A_hostile_table_fits_no_layout_and_leaves_taints_unknown()
    {
        // Letters out of TAINT_* order, a module flag of 2, a table of only 7 entries; then no table at all.
        foreach (var (tamper, letters) in new (Action<SyntheticGuest>?, string)[]
                 {
                     (g => g.Text(Table + 3 * 5, "XX"), "PFSRMBUDAWCIOELKXTN"),
                     (g => g.Text(Table + 3 * 12 + 2, "\u0002"), "PFSRMBUDAWCIOELKXTN"),
                     (null, "PFSRMBU"),
                 })
        {
            var r = Infer([0, OE, 0], tamper: tamper, letters: letters);
            Assert.False(r.Find("taint_flag", InferenceReport.SizeOfMember)?.IsKnown ?? false);
            Assert.False(r.Find("module", "taints")!.IsKnown);
            Assert.Contains("taint_flags layout", r.Find("module", "taints")!.Rule);
        }
        var none = Infer([0, OE, 0], letters: null);
        Assert.False(none.Find("module", "taints")!.IsKnown);
    }

    [Fact]
    public void Build_assembles_the_taint_offsets_the_module_list_reads()
    {
        var members = InferenceCacheTests.Debian61.Append(("module", "taints", 0x1d0)).Append(("taint_flag", InferenceReport.SizeOfMember, 16))
            .Append(("taint_flag", "c_true", 0)).Append(("taint_flag", "c_false", 1)).Append(("taint_flag", "module", 2));
        var report = InferenceCacheTests.Parse(InferenceCacheTests.Entry(members), out string? error);
        Assert.True(report is not null, error);
        Assert.Equal(new ModuleTaintOffsets { Taints = 0x1d0, FlagSize = 16, FlagLetter = 0, FlagModule = 2 },
            OffsetInference.Build(report!, IntrospectionLimits.Default).ModuleTaint);
        // 7.x: no module member (reported not found): every set bit is printed.
        var entry = InferenceCacheTests.Entry(members.Where(m => m.Item2 != "module"));
        entry["members"]!.AsArray().Add(new System.Text.Json.Nodes.JsonObject
        {
            ["struct"] = "taint_flag", ["member"] = "module", ["offset"] = null, ["decision"] = "NotFound", ["candidates"] = new System.Text.Json.Nodes.JsonArray(), ["rule"] = "test",
        });
        var noModule = InferenceCacheTests.Parse(entry, out error);
        Assert.True(noModule is not null, error);
        Assert.Equal(new ModuleTaintOffsets { Taints = 0x1d0, FlagSize = 16, FlagLetter = 0, FlagModule = null },
            OffsetInference.Build(noModule!, IntrospectionLimits.Default).ModuleTaint);
        var without = InferenceCacheTests.Parse(InferenceCacheTests.Entry(InferenceCacheTests.Debian61), out _)!;
        Assert.Null(OffsetInference.Build(without, IntrospectionLimits.Default).ModuleTaint);
    }
}
