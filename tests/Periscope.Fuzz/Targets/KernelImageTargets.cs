using Periscope.Fuzz.Engine;
using Periscope.Linux.Btf;
using Periscope.Linux.Kallsyms;
using Periscope.Linux.Model;
using Periscope.Memory;
using Periscope.UnitTests.Btf;
using Periscope.UnitTests.Kallsyms;
using static Periscope.UnitTests.Btf.BtfBuilder;

namespace Periscope.Fuzz.Targets;

/// <summary>The kallsyms locator and decoder over a 384 KiB kernel image holding real-layout tables (every order and
/// address encoding), then symbol lookups on whatever it decoded.</summary>
public sealed class KallsymsTarget : FuzzTarget
{
    private const ulong ImageVa = 0xffffffff8dc00000;
    private readonly Dictionary<string, (int Start, int Length)> _tables = [];
    public override string Name => "kallsyms";
    public override string Description => "kallsyms locator and decoder (token table/index, names, markers, seqs_of_names, offsets, relative base)";
    public override int SmokeIterations => 1_500;

    public override IReadOnlyList<Seed> Seeds()
    {
        var seeds = new List<Seed>();
        var layouts = new (KallsymsTableOrder Order, bool Seqs, KallsymsAddressMode Mode)[]
        {
            (KallsymsTableOrder.Pre64, true, KallsymsAddressMode.AbsolutePercpu),
            (KallsymsTableOrder.Post64, true, KallsymsAddressMode.Relative),
            (KallsymsTableOrder.Post64, false, KallsymsAddressMode.Absolute),
            (KallsymsTableOrder.Pre64, false, KallsymsAddressMode.Relative),
        };
        foreach (var (order, seqs, mode) in layouts)
        {
            var symbols = KallsymsTestSymbols.Generate(2_400, seed: 3, percpu: mode != KallsymsAddressMode.Relative, textBase: ImageVa);
            var built = new KallsymsTableBuilder { Order = order, SeqsOfNames = seqs, AddressMode = mode, ImageVa = ImageVa, ImageSize = 384 << 10, TableOffset = 0x28000, Seed = 5 }
                .Build(symbols);
            string name = $"{order}-{(seqs ? "seqs" : "noseqs")}-{mode}";
            int[] starts = new[] { built.Offsets, built.RelativeBaseOffset, built.NumSyms, built.Names, built.Markers, built.SeqsOfNames, built.TokenTable, built.TokenIndex }.Where(o => o >= 0).ToArray();
            _tables[name] = (starts.Min(), starts.Max() + 512 - starts.Min());
            seeds.Add(new Seed(name, built.Image));
        }
        return seeds;
    }

    public override IReadOnlyList<(int Offset, int Length)>? Focus(Seed seed)
    {
        if (_tables.Count == 0) Seeds();
        var (start, length) = _tables[seed.Name];
        return [(start, length), (start, 64), (start + length - 1024, 1024)];
    }

    public List<string> LastDiagnostics { get; } = [];

    public override IReadOnlyList<ulong> Dictionary => [ImageVa, ImageVa + 0x28000, 2_400, 2_399, 0x10000, 256, 255];

    public override Verdict Run(byte[] input)
    {
        LastDiagnostics.Clear();
        var result = KallsymsDecoder.Decode(input, ImageVa, IntrospectionLimits.Default, LastDiagnostics);
        if (result is null) return Verdict.Rejected;
        var symbols = result.Symbols;
        for (int i = 0; i < Math.Min(symbols.Count, 64); i++)
        {
            var s = symbols[i];
            symbols.TryGetAddress(s.Name, out _);
            symbols.TryFindContaining(s.Address + 1, out _, out _);
            _ = symbols.Describe(s.Address);
        }
        _ = symbols.Match("sys_*").Take(16).Count();
        return Verdict.Accepted;
    }
}

