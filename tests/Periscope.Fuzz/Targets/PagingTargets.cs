using Periscope.Fuzz.Engine;
using Periscope.Linux.Discovery;
using Periscope.UnitTests.Support;
using Periscope.X86;
using static Periscope.UnitTests.Support.PageTableBuilder;

namespace Periscope.Fuzz.Targets;

/// <summary>
/// A miniature guest: 8 MiB of physical memory whose page-table area (64 KiB at 2 MiB) is the fuzz input; the rest is
/// fixed. Built like a Linux kernel half (image at a KASLR slot in 2 MiB pages, a direct map, a user mapping, a process
/// PGD sharing the kernel half) in 4- or 5-level form. The first input byte picks the paging mode.
/// </summary>
public abstract class SyntheticGuestTarget : FuzzTarget
{
    protected const int MemorySize = 8 << 20;
    protected const int TableArea = 0x200000, TableAreaLength = 0x10000;
    protected const ulong TextVa = 0xffffffff8dc00000, TextPa = 0x400000, DirectMap = 0xffff88fb40000000, UserVa = 0x400000;
    private ArrayPhysicalMemory? _memory;

    protected ArrayPhysicalMemory Memory => _memory ??= new ArrayPhysicalMemory(MemorySize);

    public override IReadOnlyList<Seed> Seeds() => [new("four-level", Build(PagingMode.FourLevel)), new("five-level", Build(PagingMode.FiveLevel)),
        new("pae-over-four-level", With32(Build(PagingMode.FourLevel), PagingMode.Pae32)), new("non-pae-over-five-level", With32(Build(PagingMode.FiveLevel), PagingMode.Legacy32))];

    /// <summary>The same table bytes read as i386 tables: byte 0's bit 7 selects the 32-bit modes (bit 0: non-PAE).</summary>
    private static byte[] With32(byte[] input, PagingMode mode)
    {
        input[0] = (byte)(0x80 | (mode == PagingMode.Legacy32 ? 1 : 0));
        return input;
    }

    public override IReadOnlyList<(int Offset, int Length)>? Focus(Seed seed) => null; // the whole input is tables

    public override IReadOnlyList<ulong> Dictionary =>
    [
        TableArea | P | W, TableArea + 0x1000 | P | W | U, TableArea | P | W | PS, 0x1000 | P | W | U, MemorySize | P, TextPa | P | W | PS,
        P | PS, P | U | W | NX, TextVa, DirectMap,
    ];

    private static byte[] Build(PagingMode mode)
    {
        var b = new PageTableBuilder(new byte[MemorySize], mode, TableArea);
        b.MapRange(TextVa, TextPa, 4UL << 20, 2UL << 20, P | W);
        b.MapRange(DirectMap, 0, 2UL << 20, 4096, P | W | NX);
        b.MapRange(DirectMap + (2UL << 20), 2UL << 20, MemorySize - (2UL << 20), 2UL << 20, P | W | NX);
        b.Map(UserVa, 0x300000, 4096, P | U);
        b.Map(UserVa + 0x1000, 0x301000, 4096, P | U | W | NX);
        ulong process = b.NewTable();
        if ((process & 0x1000) != 0) process = b.NewTable();
        for (ulong i = 256; i < 512; i++) b.Write(process + i * 8, b.Read(b.Root + i * 8));
        b.Write(process, b.Read(b.Root));
        var input = new byte[1 + TableAreaLength];
        input[0] = (byte)mode;
        b.Memory.AsSpan(TableArea, TableAreaLength).CopyTo(input.AsSpan(1));
        return input;
    }

    /// <summary>Lays the input's tables into memory; returns the paging mode it asks for.</summary>
    protected PagingMode Load(byte[] input)
    {
        var area = Memory.Bytes.AsSpan(TableArea, TableAreaLength);
        area.Clear();
        if (input.Length > 1) input.AsSpan(1, Math.Min(input.Length - 1, TableAreaLength)).CopyTo(area);
        if (input.Length == 0) return PagingMode.FourLevel;
        if ((input[0] & 0x80) != 0) return (input[0] & 1) != 0 ? PagingMode.Legacy32 : PagingMode.Pae32;
        return (input[0] & 1) != 0 ? PagingMode.FiveLevel : PagingMode.FourLevel;
    }
}

/// <summary>Periscope.X86: translation (cached and uncached), virtual reads across pages, mapping enumeration.</summary>
public sealed class PageTableTarget : SyntheticGuestTarget
{
    public override string Name => "page-tables";
    public override string Description => "X86 page-table walk, translation cache, virtual reads, mapping enumeration over hostile tables";
    public override int SmokeIterations => 600;

    public override Verdict Run(byte[] input)
    {
        var mode = Load(input);
        Span<byte> buf = stackalloc byte[64];
        foreach (ulong root in new ulong[] { TableArea, TableArea + 0x2000, TableArea + 0x3000 })
        {
            var space = new AddressSpace(Memory, root, mode);
            long leaves = 0;
            foreach (var m in space.EnumerateMappings(maxLeaves: 1 << 16))
            {
                leaves++;
                space.TryTranslate(m.VirtualAddress, out Translation _);
                space.TryTranslate(m.VirtualEnd - 1, out ulong _);
            }
            foreach (var m in space.EnumerateMappings(space.Mode.KernelHalfStart(), ulong.MaxValue, maxLeaves: 4096)) _ = m.Length;
            foreach (ulong va in new[] { TextVa, TextVa + 0x1ff000 + 0xff0, DirectMap, DirectMap + 0x1ffff8, UserVa, UserVa + 0xffc, 0UL, ulong.MaxValue - 8, 0x00007ffffffffff8UL })
            {
                space.TranslateWithoutCache(va, out var t);
                space.Read(va, buf);
                space.TryReadUInt64(va, out _);
                _ = space.GetSpan(va, 16).Length;
                _ = t.PageSize;
            }
            space.FlushCache();
            _ = leaves;
        }
        return Verdict.Accepted;
    }
}

/// <summary>Periscope.Linux/Discovery over the synthetic guest: the PGD scan, paging-mode and KASLR detection, direct map.</summary>
public sealed class KernelLocatorTarget : SyntheticGuestTarget
{
    public override string Name => "kernel-locator";
    public override string Description => "kernel discovery on a synthetic guest: top-level table scan, 4/5-level detection, KASLR text base, direct-map search";
    public override int SmokeIterations => 3_000;

    public override Verdict Run(byte[] input)
    {
        Load(input);
        // The cheap ways in first: a CR3 (PTI user bit set) at one of the input's pages, then the first MiB; what they
        // accept is verified against the input's tables, and init_top_pgt is searched below the image's own table.
        var cr3 = new Periscope.Memory.CpuState { Cr3 = (ulong)(TableArea + (input.Length > 1 ? input[1] % 16 : 0) * 0x1000) | 0x1000 };
        try
        {
            var cheap = new DiscoveryInputs { Cpus = [cr3], Methods = DiscoveryMethods.Cr3 | DiscoveryMethods.LowMemorySearch };
            _ = KernelLocator.Locate(Memory, cheap, Periscope.Memory.IntrospectionLimits.Default, new DiscoveryLog()).DiscoveryPagesRead;
        }
        catch (KernelNotFoundException) { }
        try
        {
            var layout = KernelLocator.Locate(Memory, [], new DiscoveryLog());
            _ = layout.ImageVaToPa(layout.TextVa);
            return Verdict.Accepted;
        }
        catch (KernelNotFoundException)
        {
            return Verdict.Rejected;
        }
    }
}
