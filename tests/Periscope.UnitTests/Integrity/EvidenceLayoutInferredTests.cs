using Periscope.Integrity.Evidence;
using Periscope.Linux.Inference;
using Periscope.Linux.Model;
using Periscope.Memory;

namespace Periscope.UnitTests.Integrity;

/// <summary>
/// Evidence without BTF: the inferred patch-table members survive the offsets cache and become the evidence layout, with
/// the x86 ABI's fixed entry layouts for the guest's word size; unknown members leave their family out (a gap), never a
/// guessed offset. The static-call pair found in code is tested on encoded instructions, including garbage.
/// </summary>
public class EvidenceLayoutInferredTests
{
    /// <summary>Debian 6.1's BTF values (checked against g61's BTF: module 0x2b8/0x2c0/0x318/0x314, ftrace_ops 0/8/0x90/0x98).</summary>
    private static readonly (string Struct, string Member, int Offset)[] PatchTables61 =
    [
        ("module", "jump_entries", 0x2b8), ("module", "num_jump_entries", 0x2c0), ("module", "static_call_sites", 0x318),
        ("module", "num_static_call_sites", 0x314), ("ftrace_ops", "func", 0), ("ftrace_ops", "next", 8),
        ("ftrace_ops", "trampoline", 0x90), ("ftrace_ops", "trampoline_size", 0x98),
    ];

    private static (string, string, int)[] ModuleKallsyms(int p) =>
    [
        ("module", "kallsyms", 0x1f8), ("mod_kallsyms", "symtab", 0), ("mod_kallsyms", "num_symtab", p), ("mod_kallsyms", "strtab", 2 * p),
        ("mod_kallsyms", "typetab", 3 * p), (p == 8 ? "elf64_sym" : "elf32_sym", "st_name", 0), (p == 8 ? "elf64_sym" : "elf32_sym", "st_value", p == 8 ? 8 : 4),
        (p == 8 ? "elf64_sym" : "elf32_sym", InferenceReport.SizeOfMember, p == 8 ? 24 : 16),
    ];

    private static KernelOffsets Offsets(IEnumerable<(string, string, int)> members, int pointerSize = 8)
    {
        var entry = InferenceCacheTests.Entry(members);
        entry["pointer_size"] = pointerSize;
        var report = InferenceCacheTests.Parse(entry, out string? error);
        Assert.True(report is not null, error);
        return OffsetInference.Build(report!, IntrospectionLimits.Default);
    }

    [Fact]
    public void Inferred_members_round_trip_the_cache_into_the_x86_64_layout()
    {
        var o = Offsets([.. InferenceCacheTests.Debian61, .. PatchTables61, .. ModuleKallsyms(8)]);
        Assert.Equal(new PatchTableOffsets
        {
            ModuleJumpEntries = 0x2b8, ModuleNumJumpEntries = 0x2c0, ModuleStaticCallSites = 0x318, ModuleNumStaticCallSites = 0x314,
            FtraceOpsFunc = 0, FtraceOpsNext = 8, FtraceOpsTrampoline = 0x90, FtraceOpsTrampolineSize = 0x98,
        }, o.PatchTables);
        var names = OffsetTable.Of(o).Select(e => e.Name).ToHashSet();
        Assert.Contains("module.num_static_call_sites", names);
        Assert.Contains("ftrace_ops.trampoline_size", names);

        var l = EvidenceLayout.FromInferred(o, 8);
        // Debian 6.1 BTF: sizeof(jump_entry) 16, static_call_site 8, dyn_ftrace 16, ftrace_page 24 with index at 16, elf64_sym 24.
        Assert.Equal((16, 0, 4), (l.JumpEntry!.Size, l.JumpEntry["code"], l.JumpEntry["target"]));
        Assert.Equal(8, l.StaticCallSite!.Size);
        Assert.Equal((16, 0), (l.DynFtrace!.Size, l.DynFtrace["ip"]));
        Assert.Equal((24, 0, 8, 16), (l.FtracePage!.Size, l.FtracePage["next"], l.FtracePage["records"], l.FtracePage["index"]));
        Assert.Equal((24, 4, 8, 16), (l.ElfSymbol!.Size, l.ElfSymbol["st_info"], l.ElfSymbol["st_value"], l.ElfSymbol["st_size"]));
        Assert.Equal((0x2b8, 0x2c0, 0x318, 0x314, 0x1f8), (l.ModuleTables!["jump_entries"], l.ModuleTables["num_jump_entries"],
            l.ModuleTables["static_call_sites"], l.ModuleTables["num_static_call_sites"], 0x1f8));
        Assert.Equal((0x90, 0x98), (l.FtraceOps!["trampoline"], l.FtraceOps["trampoline_size"]));
        Assert.Equal((8, 16), (l.ModuleKallsyms!["num_symtab"], l.ModuleKallsyms["strtab"]));
        Assert.Equal(0x1f8, l.ModuleTables["kallsyms"]);
        Assert.Empty(l.Missing);
    }

