using System.Buffers.Binary;
using Periscope.X86;

namespace Periscope.UnitTests.Support;

/// <summary>Builds x86-64 page tables inside a byte array that stands for guest physical memory.</summary>
public sealed class PageTableBuilder
{
    public const ulong P = PageTableEntry.Present, W = PageTableEntry.Writable, U = PageTableEntry.User, PS = PageTableEntry.LargePage, NX = PageTableEntry.NoExecute;
    private ulong _nextTable;

    public PageTableBuilder(byte[] memory, PagingMode mode, ulong tableArea)
    {
        Memory = memory;
        Mode = mode;
        _nextTable = tableArea;
        Root = NewTable();
    }

    public byte[] Memory { get; }
    public PagingMode Mode { get; }
    public ulong Root { get; }

    public ulong NewTable()
    {
        ulong t = _nextTable;
        _nextTable += 4096;
        Array.Clear(Memory, (int)t, 4096);
        return t;
    }

    public ulong Read(ulong pa) => BinaryPrimitives.ReadUInt64LittleEndian(Memory.AsSpan((int)pa));
    public void Write(ulong pa, ulong value) => BinaryPrimitives.WriteUInt64LittleEndian(Memory.AsSpan((int)pa), value);

    /// <summary>Maps one page of <paramref name="size"/> (4 KiB, 2 MiB or 1 GiB) at va → pa with leaf flags.</summary>
    public void Map(ulong va, ulong pa, ulong size, ulong leafFlags = P | W, ulong tableFlags = P | W | U)
    {
        ulong table = Root;
        int leafShift = size switch { 4096 => 12, 2UL << 20 => 21, 1UL << 30 => 30, _ => throw new ArgumentException("size") };
        for (int shift = Mode.TopLevelShift(); ; shift -= 9)
        {
            ulong slot = table + ((va >> shift) & 511) * 8;
            if (shift == leafShift)
            {
                Write(slot, pa | leafFlags | (shift > 12 ? PS : 0));
                return;
            }
            ulong e = Read(slot);
            if ((e & P) == 0)
            {
                e = NewTable() | tableFlags;
                Write(slot, e);
            }
            table = e & PageTableEntry.AddressMask;
        }
    }

    public void MapRange(ulong va, ulong pa, ulong length, ulong size, ulong leafFlags = P | W)
    {
        for (ulong off = 0; off < length; off += size) Map(va + off, pa + off, size, leafFlags);
    }
}
