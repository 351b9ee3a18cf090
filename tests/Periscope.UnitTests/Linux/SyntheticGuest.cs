using System.Buffers.Binary;
using System.Text;
using Periscope.Linux.Model;
using Periscope.Memory;
using Periscope.Memory.Formats;
using Periscope.UnitTests.Support;
using Periscope.X86;

namespace Periscope.UnitTests.Linux;

/// <summary>
/// Guest physical memory with one kernel-half window (<see cref="Base"/>, <see cref="WindowSize"/> bytes, 2 MiB pages)
/// that a test fills with kernel objects laid out as <see cref="SyntheticKernelBtf"/> says, then opens as a memory
/// image to run the real model walkers over it.
/// </summary>
internal sealed class SyntheticGuest : IDisposable
{
    public const ulong Base = 0xffff_8880_0000_0000;
    public const ulong WindowSize = 6UL << 20;
    private const ulong WindowPa = 2UL << 20;
    private readonly PageTableBuilder _tables;
    /// <summary>Every snapshot a reader was opened on (tests call Reader again after writing more): all are released on dispose.</summary>
    private readonly List<(TempFile File, MemoryImage Image)> _snapshots = [];

    public SyntheticGuest()
    {
        _tables = new PageTableBuilder(new byte[WindowPa + WindowSize], PagingMode.FourLevel, 0x1000);
        _tables.MapRange(Base, WindowPa, WindowSize, 2UL << 20);
    }

    private Span<byte> At(ulong va, int length)
    {
        if (va < Base || va - Base + (ulong)length > WindowSize) throw new ArgumentOutOfRangeException(nameof(va));
        return _tables.Memory.AsSpan((int)(WindowPa + (va - Base)), length);
    }

    public void U64(ulong va, ulong value) => BinaryPrimitives.WriteUInt64LittleEndian(At(va, 8), value);
    public void U32(ulong va, uint value) => BinaryPrimitives.WriteUInt32LittleEndian(At(va, 4), value);
    public void I32(ulong va, int value) => BinaryPrimitives.WriteInt32LittleEndian(At(va, 4), value);
    public void Text(ulong va, string s) { Encoding.ASCII.GetBytes(s).CopyTo(At(va, s.Length + 1)); At(va + (ulong)s.Length, 1)[0] = 0; }

    /// <summary>A circular list_head through <paramref name="nodes"/> (node addresses), prev at <paramref name="prevOffset"/>.</summary>
    public void CircularList(IReadOnlyList<ulong> nodes, int prevOffset = 8)
    {
        for (int i = 0; i < nodes.Count; i++)
        {
            U64(nodes[i], nodes[(i + 1) % nodes.Count]);
            U64(nodes[i] + (ulong)prevOffset, nodes[(i + nodes.Count - 1) % nodes.Count]);
        }
    }

    /// <summary>A reader over the memory as written so far (a snapshot: later writes need a new reader).</summary>
    public GuestReader Reader(IntrospectionLimits limits)
    {
        var file = new TempFile(_tables.Memory);
        var image = MemoryImage.Open(file.Path);
        _snapshots.Add((file, image));
        return new GuestReader(new AddressSpace(image, _tables.Root, PagingMode.FourLevel), limits, new WorkBudget(limits));
    }

    public void Dispose()
    {
        foreach (var (file, image) in _snapshots)
        {
            image.Dispose();
            file.Dispose();
        }
        _snapshots.Clear();
    }
}
