using Periscope.Linux.Btf;
using Periscope.Linux.Model;
using Periscope.Memory;
using Periscope.UnitTests.Btf;
using static Periscope.UnitTests.Btf.BtfBuilder;

namespace Periscope.UnitTests.Linux;

/// <summary>
/// XArrayReader over synthetic xa_nodes in a synthetic guest: entries at the head, multi-level trees with their indices,
/// internal markers (retry, zero, sibling) skipped, value entries told apart, and every hostile shape (cycles,
/// over-deep chains, trees of empty nodes, pointers out of the kernel half or into unmapped memory, impossible shifts)
/// ending as a bounded walk with a gap, never an exception.
/// </summary>
public sealed class XArrayReaderTests : IDisposable
{
    /// <summary>xa_node as in Linux 6.1 (shift at 0, slots at 0x28), 64 slots.</summary>
    private const ulong SlotsAt = 0x28, NodeSize = 0x28 + 64 * 8;
    private const ulong Objects = SyntheticGuest.Base + 0x10_0000;
    private readonly SyntheticGuest _guest = new();
    private ulong _nextNode = SyntheticGuest.Base + 0x1000;

    public void Dispose() => _guest.Dispose();

    private static BtfTypes XaNodeBtf(uint slots = 64)
    {
        var b = new BtfBuilder();
        int u8 = b.Int("unsigned char", 1);
        int u32 = b.Int("unsigned int", 4);
        int ptr = b.Ptr(0);
        int array = b.Array(ptr, u32, slots);
        b.Struct("xa_node", (int)SlotsAt + (int)slots * 8, M("shift", u8, 0), M("offset", u8, 1), M("count", u8, 2), M("parent", ptr, 8),
            M("slots", array, (long)SlotsAt));
        return BtfTypes.Parse(b.Build(), IntrospectionLimits.Default);
    }

    /// <summary>A node with <paramref name="shift"/> and the given (slot, entry) pairs; returns its internal entry (address | 2).</summary>
    private ulong Node(byte shift, params (int Slot, ulong Entry)[] slots)
    {
        ulong node = _nextNode;
        _nextNode += NodeSize;
        _guest.U32(node, shift);
        foreach (var (slot, entry) in slots) _guest.U64(node + SlotsAt + (ulong)slot * 8, entry);
        return node | 2;
    }

    private static ulong Obj(int i) => Objects + (ulong)i * 0x100;

    private (List<XArrayEntry> Entries, List<string> Gaps) Read(ulong head, int max = 1000)
    {
        var reader = XArrayReader.Create(_guest.Reader(IntrospectionLimits.Default), XaNodeBtf(), out string? why);
        Assert.True(reader is not null, why);
        var gaps = new List<string>();
        return (reader.Read(head, max, "test xarray", gaps), gaps);
    }

    [Fact]
    public void A_single_pointer_at_the_head_is_index_0()
    {
        var (entries, gaps) = Read(Obj(1));
        Assert.Equal([new XArrayEntry(0, Obj(1), XArrayEntryKind.Pointer)], entries);
        Assert.Empty(gaps);
    }

    [Fact]
    public void An_empty_xarray_has_no_entries()
    {
        var (entries, gaps) = Read(0);
        Assert.Empty(entries);
        Assert.Empty(gaps);
    }

    [Fact]
    public void A_value_at_the_head_is_a_value_entry()
    {
        var (entries, gaps) = Read((42UL << 1) | 1); // xa_mk_value(42)
        Assert.Equal([new XArrayEntry(0, (42UL << 1) | 1, XArrayEntryKind.Value)], entries);
        Assert.Empty(gaps);
    }

    [Fact]
    public void A_two_level_tree_yields_every_entry_at_its_index_in_order()
    {
        ulong leaf1 = Node(0, (3, Obj(1)), (5, Obj(2)));
        ulong leaf0 = Node(0, (0, Obj(3)), (63, (7UL << 1) | 1));
        ulong root = Node(6, (0, leaf0), (1, leaf1), (2, Obj(4)));
        var (entries, gaps) = Read(root);
        Assert.Empty(gaps);
        Assert.Equal(
        [
            new XArrayEntry(0, Obj(3), XArrayEntryKind.Pointer),
            new XArrayEntry(63, (7UL << 1) | 1, XArrayEntryKind.Value),
            new XArrayEntry(64 + 3, Obj(1), XArrayEntryKind.Pointer),
            new XArrayEntry(64 + 5, Obj(2), XArrayEntryKind.Pointer),
            new XArrayEntry(128, Obj(4), XArrayEntryKind.Pointer), // a multi-index entry held by the upper node
        ], entries);
    }

