using System.Buffers.Binary;
using Periscope.Linux.Inference;

namespace Periscope.UnitTests;

/// <summary>
/// ns_common without BTF on synthetic namespace structs: ns.inum is where a namespace inode number sits right after a
/// pointer to proc_ns_operations named as the namespace; the initial namespaces must carry their fixed numbers.
/// </summary>
public class InferenceNamespaceTests
{
    private const ulong UtsOps = 0xffff_ffff_8100_1000, NetOps = 0xffff_ffff_8100_2000, Garbage = 0xffff_ffff_8100_3000;

    // On i386 the window holds the low 32 bits of the operations' address.
    private static string? NameOf(ulong ops) => (ops & 0xffff_ffff) switch { UtsOps & 0xffff_ffff => "uts", NetOps & 0xffff_ffff => "net", _ => null };

    /// <summary>A namespace struct window with ns_common (ops, inum) at <paramref name="inumAt"/>.</summary>
    private static byte[] Window(int size, int pointerSize, int inumAt, ulong ops, uint inum)
    {
        var w = new byte[size];
        if (pointerSize == 8) BinaryPrimitives.WriteUInt64LittleEndian(w.AsSpan(inumAt - 8), ops);
        else BinaryPrimitives.WriteUInt32LittleEndian(w.AsSpan(inumAt - 4), (uint)ops);
        BinaryPrimitives.WriteUInt32LittleEndian(w.AsSpan(inumAt), inum);
        return w;
    }

    [Theory]
    [InlineData(8, 0x1a8)]
    [InlineData(4, 0xd4)]
    public void The_initial_uts_namespace_is_found_by_its_fixed_inode_and_ops_name(int pointerSize, int inumAt)
    {
        var w = Window(0x400, pointerSize, inumAt, UtsOps, 0xEFFFFFFE);
        Assert.Equal([inumAt], NamespaceRule.InumOffsets(w, pointerSize, "uts", initial: true, NameOf));
        // The same place is not a net namespace, and a uts namespace created later has a dynamic number.
        Assert.Empty(NamespaceRule.InumOffsets(w, pointerSize, "net", initial: true, NameOf));
        var later = Window(0x400, pointerSize, inumAt, UtsOps, 0xF0000123);
        Assert.Empty(NamespaceRule.InumOffsets(later, pointerSize, "uts", initial: true, NameOf));
        Assert.Equal([inumAt], NamespaceRule.InumOffsets(later, pointerSize, "uts", initial: false, NameOf));
    }

    [Fact]
    public void Net_has_no_fixed_number_before_7_0_and_accepts_a_dynamic_one()
    {
        var w = Window(0x200, 8, 0x90, NetOps, 0xF0000000);
        Assert.Equal([0x90], NamespaceRule.InumOffsets(w, 8, "net", initial: true, NameOf));
        Assert.Null(NamespaceRule.InitialInode("net"));
        Assert.Equal(0xEFFFFFFDu, NamespaceRule.InitialInode("user"));
    }

    [Fact]
    public void A_fixed_number_after_a_pointer_to_other_operations_or_garbage_is_not_ns_common()
    {
        Assert.Empty(NamespaceRule.InumOffsets(Window(0x200, 8, 0x40, NetOps, 0xEFFFFFFE), 8, "uts", true, NameOf));
        Assert.Empty(NamespaceRule.InumOffsets(Window(0x200, 8, 0x40, Garbage, 0xEFFFFFFE), 8, "uts", true, NameOf));
        Assert.Empty(NamespaceRule.InumOffsets(Window(0x200, 8, 0x40, 0, 0xEFFFFFFE), 8, "uts", true, NameOf));
        // Out-of-range inode numbers (a counter, a pointer half) never reach the ops read.
        Assert.Empty(NamespaceRule.InumOffsets(Window(0x200, 8, 0x40, UtsOps, 0x12345678), 8, "uts", false, _ => throw new InvalidOperationException()));
    }

    [Fact]
    public void Hostile_windows_short_empty_or_full_of_candidates_stay_bounded()
    {
        Assert.Empty(NamespaceRule.InumOffsets([], 8, "uts", true, NameOf));
        Assert.Empty(NamespaceRule.InumOffsets(new byte[11], 8, "uts", true, NameOf));
        // A window of nothing but (ops, inum) pairs: every pair is a hit, none read outside the window.
        var w = new byte[0x100];
        for (int at = 8; at + 4 <= w.Length; at += 16)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(w.AsSpan(at - 8), UtsOps);
            BinaryPrimitives.WriteUInt32LittleEndian(w.AsSpan(at), 0xEFFFFFFE);
        }
        int calls = 0;
        var hits = NamespaceRule.InumOffsets(w, 8, "uts", true, ops => { calls++; return NameOf(ops); });
        Assert.Equal(16, hits.Count);
        Assert.Equal(8, hits[0]);
        Assert.Equal(16, calls);
    }
}
