using Periscope.Linux.Btf;
using Periscope.Linux.Objects;
using Periscope.Memory;
using Periscope.UnitTests.Btf;
using Periscope.UnitTests.Linux;
using static Periscope.UnitTests.Btf.BtfBuilder;

namespace Periscope.UnitTests.Objects;

/// <summary>The typed object API over synthetic BTF and synthetic guest memory: members, bitfields, nested and anonymous
/// members, arrays, pointers, enums, typedefs; faults and budgets; the bounded printout.</summary>
public class KernelObjectTests
{
    private const ulong A = SyntheticGuest.Base + 0x1000;
    private const ulong B = SyntheticGuest.Base + 0x2000;
    private const ulong Unmapped = 0xffff_c900_0000_0000;

    /// <summary>
    /// struct node { int id; unsigned flags:3; int delta:5 (signed); char name[8]; struct node *next; enum color c;
    ///               pid_t pid; union { u64 raw; u32 half; }; struct inner { u16 a; u16 b; } in; u32 vals[3]; struct list_head link; }
    /// </summary>
    private static BtfTypes Types()
    {
        var b = new BtfBuilder();
        int i32 = b.Int("int", 4, signed: true);                                   // 1
        int u32 = b.Int("unsigned int", 4);                                        // 2
        int ch = b.Int("char", 1, signed: true);                                   // 3
        int u64 = b.Int("long long unsigned int", 8);                              // 4
        int u16 = b.Int("short unsigned int", 2);                                  // 5
        int name = b.Array(ch, u32, 8);                                            // 6
        int pidT = b.Typedef("pid_t", i32);                                        // 7
        int color = b.Enum("color", 4, false, ("RED", 0), ("GREEN", 1), ("BLUE", 7)); // 8
        int anon = b.Union("", 8, M("raw", u64, 0), M("half", u32, 0));            // 9
        int inner = b.Struct("inner", 4, M("a", u16, 0), M("b", u16, 2));          // 10
        int vals = b.Array(u32, u32, 3);                                           // 11
        int listHead = b.NextId;                                                   // 12
        int listPtr = listHead + 1;                                                // 13
        b.Struct("list_head", 16, M("next", listPtr, 0), M("prev", listPtr, 8));
        b.Ptr(listHead);
        int node = b.NextId;                                                       // 14
        int nodePtr = node + 1;                                                    // 15
        b.Struct("node", 80,
            M("id", i32, 0), Bf("flags", u32, 32, 3), Bf("delta", i32, 35, 5), M("name", name, 8), M("next", nodePtr, 16),
            M("c", color, 24), M("pid", pidT, 28), M("", anon, 32), M("in", inner, 40), M("vals", vals, 44), M("link", listHead, 56));
        b.Ptr(node);
        return BtfTypes.Parse(b.Build());
    }

    private static (SyntheticGuest Guest, KernelObjects Objects) Open(Action<SyntheticGuest> fill, IntrospectionLimits? limits = null)
    {
        var g = new SyntheticGuest();
        fill(g);
        limits ??= IntrospectionLimits.Default;
        return (g, new KernelObjects(Types(), g.Reader(limits)));
    }

    private static void Node(SyntheticGuest g, ulong at, int id, string name, ulong next)
    {
        g.I32(at, id);
        g.Text(at + 8, name);
        g.U64(at + 16, next);
    }

