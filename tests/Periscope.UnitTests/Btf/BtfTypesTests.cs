using Periscope.Linux.Btf;
using Periscope.Memory;
using static Periscope.UnitTests.Btf.BtfBuilder;

namespace Periscope.UnitTests.Btf;

/// <summary>Well-formed blobs modelled on the Linux 6.1 layouts from docs/linux-discovery.md §5.1.</summary>
public sealed class BtfTypesTests
{
    /// <summary>A small kernel-like type set; ids are exposed for assertions.</summary>
    private sealed class Kernel
    {
        public readonly BtfBuilder B = new();
        public int ULong, UInt, Int, Char, U8, U64Typedef, ListHead, ListHeadPtr, MapleTree, MmStruct, TaskStruct, TaskDecl, TaskFwd,
            Module, ModuleLayout, MapleRange64, CpuBitmap, Comm, VoidPtr, ConstVolatileU64, Flags;

        public Kernel()
        {
            ULong = B.Int("long unsigned int", 8);
            UInt = B.Int("unsigned int", 4);
            Int = B.Int("int", 4, signed: true);
            Char = B.Int("char", 1);
            U8 = B.Int("unsigned char", 1);
            VoidPtr = B.Ptr(0);
            // typedef chain: u64 -> __u64 -> long long unsigned int, seen through const volatile
            int ull = B.Int("long long unsigned int", 8);
            int u64Inner = B.Typedef("__u64", ull);
            U64Typedef = B.Typedef("u64", u64Inner);
            ConstVolatileU64 = B.Const(B.Volatile(U64Typedef));

            // list_head refers to itself through a pointer declared after it.
            ListHead = B.NextId;
            ListHeadPtr = ListHead + 1;
            B.Struct("list_head", 16, M("next", ListHeadPtr, 0), M("prev", ListHeadPtr, 8));
            B.Ptr(ListHead);

            // maple_tree: an anonymous union holding the lock, then ma_root at +8, ma_flags at +0x10
            int spinlock = B.Struct("spinlock", 4, M("val", UInt, 0));
            int spinlockT = B.Typedef("spinlock_t", spinlock);
            int lockUnion = B.Union("", 8, M("ma_lock", spinlockT, 0), M("ma_external_lock", VoidPtr, 0));
            MapleTree = B.Struct("maple_tree", 0x18, M("", lockUnion, 0), M("ma_root", VoidPtr, 8), M("ma_flags", UInt, 0x10));

            // mm_struct (6.1): every field inside an anonymous struct, then the flexible cpu_bitmap[]
            int pgdT = B.Struct("pgd_t", 8, M("pgd", ULong, 0));
            int pgdPtr = B.Ptr(pgdT);
            int filePtr = B.Ptr(B.Fwd("file"));
            int atomic = B.Struct("", 4, M("counter", Int, 0));
            int atomicT = B.Typedef("atomic_t", atomic);
            int inner = B.Struct("", 0x448,
                M("mm_mt", MapleTree, 0), M("pgd", pgdPtr, 0x48), M("mm_users", atomicT, 0x50), M("map_count", Int, 0x68),
                M("start_code", ULong, 0x100), M("end_code", ULong, 0x108), M("start_data", ULong, 0x110),
                M("end_data", ULong, 0x118), M("start_brk", ULong, 0x120), M("brk", ULong, 0x128),
                M("start_stack", ULong, 0x130), M("arg_start", ULong, 0x138), M("arg_end", ULong, 0x140),
                M("exe_file", filePtr, 0x3b0));
            CpuBitmap = B.Array(ULong, Int, 0);
            MmStruct = B.Struct("mm_struct", 0x448, M("", inner, 0), M("cpu_bitmap", CpuBitmap, 0x448));

            // task_struct: forward declaration and an empty declaration before the definition
            TaskFwd = B.Fwd("task_struct");
            TaskDecl = B.Struct("task_struct", 0);
            int taskPtr = B.Ptr(TaskFwd);
            int mmPtr = B.Ptr(MmStruct);
            Comm = B.Array(Char, Int, 16);
            Flags = B.Typedef("task_flags_t", B.Const(UInt));
            int signalPtr = B.Ptr(B.Fwd("signal_struct"));
            TaskStruct = B.Struct("task_struct", 0x2640,
                M("__state", UInt, 0x18), M("flags", Flags, 0x2c), M("tasks", ListHead, 0x890), M("mm", mmPtr, 0x8e0),
                M("active_mm", mmPtr, 0x8e8),
                Bf("sched_reset_on_fork", UInt, 0x8f8 * 8, 1), Bf("sched_contributes_to_load", UInt, 0x8f8 * 8 + 1, 1),
                Bf("sched_migrated", UInt, 0x8f8 * 8 + 2, 3),
                M("pid", Int, 0x970), M("tgid", Int, 0x974), M("real_parent", taskPtr, 0x980), M("parent", taskPtr, 0x988),
                M("group_leader", taskPtr, 0x9b0), M("thread_group", ListHead, 0xa20), M("start_time", ConstVolatileU64, 0xa30),
                M("comm", Comm, 0xba0), M("signal", signalPtr, 0xc00));

            // module with a nested module_layout and a name array
            int constVoidPtr = B.Ptr(B.Const(0));
            ModuleLayout = B.Struct("module_layout", 0x50, M("base", constVoidPtr, 0), M("size", UInt, 8), M("text_size", UInt, 0xc), M("ro_size", UInt, 0x10));
            int moduleState = B.Enum("module_state", 4, false, ("MODULE_STATE_LIVE", 0), ("MODULE_STATE_COMING", 1), ("MODULE_STATE_GOING", 2), ("MODULE_STATE_UNFORMED", 3));
            Module = B.Struct("module", 0x380, M("state", moduleState, 0), M("list", ListHead, 8),
                M("name", B.Array(Char, Int, 56), 0x18), M("core_layout", ModuleLayout, 0x140), M("init_layout", ModuleLayout, 0x190));

            // maple_range_64: pivot[15] at 8; slot[16] shares space with an anonymous struct ending in the metadata at 0xf8
            int meta = B.Struct("maple_metadata", 2, M("end", U8, 0), M("gap", U8, 1));
            int pad = B.Struct("", 0x80, M("pad", B.Array(VoidPtr, Int, 15), 0), M("meta", meta, 0x78));
            int slotUnion = B.Union("", 0x80, M("slot", B.Array(VoidPtr, Int, 16), 0), M("", pad, 0));
            MapleRange64 = B.Struct("maple_range_64", 0x100, M("parent", VoidPtr, 0), M("pivot", B.Array(ULong, Int, 15), 8), M("", slotUnion, 0x80));

            // assorted kinds that the walk must step over
            int proto = B.FuncProto(Int, ("argc", Int), ("argv", B.Ptr(B.Ptr(Char))));
            B.Func("main", proto);
            int v = B.Var("jiffies", ULong);
            B.DataSec(".data", 8, (v, 0, 8));
            B.DeclTag("user", TaskStruct, 3);
            B.TypeTag("rcu", VoidPtr);
            B.Float("double", 8);
            B.Enum64("big", ("BIG_ONE", 1UL << 40), ("BIG_NEG", ulong.MaxValue));
            B.Restrict(VoidPtr);
        }

