using System.Text;
using Periscope.Linux.Inference;
using Periscope.Linux.Model;

namespace Periscope.UnitTests;

/// <summary>
/// The pointer-size-dependent structural facts: with 8-byte pointers they are exactly StructuralFacts' x86-64 constants
/// (so the 64-bit search is unchanged), with 4-byte pointers the i386 layout, checked against what Debian's 686 kernels
/// declare (maple nodes of 256 bytes: 32 range and 21 arange slots).
/// </summary>
public class WordLayoutTests
{
    [Fact]
    public void Eight_byte_layout_is_the_x86_64_constants()
    {
        var w = WordLayout.For(8);
        Assert.Equal(
            (StructuralFacts.ListHeadPrev, StructuralFacts.ModuleListOffset, StructuralFacts.ModuleNameLength, StructuralFacts.RefcntAfterLists,
             StructuralFacts.LayoutSize, StructuralFacts.LayoutTextSize, StructuralFacts.LayoutRoSize, StructuralFacts.ModMemTreeNodeMod),
            (w.ListHeadPrev, w.ModuleListOffset, w.ModuleNameLength, w.RefcntAfterLists, w.LayoutSize, w.LayoutTextSize, w.LayoutRoSize, w.ModMemTreeNodeMod));
        Assert.Equal(
            (StructuralFacts.ModuleUseTargetList, StructuralFacts.ModuleUseSource, StructuralFacts.ModuleUseTarget,
             StructuralFacts.ModKallsymsNumSymtab, StructuralFacts.ModKallsymsStrtab, StructuralFacts.ModKallsymsTypetab, StructuralFacts.ModKallsymsBytes),
            (w.ModuleUseTargetList, w.ModuleUseSource, w.ModuleUseTarget, w.ModKallsymsNumSymtab, w.ModKallsymsStrtab, w.ModKallsymsTypetab, w.ModKallsymsBytes));
        Assert.Equal(
            (StructuralFacts.ElfSymSize, StructuralFacts.ElfSymValue, StructuralFacts.KernelSymbolNumAfterSyms, StructuralFacts.KernelSymbolNumAfterSymsWithFlags,
             StructuralFacts.PathDentry, StructuralFacts.MountParentBeforeMnt, StructuralFacts.MountMountpointBeforeMnt, StructuralFacts.SuperBlockDev),
            (w.ElfSymSize, w.ElfSymValue, w.KernelSymbolNumAfterSyms, w.KernelSymbolNumAfterSymsWithFlags, w.PathDentry, w.MountParentBeforeMnt, w.MountMountpointBeforeMnt, w.SuperBlockDev));
        Assert.Equal((StructuralFacts.MmEndCode, StructuralFacts.MmStartBrk, StructuralFacts.MmBrk, StructuralFacts.MmStartStack),
            (w.MmEndCode, w.MmStartBrk, w.MmBrk, w.MmStartStack));
        Assert.Equal(
            (StructuralFacts.MapleRangePivot, StructuralFacts.MapleRangeSlot, StructuralFacts.MapleRangeMeta, StructuralFacts.MapleRangeSlots,
             StructuralFacts.MapleArangePivot, StructuralFacts.MapleArangeSlot, StructuralFacts.MapleArangeMeta, StructuralFacts.MapleArangeSlots),
            (w.MapleRangePivot, w.MapleRangeSlot, w.MapleRangeMeta, w.MapleRangeSlots, w.MapleArangePivot, w.MapleArangeSlot, w.MapleArangeMeta, w.MapleArangeSlots));
        Assert.Equal("elf64_sym", w.ElfSymStruct);
    }

    [Fact]
    public void Four_byte_layout_is_i386s()
    {
        var w = WordLayout.For(4);
        Assert.Equal((4, 4, 60, 20), (w.ListHeadPrev, w.ModuleListOffset, w.ModuleNameLength, w.RefcntAfterLists));
        Assert.Equal((4, 8, 12), (w.LayoutSize, w.LayoutTextSize, w.LayoutRoSize));
        Assert.Equal((16, 4, "elf32_sym"), (w.ElfSymSize, w.ElfSymValue, w.ElfSymStruct));
        Assert.Equal((4, 16, 20, 24), (w.MmEndCode, w.MmStartBrk, w.MmBrk, w.MmStartStack));
        // maple_range_64 { parent; pivot[31]; slot[32] } and maple_arange_64 { parent; pivot[20]; slot[21]; gap[21]; meta }: 256 bytes.
        Assert.Equal((32, 4, 0x80, 0xfc), (w.MapleRangeSlots, w.MapleRangePivot, w.MapleRangeSlot, w.MapleRangeMeta));
        Assert.Equal((21, 4, 0x54, 0xfc), (w.MapleArangeSlots, w.MapleArangePivot, w.MapleArangeSlot, w.MapleArangeMeta));
        Assert.Throws<ArgumentOutOfRangeException>(() => WordLayout.For(2));
    }