    [Fact]
    public void MembersOfEveryKindReadAsCWouldSeeThem()
    {
        var (g, objects) = Open(g =>
        {
            Node(g, A, -42, "alpha", B);
            // flags:3 = 5 at bit 32, delta:5 = -3 (0b11101) at bit 35: byte 4 = 0b11101_101
            g.U32(A + 4, 0b11101_101);
            g.U32(A + 24, 7);          // c = BLUE
            g.I32(A + 28, 1234);       // pid
            g.U64(A + 32, 0x1122_3344_5566_7788);
            g.U32(A + 40, 0x0002_0001); // in.a = 1, in.b = 2
            g.U32(A + 44, 10); g.U32(A + 48, 20); g.U32(A + 52, 30);
        });
        using var guest = g;
        var n = objects.Object("node", A);
        Assert.Equal("struct node", n.Type.Name);
        Assert.Equal(-42, n["id"].ReadInt64());
        Assert.Equal(5UL, n["flags"].ReadUInt64());
        Assert.True(n["flags"].IsBitfield);
        Assert.Equal(-3, n["delta"].ReadInt64());
        Assert.Equal("alpha", n["name"].ReadString());
        Assert.Equal("char[8]", n["name"].Type.Name);
        Assert.Equal("BLUE", n["c"].ReadEnumName());
        Assert.Equal("pid_t", n["pid"].Type.Name);
        Assert.Equal(ObjectKind.Integer, n["pid"].Kind);
        Assert.Equal(1234, n["pid"].ReadInt64());
        Assert.Equal(0x5566_7788UL, n["half"].ReadUInt64());        // through the anonymous union
        Assert.Equal(0x1122_3344_5566_7788UL, n["raw"].ReadUInt64());
        Assert.Equal(2UL, n["in.b"].ReadUInt64());
        Assert.Equal(2UL, n["in"]["b"].ReadUInt64());
        Assert.Equal(30UL, n["vals[2]"].ReadUInt64());
        Assert.Equal(20UL, n["vals"][1].ReadUInt64());
        Assert.Equal("struct node *", n["next"].Type.Name);
        Assert.Equal(B, n["next"].ReadPointer());
    }

    [Fact]
    public void PointersAreFollowedLikeArrowAndContainerOfGoesBack()
    {
        var (g, objects) = Open(g =>
        {
            Node(g, A, 1, "first", B);
            Node(g, B, 2, "second", 0);
        });
        using var guest = g;
        var n = objects.Object("struct node", A);
        Assert.Equal("second", n["next"]["name"].ReadString());      // n->next->name
        Assert.Equal(2, n["next"].Deref()["id"].ReadInt64());
        Assert.Equal(A, n["link"].ContainerOf("node", "link").Address);
        var fault = Assert.Throws<ObjectFaultException>(() => n["next"]["next"].Deref());
        Assert.Contains("NULL", fault.Message);
        Assert.False(n["next"]["next"].TryDeref(out _));
        Assert.Throws<ObjectTypeException>(() => n["id"].Deref());
        Assert.Throws<ObjectTypeException>(() => n["nosuch"]);
        Assert.Throws<ObjectTypeException>(() => objects.Object("struct nosuch", A));
        Assert.False(n.HasMember("nosuch"));
        Assert.True(n["next"].HasMember("name"));
    }

    [Fact]
    public void UnreadableMemoryIsAFaultNamingTheAddress()
    {
        var (g, objects) = Open(g => Node(g, A, 1, "first", Unmapped));
        using var guest = g;
        var e = Assert.Throws<ObjectFaultException>(() => objects.Object("node", A)["next"]["id"].ReadInt64());
        Assert.Equal(Unmapped, e.Address);
        Assert.False(objects.Object("node", Unmapped)["id"].TryReadRaw(out _));
    }

    [Fact]
    public void ListWalkFindsEntriesAndStopsAtACycleThatSkipsTheHead()
    {
        ulong head = SyntheticGuest.Base + 0x3000;
        ulong n1 = A, n2 = B;
        var (g, objects) = Open(g =>
        {
            Node(g, n1, 1, "one", 0);
            Node(g, n2, 2, "two", 0);
            g.CircularList([head, n1 + 56, n2 + 56]);
        });
        using var guest = g;
        var ids = objects.Object("list_head", head).ListEntries("node", "link").Select(e => e["id"].ReadInt64()).ToList();
        Assert.Equal([1L, 2L], ids);

        var (g2, cyclic) = Open(g =>
        {
            Node(g, n1, 1, "one", 0);
            Node(g, n2, 2, "two", 0);
            g.U64(head, n1 + 56);
            g.U64(n1 + 56, n2 + 56);
            g.U64(n2 + 56, n1 + 56); // never returns to the head
        });
        using var __ = g2;
        var seen = new List<long>();
        var e = Assert.Throws<ObjectFaultException>(() =>
        {
            foreach (var entry in cyclic.Object("list_head", head).ListEntries("node", "link")) seen.Add(entry["id"].ReadInt64());
        });
        Assert.Contains("cycle", e.Message);
        Assert.Equal([1L, 2L], seen);
    }