/// <summary>A kernel-like BTF blob (task_struct, mm_struct, module, maple nodes, anonymous nesting, typedef chains,
/// every kind) through the parser, then every query the model makes.</summary>
public sealed class BtfTarget : FuzzTarget
{
    public override string Name => "btf";
    public override string Description => "BTF parser and type queries (struct layouts, member paths, sizes, arrays, enums, typedef chains)";
    public override int SmokeIterations => 20_000;

    public override IReadOnlyList<Seed> Seeds() => [new("kernel-like", KernelLikeBtf.Build())];

    // Header and the first types; strings are mutated less often.
    public override IReadOnlyList<(int Offset, int Length)>? Focus(Seed seed) => [(0, 24), (24, seed.Data.Length - 24 - 600), (24, 512)];

    public override IReadOnlyList<ulong> Dictionary => [0x7fffffc0, 0x80000000, 0x7fffffff, 0x01000000, 0x04000000, 0x84000000, 0x13000000, 0xffff, 0x10000];

    public override Verdict Run(byte[] input)
    {
        if (!BtfTypes.TryParse(input, IntrospectionLimits.Default, out var btf, out _) || btf is null) return Verdict.Rejected;
        try
        {
            KernelLikeBtf.Query(btf);
            return Verdict.Accepted;
        }
        catch (BtfFormatException)
        {
            return Verdict.Rejected;
        }
    }
}

/// <summary>KernelOffsets.FromBtf over mutated BTF.</summary>
public sealed class BtfOffsetsTarget : FuzzTarget
{
    public override string Name => "btf-offsets";
    public override string Description => "KernelOffsets.FromBtf over hostile BTF (issue 6 item 2)";
    public override int SmokeIterations => 2_000;

    public override IReadOnlyList<Seed> Seeds() => [new("kernel-like", KernelLikeBtf.Build())];
    public override IReadOnlyList<(int Offset, int Length)>? Focus(Seed seed) => [(24, seed.Data.Length - 24 - 600)];
    public override IReadOnlyList<ulong> Dictionary => [0x7fffffc0, 0x80000000, 0x7fffffff, 0x40000000];

    public override Verdict Run(byte[] input)
    {
        if (!BtfTypes.TryParse(input, IntrospectionLimits.Default, out var btf, out _) || btf is null) return Verdict.Rejected;
        try
        {
            _ = KernelOffsets.FromBtf(btf);
            return Verdict.Accepted;
        }
        catch (Exception e) when (e is BtfFormatException or KernelModelException)
        {
            return Verdict.Rejected;
        }
    }
}

internal static class KernelLikeBtf
{
    private static readonly string[] Structs = ["task_struct", "mm_struct", "module", "maple_range_64", "maple_arange_64", "list_head", "vm_area_struct", "maple_tree", "module_layout"];

