using System.Buffers.Binary;
using Periscope.Linux.Model;
using Periscope.Memory;

namespace Periscope.UnitTests.Linux;

/// <summary>
/// The fixed struct pid / upid / xa_node layout without BTF (<see cref="PidAbi"/>) at both word sizes, and the pid IDR
/// read through it (<see cref="XArrayReader.FromAbi"/>): the x86-64 numbers are BTF's (Debian 6.1..7.3), the i386 ones
/// read 4-byte slots; hostile trees (a node linking to itself, an impossible shift, a node outside the kernel) end as
/// bounded walks with a gap.
/// </summary>
public sealed class PidAbiTests : IDisposable
{
    private readonly SyntheticGuest _guest = new();
    private const ulong Node0 = SyntheticGuest.Base + 0x1000, Node1 = SyntheticGuest.Base + 0x2000, Obj = SyntheticGuest.Base + 0x10_0000;

    public void Dispose() => _guest.Dispose();

    [Fact]
    public void Layout_is_BTFs_on_x86_64_and_follows_the_word_size_on_i386()
    {
        var x64 = PidAbi.For(8);
        // BTF of Debian 6.1, 6.12 and 7.3: xa_node.slots 0x28, upid.ns 0x8.
        Assert.Equal((0x28, 8, 16, 8), (x64.XaNodeSlots, x64.XaNodeParent, x64.XaNodeArray, x64.UpidNs));
        var i386 = PidAbi.For(4);
        Assert.Equal((0x14, 4, 8, 4), (i386.XaNodeSlots, i386.XaNodeParent, i386.XaNodeArray, i386.UpidNs));
        Assert.Equal(64, PidAbi.XaChunkSize);
        Assert.Throws<ArgumentOutOfRangeException>(() => PidAbi.For(2));
    }

    [Theory]
    [InlineData(0x0UL, false)] [InlineData(0x2UL, false)] [InlineData(0x1002UL, true)] [InlineData(0x1001UL, false)] [InlineData(0x1000UL, false)]
    public void Only_internal_entries_above_4096_are_nodes(ulong entry, bool node) => Assert.Equal(node, PidAbi.IsNode(entry));

    private (List<XArrayEntry> Entries, List<string> Gaps) Read(ulong head)
    {
        var gaps = new List<string>();
        return (XArrayReader.FromAbi(_guest.Reader(IntrospectionLimits.Default)).Read(head, 1000, "pid IDR", gaps), gaps);
    }

    [Fact]
    public void Two_level_tree_gives_pids_at_their_indices()
    {
        var abi = PidAbi.For(8);
        _guest.U32(Node0, 6);                                             // root: shift 6
        _guest.U64(Node0 + (ulong)abi.XaNodeSlots + 8, Node1 | 2);        // slot 1 -> child covering 64..127
        _guest.U64(Node1 + (ulong)abi.XaNodeSlots + 3 * 8, Obj);          // index 67
        _guest.U64(Node1 + (ulong)abi.XaNodeSlots + 63 * 8, Obj + 0x100); // index 127 (the last of 64 slots is read)
        var (entries, gaps) = Read(Node0 | 2);
        Assert.Empty(gaps);
        Assert.Equal([new XArrayEntry(67, Obj, XArrayEntryKind.Pointer), new XArrayEntry(127, Obj + 0x100, XArrayEntryKind.Pointer)], entries);
    }

    [Fact]
    public void Node_linking_to_itself_is_a_cycle_gap_not_a_hang()
    {
        var abi = PidAbi.For(8);
        _guest.U32(Node0, 6);
        _guest.U64(Node0 + (ulong)abi.XaNodeSlots, Node0 | 2);
        _guest.U64(Node0 + (ulong)abi.XaNodeSlots + 8, Obj);
        var (entries, gaps) = Read(Node0 | 2);
        Assert.Contains(gaps, g => g.Contains("cycle"));
        Assert.Equal([new XArrayEntry(64, Obj, XArrayEntryKind.Pointer)], entries);
    }

    [Fact]
    public void Impossible_shift_and_pointer_outside_the_kernel_are_gaps()
    {
        _guest.U32(Node0, 7); // not a multiple of XA_CHUNK_SHIFT
        var (entries, gaps) = Read(Node0 | 2);
        Assert.Empty(entries);
        Assert.Contains(gaps, g => g.Contains("impossible shift"));
        (entries, gaps) = Read(0x0000_7fff_0000_1002);
        Assert.Empty(entries);
        Assert.Contains(gaps, g => g.Contains("not a kernel pointer"));
    }

    [Fact]
    public void I386_nodes_hold_4_byte_slots()
    {
        const uint Base = 0xC010_0000, Root = Base + 0x1000, Pid1 = Base + 0x2000, Pid2 = Base + 0x2100; // mem is at physical 0x100000
        var abi = PidAbi.For(4);
        var image = new byte[0x400000];
        var mem = new byte[0x10000];
        mem[0x1000] = 0; // shift 0: slots are indices 0..63
        BinaryPrimitives.WriteUInt32LittleEndian(mem.AsSpan(0x1000 + abi.XaNodeSlots + 1 * 4), Pid1);
        BinaryPrimitives.WriteUInt32LittleEndian(mem.AsSpan(0x1000 + abi.XaNodeSlots + 63 * 4), Pid2); // the last of 64 4-byte slots
        BinaryPrimitives.WriteUInt32LittleEndian(mem.AsSpan(0x1000 + abi.XaNodeSlots + 64 * 4), Pid2 + 0x100); // past the slots: not read
        mem.CopyTo(image, 0x100000);
        // Non-PAE page directory at 0x300000: PDE 0x300 maps 0xC0000000 onto physical 0x000000 as one 4 MiB page.
        BinaryPrimitives.WriteUInt32LittleEndian(image.AsSpan(0x300000 + 0x300 * 4), 0x0 | 0x1 | 0x2 | 0x80);
        using var file = new Support.TempFile(image);
        using var memory = Periscope.Memory.Formats.MemoryImage.Open(file.Path);
        var reader = new GuestReader(new Periscope.X86.AddressSpace(memory, 0x300000, Periscope.X86.PagingMode.Legacy32));
        var gaps = new List<string>();
        var entries = XArrayReader.FromAbi(reader).Read(Root | 2, 100, "pid IDR", gaps);
        Assert.Empty(gaps);
        Assert.Equal([(1UL, (ulong)Pid1), (63UL, (ulong)Pid2)], entries.Select(e => (e.Index, e.Entry)));
    }
}