    [Fact]
    public void PointerFollowsAreBoundedByMaxObjectDerefs()
    {
        var (g, objects) = Open(g => Node(g, A, 1, "self", A), IntrospectionLimits.Default with { MaxObjectDerefs = 10 });
        using var guest = g;
        var n = objects.Object("node", A);
        var e = Assert.Throws<ObjectFaultException>(() =>
        {
            for (int i = 0; i < 100; i++) n = n["next"].Deref();
        });
        Assert.Contains("MaxObjectDerefs = 10", e.Message);
        Assert.Equal(11, objects.Derefs);
    }

    [Fact]
    public void PrintoutExpandsNestedValuesAndStopsAtAPointerCycle()
    {
        var (g, objects) = Open(g =>
        {
            Node(g, A, 1, "a", B);
            Node(g, B, 2, "b", A);  // a -> b -> a
            g.U32(A + 24, 1);
        });
        using var guest = g;
        var root = ObjectTree.Build(objects.Object("node", A), new ObjectPrintOptions { Follow = new HashSet<string> { "next" } });
        Assert.Equal("struct node", root.TypeName);
        var next = root.Children.Single(c => c.Name == "next");
        Assert.Equal($"0x{B:x}", next.Value);
        var b = Assert.Single(next.Children);
        Assert.Equal("\"b\"", b.Children.Single(c => c.Name == "name").Value);
        Assert.Equal("b", b.Children.Single(c => c.Name == "name").Text);
        var back = b.Children.Single(c => c.Name == "next");
        Assert.True(back.Cut);                       // A was shown already: not expanded again
        Assert.Empty(back.Children);
        Assert.Equal("GREEN", root.Children.Single(c => c.Name == "c").Value);
        var vals = root.Children.Single(c => c.Name == "vals");
        Assert.Equal(["[0]", "[1]", "[2]"], vals.Children.Select(c => c.Name));
        var anon = root.Children.Single(c => c.Name == "" && c.Kind == ObjectKind.Union);
        Assert.Equal(["raw", "half"], anon.Children.Select(c => c.Name));
    }

    [Fact]
    public void PrintoutIsCutAtTheDepthAndNodeLimitsAndMarksUnreadableValues()
    {
        var (g, objects) = Open(g => Node(g, A, 1, "a", 0), IntrospectionLimits.Default with { MaxObjectPrintNodes = 5 });
        using var guest = g;
        var shallow = ObjectTree.Build(objects.Object("node", A), new ObjectPrintOptions { Depth = 0 }, out bool limited);
        Assert.True(shallow.Cut);
        Assert.Empty(shallow.Children);
        Assert.False(limited);
        var cut = ObjectTree.Build(objects.Object("node", A), null, out bool nodeLimit);
        Assert.True(nodeLimit);
        Assert.True(cut.Cut);
        Assert.True(cut.Children.Count < 5);

        var (g2, other) = Open(_ => { });
        using var __ = g2;
        var unreadable = ObjectTree.Build(other.Object("node", Unmapped), new ObjectPrintOptions { Depth = 1 });
        Assert.All(unreadable.Children.Where(c => c.Kind is ObjectKind.Integer or ObjectKind.Pointer), c => Assert.NotNull(c.Error));
    }
}