    /// <summary>
    /// A 32-bit maple tree built from bytes (one range node over two leaves, 4-byte pivots and slots) walks to its
    /// entries in order with the i386 layout.
    /// </summary>
    [Fact]
    public void Maple_tree_with_4_byte_slots_walks_in_order()
    {
        const ulong Base = 0xC010_0000; // physical 0x100000 through one 4 MiB page
        var image = new byte[4 << 20];
        var mem = image.AsSpan(0x100000, 0x1000).ToArray();
        var w = WordLayout.For(4);
        const ulong Root = Base, LeafA = Base + 0x100, LeafB = Base + 0x200;
        void Put(ulong va, uint v) => System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(mem.AsSpan((int)(va - Base)), v);
        // (the node bytes are built in `mem`, then copied into the physical image)
        // Encoded node pointers: the address with the type in bits 3..6 (range64 = 2, leaf64 = 1); the root carries the tag 2.
        Put(Root + (ulong)w.MapleRangePivot, 0x8fff);                 // child 0 covers 0..0x8fff
        Put(Root + (ulong)w.MapleRangeSlot, (uint)(LeafA | (1 << 3)));
        Put(Root + (ulong)w.MapleRangeSlot + 4, (uint)(LeafB | (1 << 3)));
        mem[(int)(Root - Base) + w.MapleRangeMeta] = 1;                // end: slots 0..1
        uint[] entriesA = [0xC200_0000, 0, 0xC200_0100], entriesB = [0xC200_0200];
        for (int i = 0; i < entriesA.Length; i++) Put(LeafA + (ulong)(w.MapleRangeSlot + 4 * i), entriesA[i]);
        Put(LeafA + (ulong)w.MapleRangePivot, 0x1fff); Put(LeafA + (ulong)(w.MapleRangePivot + 4), 0x3fff); Put(LeafA + (ulong)(w.MapleRangePivot + 8), 0x8fff);
        mem[(int)(LeafA - Base) + w.MapleRangeMeta] = 2;
        Put(LeafB + (ulong)w.MapleRangeSlot, entriesB[0]);
        mem[(int)(LeafB - Base) + w.MapleRangeMeta] = 0;
        mem.CopyTo(image, 0x100000);
        // Non-PAE page directory at 0x300000: PDE 0x300 maps 0xC0000000 onto physical 0 as one 4 MiB page.
        System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(image.AsSpan(0x300000 + 0x300 * 4), 0x0 | 0x1 | 0x2 | 0x80);
        using var file = new Support.TempFile(image);
        using var memory = Periscope.Memory.Formats.MemoryImage.Open(file.Path);
        var reader = new GuestReader(new Periscope.X86.AddressSpace(memory, 0x300000, Periscope.X86.PagingMode.Legacy32));
        Assert.Equal(4, reader.PointerSize);
        var layout = new MapleOffsets
        {
            Root = 0, RangePivot = w.MapleRangePivot, RangeSlot = w.MapleRangeSlot, RangeMeta = w.MapleRangeMeta, RangeSlots = w.MapleRangeSlots,
            ArangePivot = w.MapleArangePivot, ArangeSlot = w.MapleArangeSlot, ArangeMeta = w.MapleArangeMeta, ArangeSlots = w.MapleArangeSlots,
            MetaEnd = 0, TypeDense = 0, TypeLeaf64 = 1, TypeRange64 = 2, TypeArange64 = 3,
        };
        var entries = new MapleTree(reader, layout, Periscope.Memory.IntrospectionLimits.Default, new Diagnostics()).Entries(Root | (2 << 3) | 2, 100);
        Assert.Equal([0xC200_0000UL, 0xC200_0100UL, 0xC200_0200UL], entries);
    }
}
