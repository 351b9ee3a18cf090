using System.Diagnostics;
using Periscope.Linux.Btf;
using Periscope.Memory;
using static Periscope.UnitTests.Btf.BtfBuilder;

namespace Periscope.UnitTests.Btf;

/// <summary>Hostile blobs: every failure is a <see cref="BtfFormatException"/> naming an offset, and nothing hangs.</summary>
public sealed class BtfMalformedTests
{
    private static BtfBuilder Small(out int structId)
    {
        var b = new BtfBuilder();
        int u32 = b.Int("unsigned int", 4);
        int ptr = b.Ptr(u32);
        structId = b.Struct("pair", 16, M("a", u32, 0), M("p", ptr, 8));
        return b;
    }

    private static BtfFormatException ParseFails(byte[] blob, IntrospectionLimits? limits = null) =>
        Assert.Throws<BtfFormatException>(() => BtfTypes.Parse(blob, limits ?? IntrospectionLimits.Default));

    [Fact]
    public void Truncated_header()
    {
        byte[] blob = Small(out _).Build();
        for (int n = 0; n < 24; n++)
        {
            var e = ParseFails(blob[..n]);
            Assert.Equal(0, e.Offset);
            Assert.Contains("24-byte BTF header", e.Message);
            Assert.Contains($"found {n} bytes", e.Message);
        }
    }

    [Fact]
    public void Truncated_anywhere_fails_cleanly()
    {
        byte[] blob = Small(out _).Build();
        for (int n = 24; n < blob.Length; n++)
            ParseFails(blob[..n]);
        BtfTypes.Parse(blob);
    }

    [Fact]
    public void Bad_magic_version_flags_and_header_length()
    {
        byte[] good = Small(out _).Build();

        byte[] b = (byte[])good.Clone();
        b[0] = 0x9e;
        Assert.Contains("magic", ParseFails(b).Message);

        b = (byte[])good.Clone();
        b[2] = 2;
        Assert.Equal(2, ParseFails(b).Offset);

        b = (byte[])good.Clone();
        b[3] = 1;
        Assert.Equal(3, ParseFails(b).Offset);

        b = (byte[])good.Clone();
        Patch32(b, 4, 20);
        Assert.Equal(4, ParseFails(b).Offset);

        b = (byte[])good.Clone();
        Patch32(b, 4, (uint)good.Length + 1);
        Assert.Equal(4, ParseFails(b).Offset);
    }

    [Fact]
    public void Sections_past_the_end()
    {
        byte[] good = Small(out _).Build();
        uint typeLen = Read32(good, 12);

        byte[] b = (byte[])good.Clone();
        Patch32(b, 12, (uint)good.Length); // type_len past end
        var e = ParseFails(b);
        Assert.Contains("type section", e.Message);

        b = (byte[])good.Clone();
        Patch32(b, 12, uint.MaxValue); // no 32-bit wrap-around
        ParseFails(b);

        b = (byte[])good.Clone();
        Patch32(b, 8, uint.MaxValue - 4); // type_off huge
        ParseFails(b);

        b = (byte[])good.Clone();
        Patch32(b, 20, Read32(good, 20) + 1); // str_len one past end
        Assert.Contains("string section", ParseFails(b).Message);

        b = (byte[])good.Clone();
        Patch32(b, 16, uint.MaxValue); // str_off huge
        ParseFails(b);

        // Overlapping sections.
        b = (byte[])good.Clone();
        Patch32(b, 12, typeLen + 4);
        Assert.Contains("overlap", ParseFails(b).Message);

        // A type section that ends inside a record: 4 stray bytes between the sections, counted as types.
        b = new byte[good.Length + 4];
        good.AsSpan(0, 24 + (int)typeLen).CopyTo(b);
        good.AsSpan(24 + (int)typeLen).CopyTo(b.AsSpan(24 + (int)typeLen + 4));
        Patch32(b, 12, typeLen + 4);
        Patch32(b, 16, typeLen + 4);
        e = ParseFails(b);
        Assert.Contains("12-byte record", e.Message);
        Assert.Equal(24 + typeLen, e.Offset);
    }

    [Fact]
    public void String_section_must_start_and_end_with_nul()
    {
        byte[] good = Small(out _).Build(out int stringsAt);
        byte[] b = (byte[])good.Clone();
        b[stringsAt] = (byte)'x';
        Assert.Equal(stringsAt, ParseFails(b).Offset);

        b = (byte[])good.Clone();
        b[^1] = (byte)'x';
        Assert.Equal(good.Length - 1, ParseFails(b).Offset);

        b = (byte[])good.Clone();
        Patch32(b, 20, 0);
        ParseFails(b);
    }