    public static byte[] Build()
    {
        var b = new BtfBuilder();
        int ulongT = b.Int("long unsigned int", 8), uintT = b.Int("unsigned int", 4), intT = b.Int("int", 4, signed: true);
        int charT = b.Int("char", 1), u8 = b.Int("unsigned char", 1), voidPtr = b.Ptr(0);
        int ull = b.Int("long long unsigned int", 8);
        int u64 = b.Typedef("u64", b.Typedef("__u64", ull));
        int listHead = b.NextId;
        b.Struct("list_head", 16, M("next", listHead + 1, 0), M("prev", listHead + 1, 8));
        b.Ptr(listHead);
        int lockUnion = b.Union("", 8, M("ma_lock", uintT, 0), M("ma_external_lock", voidPtr, 0));
        int mapleTree = b.Struct("maple_tree", 0x18, M("", lockUnion, 0), M("ma_root", voidPtr, 8), M("ma_flags", uintT, 0x10));
        int pgdT = b.Struct("pgd_t", 8, M("pgd", ulongT, 0));
        int filePtr = b.Ptr(b.Fwd("file"));
        int inner = b.Struct("", 0x448, M("mm_mt", mapleTree, 0), M("pgd", b.Ptr(pgdT), 0x48), M("map_count", intT, 0x68),
            M("start_code", ulongT, 0x100), M("end_code", ulongT, 0x108), M("start_brk", ulongT, 0x120), M("brk", ulongT, 0x128),
            M("start_stack", ulongT, 0x130), M("exe_file", filePtr, 0x3b0));
        int mm = b.Struct("mm_struct", 0x448, M("", inner, 0), M("cpu_bitmap", b.Array(ulongT, intT, 0), 0x448));
        int taskFwd = b.Fwd("task_struct");
        int taskPtr = b.Ptr(taskFwd), mmPtr = b.Ptr(mm);
        int comm = b.Array(charT, intT, 16);
        int flags = b.Typedef("task_flags_t", b.Const(uintT));
        int pidUnion = b.Union("", 8, M("pid", intT, 0), M("tgid", intT, 4));
        int pidStruct = b.Struct("", 8, M("", pidUnion, 0));
        b.Struct("task_struct", 0x2640, M("__state", uintT, 0x18), M("flags", flags, 0x2c), M("tasks", listHead, 0x890), M("mm", mmPtr, 0x8e0),
            Bf("sched_reset_on_fork", uintT, 0x8f8 * 8, 1), M("", pidStruct, 0x970), M("real_parent", taskPtr, 0x980), M("parent", taskPtr, 0x988),
            M("group_leader", taskPtr, 0x9b0), M("thread_group", listHead, 0xa20), M("start_time", u64, 0xa30), M("comm", comm, 0xba0),
            M("signal", b.Ptr(b.Fwd("signal_struct")), 0xc00), M("exit_state", intT, 0x9a0), M("real_cred", b.Ptr(b.Fwd("cred")), 0xb88),
            M("cred", b.Ptr(b.Fwd("cred")), 0xb90), M("thread_node", listHead, 0xa40));
        int layout = b.Struct("module_layout", 0x50, M("base", b.Ptr(b.Const(0)), 0), M("size", uintT, 8), M("text_size", uintT, 0xc), M("ro_size", uintT, 0x10));
        int state = b.Enum("module_state", 4, false, ("MODULE_STATE_LIVE", 0), ("MODULE_STATE_COMING", 1), ("MODULE_STATE_GOING", 2), ("MODULE_STATE_UNFORMED", 3));
        b.Struct("module", 0x380, M("state", state, 0), M("list", listHead, 8), M("name", b.Array(charT, intT, 56), 0x18),
            M("core_layout", layout, 0x140), M("init_layout", layout, 0x190));
        int meta = b.Struct("maple_metadata", 2, M("end", u8, 0), M("gap", u8, 1));
        int pad = b.Struct("", 0x80, M("pad", b.Array(voidPtr, intT, 15), 0), M("meta", meta, 0x78));
        int slotUnion = b.Union("", 0x80, M("slot", b.Array(voidPtr, intT, 16), 0), M("", pad, 0));
        b.Struct("maple_range_64", 0x100, M("parent", voidPtr, 0), M("pivot", b.Array(ulongT, intT, 15), 8), M("", slotUnion, 0x80));
        b.Struct("vm_area_struct", 0x98, M("vm_start", ulongT, 0), M("vm_end", ulongT, 8), M("vm_mm", mmPtr, 0x10), M("vm_flags", ulongT, 0x20),
            M("vm_pgoff", ulongT, 0x78), M("vm_file", filePtr, 0x80), M("vm_ops", voidPtr, 0x70), M("vm_private_data", voidPtr, 0x88));
        // What KernelOffsets.FromBtf also needs: credentials, signal, the path-walk structs, maple_arange_64.
        int credPtr = b.Ptr(b.Fwd("cred"));
        b.Struct("signal_struct", 0x400, M("nr_threads", intT, 0x4), M("thread_head", listHead, 0x10));
        b.Struct("cred", 0xb0, M("uid", uintT, 0x4), M("gid", uintT, 0x8), M("euid", uintT, 0x14));
        int dentryPtr = b.Ptr(b.Fwd("dentry")), vfsmountPtr = b.Ptr(b.Fwd("vfsmount")), inodePtr = b.Ptr(b.Fwd("inode"));
        int pathT = b.Struct("path", 16, M("mnt", vfsmountPtr, 0), M("dentry", dentryPtr, 8));
        b.Struct("file", 0xe8, M("f_path", pathT, 0x10), M("f_inode", inodePtr, 0x20));
        int hashLen = b.Struct("", 8, M("hash", uintT, 0), M("len", uintT, 4));
        int hashUnion = b.Union("", 8, M("", hashLen, 0), M("hash_len", u64, 0));
        int qstr = b.Struct("qstr", 16, M("", hashUnion, 0), M("name", b.Ptr(charT), 8));
        b.Struct("dentry", 0xc0, M("d_hash", listHead, 0x8), M("d_parent", dentryPtr, 0x18), M("d_name", qstr, 0x20));
        int vfsmount = b.Struct("vfsmount", 0x20, M("mnt_root", dentryPtr, 0), M("mnt_sb", voidPtr, 8));
        b.Struct("mount", 0x140, M("mnt_parent", b.Ptr(b.Fwd("mount")), 0x10), M("mnt_mountpoint", dentryPtr, 0x18), M("mnt", vfsmount, 0x20));
        b.Struct("inode", 0x258, M("i_sb", voidPtr, 0x28), M("i_ino", ulongT, 0x40));
        b.Struct("super_block", 0x500, M("s_dev", uintT, 0x10));
        int ameta = b.Struct("", 0x70, M("pad", b.Array(voidPtr, intT, 9), 0), M("meta", meta, 0x48));
        int aslots = b.Union("", 0x50, M("slot", b.Array(voidPtr, intT, 10), 0), M("", ameta, 0));
        b.Struct("maple_arange_64", 0x100, M("parent", voidPtr, 0), M("pivot", b.Array(ulongT, intT, 9), 8), M("", aslots, 0x50), M("gap", b.Array(ulongT, intT, 10), 0xa0));
        _ = credPtr;
        int proto = b.FuncProto(intT, ("argc", intT), ("argv", b.Ptr(b.Ptr(charT))));
        b.Func("main", proto);
        int v = b.Var("jiffies", ulongT);
        b.DataSec(".data", 8, (v, 0, 8));
        b.TypeTag("rcu", voidPtr);
        b.Float("double", 8);
        b.Enum64("big", ("BIG_ONE", 1UL << 40), ("BIG_NEG", ulong.MaxValue));
        b.Restrict(voidPtr);
        b.Volatile(u64);
        return b.Build();
    }