    [Fact]
    public void I386_layout_has_no_inline_static_calls_and_reads_elf32_symbols()
    {
        var o = Offsets([.. InferenceCacheTests.Debian61, ("module", "jump_entries", 0x100), ("module", "num_jump_entries", 0x104),
            ("ftrace_ops", "func", 0), ("ftrace_ops", "next", 4), .. ModuleKallsyms(4)], pointerSize: 4);
        var l = EvidenceLayout.FromInferred(o, 4);
        Assert.Equal(12, l.JumpEntry!.Size);
        Assert.Null(l.StaticCallSite);
        Assert.Equal((8, 4, 8), (l.DynFtrace!.Size, l.FtracePage!["records"], l.FtracePage["index"]));
        Assert.Equal(("elf32_sym", 16, 12, 4, 8), (l.ElfSymbol!.Struct, l.ElfSymbol.Size, l.ElfSymbol["st_info"], l.ElfSymbol["st_value"], l.ElfSymbol["st_size"]));
        Assert.False(l.ModuleTables!.Members.ContainsKey("static_call_sites"));
        // No registered ops had a trampoline: the pair stays unknown and is not in the layout (read as none, never guessed).
        Assert.False(l.FtraceOps!.Members.ContainsKey("trampoline"));
    }

    [Fact]
    public void Unknown_members_leave_their_family_out_with_a_reason()
    {
        var o = Offsets(InferenceCacheTests.Debian61);
        var l = EvidenceLayout.FromInferred(o, 8);
        Assert.Null(l.ModuleTables);
        Assert.Null(l.FtraceOps);
        Assert.Null(l.ModuleKallsyms);
        Assert.Contains(l.Missing, m => m.Contains("module.jump_entries", StringComparison.Ordinal));
        Assert.Contains(l.Missing, m => m.Contains("ftrace_ops.func", StringComparison.Ordinal));
    }

    private static readonly byte[] AddModule61 =
    [
        0x0f, 0x1f, 0x44, 0x00, 0x00,                   // nop5 (ftrace site)
        0x48, 0x8b, 0x82, 0x18, 0x03, 0x00, 0x00,       // mov rax, [rdx+0x318]      start = mod->static_call_sites
        0x48, 0x63, 0x8a, 0x14, 0x03, 0x00, 0x00,       // movsxd rcx, dword [rdx+0x314]   mod->num_static_call_sites
        0x48, 0x8b, 0x5f, 0x08,                         // mov rbx, [rdi+8]          another object's member
        0x8b, 0x77, 0x04,                               // mov esi, [rdi+4]          (pairs only within one base register)
        0xc3,                                           // ret
    ];

    [Fact]
    public void Static_call_pair_is_read_from_the_code_that_loads_it()
    {
        Assert.Equal([(0x318, 0x314), (8, 4)], StaticCallSitesCode.Pairs(AddModule61, 0xffffffff81000000, 0x1000).OrderByDescending(p => p.Pointer));
        // Displacements outside the struct window are not struct members.
        Assert.Equal([], StaticCallSitesCode.Pairs(AddModule61, 0xffffffff81000000, 0x100).Where(p => p.Pointer > 0x100));
    }

    [Fact]
    public void Static_call_decoder_survives_garbage_and_truncation()
    {
        var random = new Random(8);
        for (int i = 0; i < 200; i++)
        {
            var junk = new byte[random.Next(0, 300)];
            random.NextBytes(junk);
            foreach (var (p, c) in StaticCallSitesCode.Pairs(junk, 0xffffffff81000000, 0x2000))
                Assert.True(p > 0 && p < 0x2000 && c is >= 0 && (p - c == 4 || p - c == 8));
        }
        Assert.Equal([], StaticCallSitesCode.Pairs(AddModule61[..10], 0xffffffff81000000, 0x1000));
        Assert.Equal([], StaticCallSitesCode.Pairs([], 0, 0x1000));
    }

    [Fact]
    public void Code_references_are_the_absolute_and_rip_relative_operands_and_immediates_up_to_ret()
    {
        byte[] i386 =
        [
            0xa1, 0x60, 0x45, 0x23, 0xc1,       // mov eax, [0xc1234560]     a load of a variable
            0x3d, 0x00, 0x46, 0x23, 0xc1,       // cmp eax, 0xc1234600        an address as an immediate
            0x83, 0xc0, 0x04,                   // add eax, 4                 not a kernel address
            0xc3,                               // ret
            0xb8, 0x11, 0x11, 0x11, 0xc1,       // mov eax, 0xc1111111        after ret: not this function
        ];
        Assert.Equal([(0xc1234560UL, true), (0xc1234600UL, false)],
            PatchTableDataSearch.References(i386, 0xc1000000, 4, a => a >= 0xc0000000));
        byte[] x64 =
        [
            0x48, 0x8b, 0x05, 0x00, 0x01, 0x00, 0x00,   // mov rax, [rip+0x100]
            0x48, 0x3d, 0x00, 0x00, 0x20, 0x81,         // cmp rax, 0xffffffff81200000 (sign-extended imm32)
            0xc3,
        ];
        Assert.Equal([(0xffffffff81000107UL, true), (0xffffffff81200000UL, false)],
            PatchTableDataSearch.References(x64, 0xffffffff81000000, 8, a => a >= 0xffff800000000000));
    }

    [Fact]
    public void Code_reference_decoder_survives_garbage()
    {
        var random = new Random(86);
        for (int i = 0; i < 200; i++)
        {
            var junk = new byte[random.Next(0, 500)];
            random.NextBytes(junk);
            foreach (int size in (ReadOnlySpan<int>)[4, 8])
                Assert.All(PatchTableDataSearch.References(junk, 0xc1000000, size, a => a >= 0xc0000000), r => Assert.True(r.Address >= 0xc0000000));
        }
    }
}