    [Fact]
    public void Name_offsets_out_of_range()
    {
        var b = Small(out int s);
        byte[] good = b.Build();
        uint strLen = Read32(good, 20);

        byte[] bad = (byte[])good.Clone();
        Patch32(bad, 24, strLen); // type 1's name_off
        var e = ParseFails(bad);
        Assert.Equal(24, e.Offset);
        Assert.Contains("type id 1", e.Message);

        bad = (byte[])good.Clone();
        int structRecord = 24 + 16 + 12; // INT (16) + PTR (12)
        int secondMember = structRecord + 12 + 12;
        Patch32(bad, secondMember, 0xffff_fff0);
        e = ParseFails(bad);
        Assert.Equal(secondMember, e.Offset);
        Assert.Contains($"type id {s}", e.Message);
    }

    [Fact]
    public void Vlen_exceeding_the_remaining_bytes()
    {
        var b = new BtfBuilder();
        int u = b.Int("int", 4);
        b.Raw(b.Str("big"), Info(BtfKind.Struct, 100), 8, b.Str("a"), (uint)u, 0);
        var e = ParseFails(b.Build());
        Assert.Contains("type id 2", e.Message);
        Assert.Contains("100 entries", e.Message);
        Assert.Equal(24 + 16 + 12, e.Offset);

        b = new BtfBuilder();
        b.Raw(0, Info(BtfKind.Enum64, 0xffff), 8);
        ParseFails(b.Build());
    }

    [Theory]
    [InlineData(0)]
    [InlineData(20)]
    [InlineData(31)]
    public void Unknown_kind(int kind)
    {
        var b = new BtfBuilder();
        b.Int("int", 4);
        b.Ptr(1);
        b.Raw(0, (uint)kind << 24, 0);
        b.Ptr(1);
        var e = ParseFails(b.Build());
        Assert.Equal(24 + 16 + 12 + 4, e.Offset);
        Assert.Contains($"found kind {kind}", e.Message);
        Assert.Contains("type id 3", e.Message);
    }

    [Fact]
    public void Type_references_past_the_last_type()
    {
        var b = new BtfBuilder();
        b.Int("int", 4);
        b.Ptr(3); // forward reference to an id that never comes
        var e = ParseFails(b.Build());
        Assert.Contains("at most 2", e.Message);
        Assert.Equal(24 + 16 + 8, e.Offset);

        b = new BtfBuilder();
        int u = b.Int("int", 4);
        b.Struct("s", 4, M("x", 99, 0));
        ParseFails(b.Build());

        b = new BtfBuilder();
        b.Array(1, 1, 4);
        b.Int("int", 4);
        BtfTypes.Parse(b.Build()); // forward references within range are fine
    }

    [Fact]
    public void Type_count_and_size_limits()
    {
        var b = new BtfBuilder();
        for (int i = 0; i < 11; i++)
            b.Int($"i{i}", 4);
        byte[] blob = b.Build();
        var e = ParseFails(blob, new IntrospectionLimits { MaxBtfTypes = 10 });
        Assert.Contains("MaxBtfTypes = 10", e.Message);
        Assert.Equal(11, BtfTypes.Parse(blob, new IntrospectionLimits { MaxBtfTypes = 11 }).Count);
        ParseFails(blob, new IntrospectionLimits { MaxBtfTypes = 0 });

        e = ParseFails(blob, new IntrospectionLimits { MaxBtfBytes = blob.Length - 1 });
        Assert.Contains("MaxBtfBytes", e.Message);

        var s = Small(out _);
        e = ParseFails(s.Build(), new IntrospectionLimits { MaxBtfMembers = 1 });
        Assert.Contains("MaxBtfMembers = 1", e.Message);
        Assert.Contains("found 2", e.Message);
    }

    [Fact]
    public void Absurd_type_section_allocates_only_by_the_limit()
    {
        // 16 MiB of zero bytes claims to be a type section: kind 0 at the first record, found before any big allocation.
        byte[] blob = new byte[24 + (16 << 20) + 1];
        Patch32(blob, 0, 0x0001eb9f);
        Patch32(blob, 4, 24);
        Patch32(blob, 12, 16 << 20);
        Patch32(blob, 16, 16 << 20);
        Patch32(blob, 20, 1);
        Assert.True(BtfTypes.LooksLikeHeader(blob));
        var e = ParseFails(blob, new IntrospectionLimits { MaxBtfTypes = 1000 });
        Assert.Contains("found kind 0", e.Message);
    }