    public static void Query(BtfTypes btf)
    {
        for (int id = 1; id <= btf.Count; id++)
        {
            var kind = btf.GetKind(id);
            _ = btf.GetName(id);
            _ = btf.GetType(id);
            int resolved = btf.ResolveTypedefs(id);
            if (kind is BtfKind.Struct or BtfKind.Union)
            {
                var layout = btf.GetStruct(id);
                foreach (var m in layout.Members) _ = m.ByteOffset;
            }
            if (kind is BtfKind.Enum or BtfKind.Enum64) _ = btf.GetEnumValues(id).Count;
            if (btf.TryGetArray(resolved, out var array)) _ = array.Count;
            if (kind is BtfKind.Int or BtfKind.Struct or BtfKind.Union or BtfKind.Array or BtfKind.Ptr or BtfKind.Typedef) _ = btf.SizeOf(id);
        }
        foreach (string name in Structs)
        {
            var s = btf.FindStruct(name);
            if (s is null) continue;
            foreach (string path in new[] { "pid", "tgid", "comm", "mm", "tasks", "tasks.next", "mm_mt.ma_root", "list", "name", "core_layout.base", "pivot", "slot", "meta.end", "vm_start" })
            {
                if (!s.HasMember(path)) continue;
                _ = s.Offset(path);
                _ = s.MemberSize(path);
            }
        }
        btf.TryFindEnumerator("MODULE_STATE_LIVE", out _);
        _ = btf.FindTypeId("task_struct", BtfKind.Struct);
        _ = btf.StructSizeOrNull("module");
    }
}
