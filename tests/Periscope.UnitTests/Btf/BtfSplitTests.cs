using Periscope.Linux.Btf;
using Periscope.Memory;
using static Periscope.UnitTests.Btf.BtfBuilder;

namespace Periscope.UnitTests.Btf;

/// <summary>Split BTF (a kernel module's types on top of vmlinux's): ids and string offsets continue the base's, every
/// reference is checked against both parts, and bad blobs fail with an offset into the module's blob.</summary>
public sealed class BtfSplitTests
{
    /// <summary>A small "vmlinux": unsigned int, struct list_head, a forward-declared struct bpf_prog and a pointer to it.</summary>
    private static BtfTypes Base(out int u32, out int listHead, out int progPtr)
    {
        var b = new BtfBuilder();
        u32 = b.Int("unsigned int", 4);
        int self = b.NextId + 1;
        int ptr = b.Ptr(self);
        listHead = b.Struct("list_head", 16, M("next", ptr, 0), M("prev", ptr, 8));
        int prog = b.Fwd("bpf_prog");
        progPtr = b.Ptr(prog);
        return BtfTypes.Parse(b.Build());
    }

    /// <summary>cls_bpf's two structs, referring to the base's list_head and bpf_prog pointer.</summary>
    private static BtfBuilder Module(BtfTypes vmlinux, int u32, int listHead, int progPtr)
    {
        var m = Split(vmlinux);
        m.Struct("cls_bpf_head", 16, M("plist", listHead, 0));
        m.Struct("cls_bpf_prog", 32, M("filter", progPtr, 0), M("link", listHead, 8), M("handle", u32, 24));
        return m;
    }

    private static BtfFormatException SplitFails(byte[] blob, BtfTypes vmlinux) =>
        Assert.Throws<BtfFormatException>(() => BtfTypes.ParseSplit(blob, vmlinux, IntrospectionLimits.Default));

    [Fact]
    public void Module_types_continue_the_base_ids_and_resolve_base_types_and_names()
    {
        var vmlinux = Base(out int u32, out int listHead, out int progPtr);
        var module = BtfTypes.ParseSplit(Module(vmlinux, u32, listHead, progPtr).Build(), vmlinux, IntrospectionLimits.Default);

        Assert.Equal(vmlinux.Count + 2, module.Count);
        Assert.Equal(vmlinux.Count + 1, module.FirstOwnId);
        Assert.Equal(1, vmlinux.FirstOwnId);
        var prog = module.FindStruct("cls_bpf_prog")!;
        Assert.Equal(vmlinux.Count + 2, prog.TypeId);
        Assert.Equal(8, prog.Offset("link"));
        Assert.Equal(16, prog.Offset("link.prev")); // a path through the base's list_head
        Assert.Equal(24, prog.Offset("handle"));
        Assert.Equal("list_head", module.GetName(prog.GetMember("link").TypeId));
        Assert.Equal(BtfKind.Ptr, module.GetKind(prog.GetMember("filter").TypeId));
        Assert.Equal(vmlinux.Count + 1, module.FindTypeId("cls_bpf_head", BtfKind.Struct));
        // The base stays whole inside the combined view, and the base alone knows nothing of the module.
        Assert.Equal(16, module.FindStruct("list_head")!.Size);
        Assert.Null(vmlinux.FindStruct("cls_bpf_prog"));
    }

    [Fact]
    public void A_member_named_by_a_base_string_offset_reads_the_base_string()
    {
        var b = new BtfBuilder();
        int u32 = b.Int("unsigned int", 4);
        b.Struct("pair", 8, M("next", u32, 0), M("prev", u32, 4));
        uint next = b.Str("next"); // already in the base: its offset there
        var vmlinux = BtfTypes.Parse(b.Build());
        var m = Split(vmlinux);
        // struct s { unsigned int next; } with "next" taken from the base's string section (as pahole deduplicates).
        m.Raw(m.Str("s"), Info(BtfKind.Struct, 1), 4, next, (uint)u32, 0);
        var module = BtfTypes.ParseSplit(m.Build(), vmlinux, IntrospectionLimits.Default);
        Assert.Equal("next", Assert.Single(module.FindStruct("s")!.Members).Name);
        Assert.True(m.Str("s") >= (uint)vmlinux.StringSectionLength);
    }