    [Fact]
    public void Self_referencing_typedef_cycles_terminate()
    {
        var b = new BtfBuilder();
        int self = b.Typedef("loop", b.NextId);
        int a = b.NextId;
        b.Typedef("a", a + 1);
        b.Const(a); // a -> const -> a
        int arr = b.Array(b.NextId, self, 2); // array of itself
        int s = b.Struct("holder", 8, M("l", self, 0), M("c", a, 0), M("arr", arr, 0));
        BtfTypes btf = BtfTypes.Parse(b.Build());

        var e = Assert.Throws<BtfFormatException>(() => btf.ResolveTypedefs(self));
        Assert.Contains("MaxTypeChainDepth = 32", e.Message);
        Assert.Equal(24, e.Offset);
        Assert.Throws<BtfFormatException>(() => btf.ResolveTypedefs(a));
        Assert.Throws<BtfFormatException>(() => btf.SizeOf(self));
        Assert.Throws<BtfFormatException>(() => btf.SizeOf(arr));
        Assert.Throws<BtfFormatException>(() => btf.GetStruct(self));
        Assert.Throws<BtfFormatException>(() => btf.TryGetArray(a, out _));

        StructLayout holder = btf.FindStruct("holder")!;
        Assert.Equal(0, holder.Offset("l"));
        Assert.Throws<BtfFormatException>(() => holder.MemberSize("l"));
        Assert.Throws<BtfFormatException>(() => holder.HasMember("c.x"));
        Assert.Throws<BtfFormatException>(() => holder.HasMember("arr[1]"));
        Assert.Equal(s, holder.TypeId);
    }

    [Fact]
    public void Deep_typedef_chains_are_bounded_by_the_limit()
    {
        var b = new BtfBuilder();
        int id = b.Int("int", 4);
        var chain = new List<int> { id };
        for (int i = 0; i < 40; i++)
            chain.Add(id = b.Typedef($"t{i}", id));
        BtfTypes btf = BtfTypes.Parse(b.Build());
        Assert.Equal(1, btf.ResolveTypedefs(chain[32]));
        Assert.Equal(4, btf.SizeOf(chain[31]));
        Assert.Throws<BtfFormatException>(() => btf.ResolveTypedefs(chain[33]));
        Assert.Throws<BtfFormatException>(() => btf.SizeOf(chain[40]));

        BtfTypes strict = BtfTypes.Parse(b.Build(), new IntrospectionLimits { MaxTypeChainDepth = 4 });
        Assert.Equal(1, strict.ResolveTypedefs(chain[4]));
        Assert.Throws<BtfFormatException>(() => strict.ResolveTypedefs(chain[5]));
    }

    [Fact]
    public void Anonymous_member_cycle_terminates()
    {
        var b = new BtfBuilder();
        int u = b.Int("int", 4);
        int self = b.NextId;
        b.Struct("ouroboros", 8, M("x", u, 0), M("", self, 0));
        BtfTypes btf = BtfTypes.Parse(b.Build());
        StructLayout s = btf.FindStruct("ouroboros")!;
        Assert.Equal(2, s.Members.Count);
        var e = Assert.Throws<BtfFormatException>(() => s.TryGetMember("x", out _));
        Assert.Contains("cycle", e.Message);
    }

    [Fact]
    public void Exponential_anonymous_member_fan_out_is_bounded()
    {
        // T(i) holds T(i-1) anonymously twice: 2^30 paths if walked naively.
        var b = new BtfBuilder();
        int u = b.Int("int", 4);
        int t = b.Struct("", 4, M("leaf", u, 0));
        for (int i = 0; i < 30; i++)
            t = b.Struct(i == 29 ? "bomb" : "", 4, M("", t, 0), M("", t, 0));
        BtfTypes btf = BtfTypes.Parse(b.Build());
        var watch = Stopwatch.StartNew();
        var e = Assert.Throws<BtfFormatException>(() => btf.FindStruct("bomb")!.HasMember("leaf"));
        Assert.Contains("MaxBtfMembers", e.Message);
        Assert.True(watch.Elapsed < TimeSpan.FromSeconds(30)); // generous; the point is that it ends
    }

    [Fact]
    public void Sizes_that_overflow_are_format_errors()
    {
        var b = new BtfBuilder();
        int u64 = b.Int("long unsigned int", 8);
        int a1 = b.Array(u64, u64, uint.MaxValue);
        int a2 = b.Array(a1, u64, uint.MaxValue);
        int a3 = b.Array(a2, u64, uint.MaxValue);
        int s = b.Struct("huge", 8, M("a1", a1, 0), M("a3", a3, 0));
        BtfTypes btf = BtfTypes.Parse(b.Build());
        Assert.Equal(8L * uint.MaxValue, btf.SizeOf(a1));
        Assert.Throws<BtfFormatException>(() => btf.SizeOf(a3));
        StructLayout huge = btf.GetStruct(s);
        Assert.Throws<BtfFormatException>(() => huge.MemberSize("a1")); // above int.MaxValue
        Assert.Equal(8L * (uint.MaxValue - 1), huge.Offset("a1[4294967294]"));
        Assert.Throws<BtfFormatException>(() => huge.Offset("a3[4294967294]"));
    }