        public BtfTypes Parse() => BtfTypes.Parse(B.Build(), IntrospectionLimits.Default);
    }

    /// <summary>The kernel-like fixture as bytes, for the corruption tests.</summary>
    internal static byte[] KernelBlob() => new Kernel().B.Build();

    [Fact]
    public void Counts_and_reads_every_kind()
    {
        var k = new Kernel();
        BtfTypes btf = k.Parse();
        Assert.Equal(k.B.Count, btf.Count);
        Assert.Equal(k.B.Build().Length, btf.ByteLength);

        BtfType ul = btf.GetType(k.ULong);
        Assert.Equal(new BtfType(k.ULong, BtfKind.Int, "long unsigned int", 8, 0, false), ul);
        Assert.Equal(BtfKind.Void, btf.GetType(0).Kind);
        Assert.Equal("void", btf.GetName(0));
        Assert.Equal(BtfKind.Struct, btf.GetKind(k.TaskStruct));
        Assert.Equal(BtfKind.Fwd, btf.GetKind(k.TaskFwd));
        Assert.Equal("", btf.GetName(k.VoidPtr));
        Assert.Equal(k.ListHead, btf.GetType(k.ListHeadPtr).ReferencedType);

        BtfType task = btf.GetType(k.TaskStruct);
        Assert.True(task.KindFlag); // has bitfields
        Assert.Equal(17, task.Vlen);
        Assert.Equal(0x2640u, task.Size);

        Assert.Throws<ArgumentOutOfRangeException>(() => btf.GetType(btf.Count + 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => btf.GetType(-1));
        Assert.Throws<ArgumentOutOfRangeException>(() => btf.GetName(int.MaxValue));
    }

    [Fact]
    public void Struct_members_offsets_and_bitfields_with_kind_flag()
    {
        BtfTypes btf = new Kernel().Parse();
        StructLayout task = btf.FindStruct("task_struct")!;
        Assert.Equal(0x2640, task.Size);
        Assert.False(task.IsUnion);
        Assert.Equal("task_struct", task.Name);

        Assert.Equal(0x2c, task.Offset("flags"));
        Assert.Equal(0x18, task.Offset("__state"));
        Assert.Equal(0x890, task.Offset("tasks"));
        Assert.Equal(0x8e0, task.Offset("mm"));
        Assert.Equal(0x970, task.Offset("pid"));
        Assert.Equal(0x974, task.Offset("tgid"));
        Assert.Equal(0xba0, task.Offset("comm"));
        Assert.Equal(0xc00, task.Offset("signal"));

        Assert.True(task.TryGetMember("sched_migrated", out BtfMember bf));
        Assert.Equal(0x8f8 * 8 + 2, bf.BitOffset);
        Assert.Equal(3, bf.BitfieldSize);
        Assert.True(bf.IsBitfield);
        Assert.Equal(0x8f8, bf.ByteOffset);
        Assert.True(task.TryGetMember("sched_contributes_to_load", out bf));
        Assert.Equal((0x8f8 * 8 + 1, 1), (bf.BitOffset, bf.BitfieldSize));
        Assert.True(task.TryGetMember("pid", out BtfMember pid));
        Assert.Equal(0, pid.BitfieldSize); // kind_flag struct, non-bitfield member
        Assert.Equal(0x970 * 8, pid.BitOffset);
    }

    [Fact]
    public void Bitfield_without_kind_flag_is_read_from_the_int_encoding()
    {
        var b = new BtfBuilder();
        int u32 = b.Int("unsigned int", 4);
        int bits4At2 = b.Int("unsigned int", 4, bits: 4, bitOffset: 2);
        int bits1 = b.Int("unsigned int", 4, bits: 1);
        int s = b.Struct("old_style", 8, M("whole", u32, 0), (Name: "nib", Type: bits4At2, BitOffset: 100, Bits: 0), (Name: "flag", Type: bits1, BitOffset: 33, Bits: 0));
        StructLayout layout = BtfTypes.Parse(b.Build()).GetStruct(s);
        Assert.False(BtfTypes.Parse(b.Build()).GetType(s).KindFlag);
        Assert.Equal(new BtfMember("whole", u32, 0, 0), layout.Members[0]);
        Assert.Equal(new BtfMember("nib", bits4At2, 102, 4), layout.Members[1]);
        Assert.Equal(new BtfMember("flag", bits1, 33, 1), layout.Members[2]);
    }

    [Fact]
    public void Anonymous_struct_and_union_members_are_searched_recursively_like_mm_struct_in_6_1()
    {
        BtfTypes btf = new Kernel().Parse();
        StructLayout mm = btf.FindStruct("mm_struct")!;
        Assert.Equal(0x448, mm.Size);
        Assert.Equal(2, mm.Members.Count);
        Assert.Equal("", mm.Members[0].Name);

        Assert.Equal(0, mm.Offset("mm_mt"));
        Assert.Equal(8, mm.Offset("mm_mt.ma_root"));
        Assert.Equal(0x10, mm.Offset("mm_mt.ma_flags"));
        Assert.Equal(0, mm.Offset("mm_mt.ma_lock")); // through maple_tree's own anonymous union
        Assert.Equal(0, mm.Offset("mm_mt.ma_lock.val"));
        Assert.Equal(0x48, mm.Offset("pgd"));
        Assert.Equal(0x68, mm.Offset("map_count"));
        Assert.Equal(0x100, mm.Offset("start_code"));
        Assert.Equal(0x140, mm.Offset("arg_end"));
        Assert.Equal(0x3b0, mm.Offset("exe_file"));
        Assert.Equal(0x50, mm.Offset("mm_users.counter"));
        Assert.Equal(0x448, mm.Offset("cpu_bitmap"));
        Assert.False(mm.HasMember("mmap")); // gone in 6.1

        Assert.True(mm.TryGetMember("brk", out BtfMember brk));
        Assert.Equal(0x128 * 8, brk.BitOffset);

        StructLayout range = btf.FindStruct("maple_range_64")!;
        Assert.Equal(8, range.Offset("pivot"));
        Assert.Equal(0x80, range.Offset("slot"));
        Assert.Equal(0xf8, range.Offset("meta"));
        Assert.Equal(0xf8, range.Offset("meta.end"));
        Assert.Equal(0xf9, range.Offset("meta.gap"));
    }

    [Fact]
    public void Typedef_chains_resolve_and_size()
    {
        var k = new Kernel();
        BtfTypes btf = k.Parse();
        int resolved = btf.ResolveTypedefs(k.ConstVolatileU64);
        Assert.Equal("long long unsigned int", btf.GetName(resolved));
        Assert.Equal(BtfKind.Int, btf.GetKind(resolved));
        Assert.Equal(8, btf.SizeOf(k.ConstVolatileU64));
        Assert.Equal(k.ULong, btf.ResolveTypedefs(k.ULong));
        Assert.Equal(0, btf.ResolveTypedefs(0));
        Assert.Equal(k.U64Typedef, btf.FindTypeId("u64", BtfKind.Typedef));

        StructLayout task = btf.FindStruct("task_struct")!;
        Assert.Equal(8, task.MemberSize("start_time"));
        Assert.Equal(4, task.MemberSize("flags")); // typedef -> const -> unsigned int
        Assert.Equal(8, task.MemberSize("mm"));    // pointer
        Assert.Equal(16, task.MemberSize("tasks"));
    }

    [Fact]
    public void Forward_declaration_and_empty_declaration_lose_to_the_definition()
    {
        var k = new Kernel();
        BtfTypes btf = k.Parse();
        Assert.True(k.TaskFwd < k.TaskDecl && k.TaskDecl < k.TaskStruct);
        Assert.Equal(k.TaskStruct, btf.FindStruct("task_struct")!.TypeId);
        Assert.Equal(0x2640, btf.StructSizeOrNull("task_struct"));
        Assert.Equal(k.TaskStruct, btf.FindTypeId("task_struct", BtfKind.Struct));
        Assert.Equal(k.TaskFwd, btf.FindTypeId("task_struct", BtfKind.Fwd));
        Assert.Null(btf.FindTypeId("task_struct", BtfKind.Union));

        // Only a forward declaration: no struct to find.
        Assert.Null(btf.FindStruct("signal_struct"));
        Assert.Null(btf.StructSizeOrNull("signal_struct"));
        Assert.Null(btf.FindStruct("no_such_struct"));
        Assert.Null(btf.FindTypeId("no_such", BtfKind.Int));
        Assert.Null(btf.FindTypeId("", BtfKind.Struct));
    }

    [Fact]
    public void First_definition_wins_when_a_name_is_defined_twice()
    {
        var b = new BtfBuilder();
        int u = b.Int("int", 4);
        int first = b.Struct("dup", 4, M("a", u, 0));
        b.Struct("dup", 8, M("b", u, 4));
        BtfTypes btf = BtfTypes.Parse(b.Build());
        Assert.Equal(first, btf.FindStruct("dup")!.TypeId);
    }

    [Fact]
    public void Arrays_sizes_and_indices()
    {
        var k = new Kernel();
        BtfTypes btf = k.Parse();
        StructLayout task = btf.FindStruct("task_struct")!;
        Assert.Equal(16, task.MemberSize("comm"));
        Assert.Equal(0xba0 + 15, task.Offset("comm[15]"));
        Assert.Equal(1, task.MemberSize("comm[3]"));
        Assert.True(btf.TryGetArray(k.Comm, out BtfArray comm));
        Assert.Equal(new BtfArray(k.Char, k.Int, 16), comm);
        Assert.False(btf.TryGetArray(k.Char, out _));

        StructLayout range = btf.FindStruct("maple_range_64")!;
        Assert.Equal(8 + 3 * 8, range.Offset("pivot[3]"));
        Assert.Equal(15 * 8, range.MemberSize("pivot"));
        Assert.Equal(16 * 8, range.MemberSize("slot"));
        Assert.Equal(0x80 + 15 * 8, range.Offset("slot[15]"));
        Assert.False(range.HasMember("pivot[15]"));
        var e = Assert.Throws<KeyNotFoundException>(() => range.Offset("pivot[15]"));
        Assert.Contains("maple_range_64", e.Message);
        Assert.Contains("pivot[15]", e.Message);
        Assert.False(range.HasMember("parent[0]")); // a pointer, not an array

        // Flexible array: any index, zero size.
        StructLayout mm = btf.FindStruct("mm_struct")!;
        Assert.Equal(0x448 + 5 * 8, mm.Offset("cpu_bitmap[5]"));
        Assert.Equal(0, mm.MemberSize("cpu_bitmap"));

        // Multi-dimensional, element type after an index.
        var b = new BtfBuilder();
        int i32 = b.Int("int", 4);
        int pt = b.Struct("pt", 8, M("x", i32, 0), M("y", i32, 4));
        int grid = b.Array(b.Array(pt, i32, 3), i32, 2);
        int s = b.Struct("grid", 4 + 48, M("n", i32, 0), M("cells", grid, 4));
        StructLayout g = BtfTypes.Parse(b.Build()).GetStruct(s);
        Assert.Equal(48, g.MemberSize("cells"));
        Assert.Equal(24, g.MemberSize("cells[1]"));
        Assert.Equal(4 + 24 + 16 + 4, g.Offset("cells[1][2].y"));
        Assert.Equal(pt, g.GetMember("cells[1][2]").TypeId);
    }

    [Fact]
    public void Dotted_paths_and_their_errors()
    {
        BtfTypes btf = new Kernel().Parse();
        StructLayout module = btf.FindStruct("module")!;
        Assert.Equal(0x140, module.Offset("core_layout"));
        Assert.Equal(0x140, module.Offset("core_layout.base"));
        Assert.Equal(0x148, module.Offset("core_layout.size"));
        Assert.Equal(0x190 + 0xc, module.Offset("init_layout.text_size"));
        Assert.Equal(0x18, module.Offset("name"));
        Assert.Equal(56, module.MemberSize("name"));
        Assert.Equal(0x10, module.Offset("list.prev"));
        Assert.False(module.HasMember("mem"));

        StructLayout task = btf.FindStruct("task_struct")!;
        Assert.Equal(0x898, task.Offset("tasks.prev"));
        var missing = Assert.Throws<KeyNotFoundException>(() => task.Offset("tasks.nope"));
        Assert.Contains("struct task_struct", missing.Message);
        Assert.Contains("tasks.nope", missing.Message);
        Assert.Contains("struct list_head has no member 'nope'", missing.Message);

        var pointer = Assert.Throws<KeyNotFoundException>(() => task.Offset("mm.pgd"));
        Assert.Contains("'mm' is a Ptr", pointer.Message);
        Assert.False(task.HasMember("signal.x"));
        Assert.False(task.HasMember("pid.x"));

        foreach (string bad in new[] { "", ".", "a.", ".a", "a..b", "comm[", "comm[]", "comm[x]", "comm[-1]", "comm]", "comm[1]x", "comm[1" })
            Assert.Throws<ArgumentException>(() => task.HasMember(bad));
        Assert.Throws<ArgumentNullException>(() => task.Offset(null!));
    }

    [Fact]
    public void Union_layout()
    {
        var b = new BtfBuilder();
        int u32 = b.Int("unsigned int", 4);
        int u64 = b.Int("long long unsigned int", 8);
        int bytes = b.Array(b.Int("unsigned char", 1), u32, 8);
        int un = b.Union("word", 8, M("lo", u32, 0), M("all", u64, 0), M("b", bytes, 0));
        BtfTypes btf = BtfTypes.Parse(b.Build());
        StructLayout w = btf.FindStruct("word")!;
        Assert.True(w.IsUnion);
        Assert.Equal(un, w.TypeId);
        Assert.Equal(8, w.Size);
        Assert.All(w.Members, m => Assert.Equal(0, m.BitOffset));
        Assert.Equal(8, w.MemberSize("all"));
        Assert.Equal(3, w.Offset("b[3]"));
        Assert.Equal("union word", w.ToString());
        Assert.Equal(un, btf.FindTypeId("word", BtfKind.Union));
        Assert.Throws<ArgumentException>(() => btf.GetStruct(u32));
    }

    [Fact]
    public void Enums_and_enum64()
    {
        var b = new BtfBuilder();
        int e = b.Enum("state", 4, true, ("NEG", -2), ("ZERO", 0), ("BIG", 7));
        int u = b.Enum("flags", 4, false, ("TOP", unchecked((int)0x80000000)));
        int e64 = b.Enum64("wide", ("W1", 1UL << 40));
        BtfTypes btf = BtfTypes.Parse(b.Build());
        Assert.Equal(new[] { new BtfEnumValue("NEG", -2), new BtfEnumValue("ZERO", 0), new BtfEnumValue("BIG", 7) }, btf.GetEnumValues(e));
        Assert.Equal(0x80000000L, btf.GetEnumValues(u)[0].Value);
        Assert.Equal(1L << 40, btf.GetEnumValues(e64)[0].Value);
        Assert.True(btf.TryFindEnumerator("W1", out long w1));
        Assert.Equal(1L << 40, w1);
        Assert.True(btf.TryFindEnumerator("NEG", out long neg));
        Assert.Equal(-2, neg);
        Assert.False(btf.TryFindEnumerator("NE", out _));
        Assert.Equal(4, btf.SizeOf(e));
        Assert.Equal(8, btf.SizeOf(e64));
    }

    [Fact]
    public void Blob_followed_by_garbage_parses_by_header_lengths_and_is_copied()
    {
        var k = new Kernel();
        byte[] blob = k.B.Build();
        byte[] padded = new byte[blob.Length + 1000];
        blob.CopyTo(padded, 0);
        new Random(7).NextBytes(padded.AsSpan(blob.Length));
        BtfTypes btf = BtfTypes.Parse(padded, IntrospectionLimits.Default);
        Assert.Equal(blob.Length, btf.ByteLength);

        Array.Clear(padded); // the parser must own its copy
        Assert.Equal(0x970, btf.FindStruct("task_struct")!.Offset("pid"));
    }

    [Fact]
    public void Header_helpers()
    {
        byte[] blob = new Kernel().B.Build();
        Assert.True(BtfTypes.LooksLikeHeader(blob));
        Assert.Equal(blob.Length, BtfTypes.TotalLength(blob));
        Assert.False(BtfTypes.LooksLikeHeader(blob.AsSpan(0, 23)));
        Assert.Throws<BtfFormatException>(() => BtfTypes.TotalLength(blob.AsSpan(0, 23)));
        Assert.True(BtfTypes.TryParse(blob, IntrospectionLimits.Default, out BtfTypes? ok, out BtfFormatException? none));
        Assert.NotNull(ok);
        Assert.Null(none);
        Assert.False(BtfTypes.TryParse(blob.AsSpan(0, 30), IntrospectionLimits.Default, out BtfTypes? bad, out BtfFormatException? error));
        Assert.Null(bad);
        Assert.NotNull(error);
    }

    [Fact]
    public void Many_types_parse_and_index()
    {
        // About the size of a real vmlinux BTF (100,750 types): structs, pointers, typedefs and arrays.
        var b = new BtfBuilder();
        int u64 = b.Int("long unsigned int", 8);
        int i32 = b.Int("int", 4, signed: true);
        int last = 0;
        for (int i = 0; b.Count < 100_000; i++)
        {
            int ptr = b.Ptr(last);
            int arr = b.Array(u64, i32, 4);
            last = b.Struct($"s{i}", 48, M("a", u64, 0), M("b", ptr, 8), M("c", arr, 16));
            b.Typedef($"s{i}_t", last);
        }
        byte[] blob = b.Build();
        BtfTypes btf = BtfTypes.Parse(blob, IntrospectionLimits.Default);
        Assert.Equal(b.Count, btf.Count);
        StructLayout? s = btf.FindStruct("s24999");
        Assert.NotNull(s);
        Assert.Equal(16, s.Offset("c"));
        Assert.Equal(32, s.MemberSize("c"));
        Assert.Equal(48, btf.StructSizeOrNull("s0"));
        Assert.Equal(btf.FindStruct("s100")!.TypeId, btf.ResolveTypedefs(btf.FindTypeId("s100_t", BtfKind.Typedef)!.Value));
    }

    [Fact]
    public void Layouts_are_shared_across_threads()
    {
        BtfTypes btf = new Kernel().Parse();
        var offsets = new long[64];
        Parallel.For(0, offsets.Length, i => offsets[i] = btf.FindStruct("mm_struct")!.Offset("mm_mt.ma_root"));
        Assert.All(offsets, o => Assert.Equal(8, o));
        Assert.Same(btf.FindStruct("mm_struct"), btf.FindStruct("mm_struct"));
    }
}