    [Fact]
    public void A_split_blob_with_no_strings_of_its_own_is_accepted()
    {
        var vmlinux = Base(out int u32, out _, out _);
        var m = Split(vmlinux);
        int ptr = m.Ptr(u32); // anonymous: no string of its own
        byte[] blob = m.Build(out int stringsAt);
        // Drop the string section entirely (str_len 0), as the kernel allows for split BTF.
        Patch32(blob, 20, 0);
        var module = BtfTypes.ParseSplit(blob[..stringsAt], vmlinux, IntrospectionLimits.Default);
        Assert.Equal(BtfKind.Ptr, module.GetKind(ptr));
        Assert.Equal(u32, module.ResolveTypedefs(module.GetType(ptr).ReferencedType));
        // Standalone BTF still needs its string section.
        Assert.Throws<BtfFormatException>(() => BtfTypes.Parse(blob[..stringsAt]));
    }

    [Fact]
    public void Truncated_anywhere_fails_cleanly_with_an_offset_inside_the_module_blob()
    {
        var vmlinux = Base(out int u32, out int listHead, out int progPtr);
        byte[] blob = Module(vmlinux, u32, listHead, progPtr).Build();
        for (int n = 0; n < blob.Length; n++)
        {
            var e = SplitFails(blob[..n], vmlinux);
            Assert.InRange(e.Offset, 0, blob.Length);
        }
        Assert.False(BtfTypes.TryParseSplit(blob[..(blob.Length - 1)], vmlinux, IntrospectionLimits.Default, out var none, out var error));
        Assert.Null(none);
        Assert.NotNull(error);
    }

    [Fact]
    public void A_type_id_beyond_base_and_split_is_rejected_and_one_at_the_end_is_not()
    {
        var vmlinux = Base(out _, out _, out _);
        var m = Split(vmlinux);
        int last = m.NextId;
        m.Ptr(last); // a pointer to itself: the highest valid id
        BtfTypes.ParseSplit(m.Build(), vmlinux, IntrospectionLimits.Default);

        var bad = Split(vmlinux);
        bad.Ptr(vmlinux.Count + 2); // one past the last type of base and split together
        var e = SplitFails(bad.Build(), vmlinux);
        Assert.Contains($"at most {vmlinux.Count + 1} (the number of types, base and split), found {vmlinux.Count + 2}", e.Message);
        Assert.Equal(24 + 8, e.Offset); // the PTR record's type field, in the module's blob
    }

    [Fact]
    public void The_same_blob_without_its_base_fails_on_the_ids_it_borrows()
    {
        var vmlinux = Base(out int u32, out int listHead, out int progPtr);
        byte[] blob = Module(vmlinux, u32, listHead, progPtr).Build();
        // Standalone, its first record is id 1 and it names strings past its own section.
        Assert.Throws<BtfFormatException>(() => BtfTypes.Parse(blob));
    }

    [Fact]
    public void A_name_offset_beyond_base_and_split_strings_is_rejected()
    {
        var vmlinux = Base(out int u32, out _, out _);
        var m = Split(vmlinux);
        m.Str("own");
        byte[] good = m.Build(out int stringsAt);
        uint end = (uint)vmlinux.StringSectionLength + (uint)(good.Length - stringsAt);
        var bad = Split(vmlinux);
        bad.Str("own");
        bad.Raw(end, Info(BtfKind.Int), 4, 32); // name offset one past the last string byte
        var e = SplitFails(bad.Build(), vmlinux);
        Assert.Contains($"below the string section length 0x{end:x}, found 0x{end:x}", e.Message);
        Assert.Equal(24, e.Offset);

        var ok = Split(vmlinux);
        ok.Str("own");
        ok.Raw(end - 4, Info(BtfKind.Int), 4, 32); // "own" itself
        Assert.Equal("own", BtfTypes.ParseSplit(ok.Build(), vmlinux, IntrospectionLimits.Default).GetName(vmlinux.Count + 1));
        Assert.NotEqual(0, u32);
    }

    [Fact]
    public void The_type_count_cap_applies_to_the_module_part()
    {
        var vmlinux = Base(out int u32, out _, out _);
        var m = Split(vmlinux);
        for (int i = 0; i < 5; i++) m.Ptr(u32);
        var limits = new IntrospectionLimits { MaxBtfTypes = 4 };
        var e = Assert.Throws<BtfFormatException>(() => BtfTypes.ParseSplit(m.Build(), vmlinux, limits));
        Assert.Contains("MaxBtfTypes = 4", e.Message);
        Assert.Contains($"type id {vmlinux.Count + 5}", e.Message);
    }
}