    [Fact]
    public void Over_long_names_are_reported_not_materialised()
    {
        var b = new BtfBuilder();
        int u = b.Int("int", 4);
        string longName = new('n', 600); // beyond the kernel's KSYM_NAME_LEN (512)
        string mediumName = new('m', 300);
        int bad = b.Struct(longName, 4, M("x", u, 0));
        int medium = b.Struct(mediumName, 4, M("x", u, 0));
        b.Struct("fine", 4, M(longName, u, 0), M("y", u, 0));
        byte[] blob = b.Build();

        BtfTypes btf = BtfTypes.Parse(blob);
        var e = Assert.Throws<BtfFormatException>(() => btf.GetName(bad));
        Assert.Contains("at most 512 bytes", e.Message);
        Assert.Null(btf.FindStruct(longName)); // left out of the index, which still works
        Assert.Equal(medium, btf.FindStruct(mediumName)!.TypeId);
        Assert.Throws<BtfFormatException>(() => btf.FindStruct("fine")); // its member name is too long

        BtfTypes relaxed = BtfTypes.Parse(blob, new IntrospectionLimits { MaxStringLength = 8192 });
        Assert.Throws<BtfFormatException>(() => relaxed.GetName(bad)); // the kernel's own limit still applies

        BtfTypes strict = BtfTypes.Parse(blob, new IntrospectionLimits { MaxStringLength = 256 });
        Assert.Throws<BtfFormatException>(() => strict.GetName(medium));
        Assert.Null(strict.FindStruct(mediumName));
        Assert.Equal("int", strict.GetName(u));
    }

    [Fact]
    public void Random_corruption_only_ever_raises_BtfFormatException()
    {
        byte[] good = BtfTypesTests.KernelBlob();
        var rng = new Random(12345);
        var limits = new IntrospectionLimits { MaxTypeChainDepth = 8 };
        string[] paths = { "pid", "tasks.prev", "comm[3]", "mm_mt.ma_root", "pgd", "core_layout.base", "pivot[3]", "meta.end", "x" };
        int parsed = 0;
        for (int iteration = 0; iteration < 3000; iteration++)
        {
            byte[] b = (byte[])good.Clone();
            int flips = 1 + rng.Next(8);
            for (int f = 0; f < flips; f++)
            {
                int at = rng.Next(b.Length);
                b[at] = rng.Next(4) switch
                {
                    0 => (byte)rng.Next(256),
                    1 => (byte)(b[at] ^ (1 << rng.Next(8))),
                    2 => 0xff,
                    _ => 0,
                };
            }
            try
            {
                BtfTypes btf = BtfTypes.Parse(b, limits);
                parsed++;
                for (int id = 0; id <= btf.Count; id++)
                {
                    Ignore(() => btf.GetType(id));
                    Ignore(() => btf.ResolveTypedefs(id));
                    Ignore(() => btf.SizeOf(id));
                    Ignore(() => btf.TryGetArray(id, out _));
                    BtfKind kind = btf.GetKind(id);
                    if (kind is BtfKind.Struct or BtfKind.Union)
                    {
                        Ignore(() =>
                        {
                            StructLayout layout = btf.GetStruct(id);
                            foreach (string p in paths)
                            {
                                if (layout.TryGetMemberPath(p, out BtfMember m))
                                    Ignore(() => layout.MemberSize(p));
                            }
                            return layout.Members.Count;
                        });
                    }
                    if (kind is BtfKind.Enum or BtfKind.Enum64)
                        Ignore(() => btf.GetEnumValues(id));
                }
                foreach (string name in new[] { "task_struct", "mm_struct", "module", "maple_range_64", "list_head" })
                    Ignore(() => btf.FindStruct(name)?.HasMember("pid"));
                Ignore(() => btf.FindTypeId("u64", BtfKind.Typedef));
                Ignore(() => btf.TryFindEnumerator("MODULE_STATE_LIVE", out _));
            }
            catch (BtfFormatException)
            {
            }
        }
        Assert.InRange(parsed, 1, 3000); // some mutations leave a parseable blob, which must also be safe to query
    }

    private static void Ignore<T>(Func<T> action)
    {
        try
        {
            action();
        }
        catch (BtfFormatException)
        {
        }
    }
}