    [Fact]
    public void Retry_zero_and_sibling_markers_are_skipped_without_a_gap()
    {
        const ulong retry = (256UL << 2) | 2, zero = (257UL << 2) | 2, sibling = (1UL << 2) | 2; // xa_mk_internal(256, 257, 1)
        ulong root = Node(0, (0, Obj(1)), (1, sibling), (2, retry), (3, zero), (4, Obj(2)));
        var (entries, gaps) = Read(root);
        Assert.Empty(gaps);
        Assert.Equal([(0UL, Obj(1)), (4UL, Obj(2))], entries.Select(e => (e.Index, e.Entry)));
    }

    [Fact]
    public void A_child_pointing_back_at_its_parent_is_a_cycle_gap_and_the_rest_is_still_read()
    {
        ulong root = (_nextNode + NodeSize) | 2; // allocated right after the child
        ulong child = Node(0, (0, Obj(1)), (1, root));
        Assert.Equal(root, Node(6, (0, child), (1, child), (2, Obj(2))));
        var (entries, gaps) = Read(root);
        Assert.Equal([(0UL, Obj(1)), (128UL, Obj(2))], entries.Select(e => (e.Index, e.Entry)));
        Assert.Equal(2, gaps.Count);
        Assert.All(gaps, g => Assert.Contains("reached twice (a cycle)", g));
    }

    [Fact]
    public void A_chain_deeper_than_64_bit_indices_allow_stops_with_a_gap()
    {
        ulong head = Obj(9);
        for (int i = 0; i < 40; i++) head = Node(0, (0, head));
        var (entries, gaps) = Read(head);
        Assert.Empty(entries);
        Assert.Contains(gaps, g => g.Contains("deeper than an xarray can be", StringComparison.Ordinal));
    }

    [Fact]
    public void Entries_are_capped()
    {
        var many = Enumerable.Range(0, 10).Select(i => (i, Obj(i))).ToArray();
        var (entries, gaps) = Read(Node(0, many), max: 4);
        Assert.Equal(4, entries.Count);
        Assert.Equal(["test xarray: stopped at 4 entries (MaxXarrayEntries)"], gaps);
    }

    [Fact]
    public void A_tree_of_empty_nodes_is_capped_by_its_node_count()
    {
        // No entries to count, but each node costs a read: the same cap stops the walk.
        var empties = Enumerable.Range(0, 10).Select(i => (i, Node(0))).ToArray();
        var (entries, gaps) = Read(Node(6, empties), max: 4);
        Assert.Empty(entries);
        Assert.Equal(["test xarray: stopped at 4 nodes (MaxXarrayEntries)"], gaps);
    }

    [Fact]
    public void Bad_node_pointers_and_impossible_shifts_are_gaps_not_exceptions()
    {
        ulong unmapped = SyntheticGuest.Base + SyntheticGuest.WindowSize + 0x10_0000;
        ulong badShift = Node(7, (0, Obj(1))); // not a multiple of XA_CHUNK_SHIFT (6)
        ulong root = Node(6, (0, 0x0000_7fff_0000_1002UL), (1, unmapped | 2), (2, badShift), (3, Obj(2)));
        var (entries, gaps) = Read(root);
        Assert.Equal([(192UL, Obj(2))], entries.Select(e => (e.Index, e.Entry)));
        Assert.Equal(3, gaps.Count);
        Assert.Contains("node link 0x7fff00001002 is not a kernel pointer", gaps[0]);
        Assert.Contains($"node 0x{unmapped:x} is unreadable or has an impossible shift", gaps[1]);
        Assert.Contains($"node 0x{badShift - 2:x} is unreadable or has an impossible shift", gaps[2]);
    }

    [Fact]
    public void A_btf_xa_node_whose_slot_count_is_not_a_power_of_two_is_refused()
    {
        using var guest = new SyntheticGuest();
        var reader = guest.Reader(IntrospectionLimits.Default);
        Assert.Null(XArrayReader.Create(reader, XaNodeBtf(48), out string? why));
        Assert.Equal("BTF says xa_node.slots has 48 entries; a power of two up to 64 expected", why);
        Assert.NotNull(XArrayReader.Create(reader, XaNodeBtf(16), out _)); // CONFIG_BASE_SMALL
    }
}
