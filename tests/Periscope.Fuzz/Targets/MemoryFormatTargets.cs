using System.Buffers.Binary;
using System.Text;
using Periscope.Fuzz.Engine;
using Periscope.Linux.Discovery;
using Periscope.Memory;
using Periscope.Memory.Formats;
using Periscope.UnitTests.Support;

namespace Periscope.Fuzz.Targets;

/// <summary>Opens the input as a dump file (format detected from content) and touches everything the reader produced.</summary>
public abstract class DumpFileTarget : FuzzTarget
{
    private ScratchFile? _scratch;

    protected virtual RawLayout Layout => RawLayout.Flat;

    public override Verdict Run(byte[] input)
    {
        _scratch ??= new ScratchFile(Name);
        string path = _scratch.Write(input);
        try
        {
            using var image = MemoryImage.Open(path, IntrospectionLimits.Default, Layout);
            Exercise(image);
            return Verdict.Accepted;
        }
        catch (MemoryFormatException)
        {
            return Verdict.Rejected;
        }
    }

    protected static void Exercise(MemoryImage image)
    {
        Span<byte> buf = stackalloc byte[64];
        foreach (var r in image.Map.Ranges)
        {
            image.Read(r.Start, buf);
            image.Read(r.End - 1, buf);
            image.Read(r.End - 32, buf);
            _ = image.GetSpan(r.Start, 16).Length + image.GetSpan(r.End - 8, 16).Length;
        }
        foreach (var r in image.AllocatedRam) image.Read(r.Start, buf);
        _ = image.Map.RamEnd + image.Map.RamBytes;
        foreach (var cpu in image.Cpus) _ = cpu.Cr3;
        // The page-table scan is discovery's whole-RAM fallback; it must survive any layout. So must the cheap ways in,
        // which trust the dump's own CR3 notes and VMCOREINFO only after verifying them.
        _ = PageTableScanner.FindTopLevelGroups(image).Count;
        try
        {
            var inputs = new DiscoveryInputs { Cpus = image.Cpus, VmcoreInfo = image.VmcoreInfo, Methods = DiscoveryMethods.All & ~DiscoveryMethods.FullScan };
            _ = KernelLocator.Locate(image, inputs, IntrospectionLimits.Default, new DiscoveryLog()).KernelPgd;
        }
        catch (KernelNotFoundException) { }
    }

    public override void Dispose()
    {
        _scratch?.Dispose();
        base.Dispose();
    }

    protected static byte[] Pattern(int length, int seed)
    {
        var b = new byte[length];
        for (int i = 0; i < b.Length; i++) b[i] = (byte)(i * 7 + seed);
        return b;
    }
}

public sealed class ElfCoreTarget : DumpFileTarget
{
    public override string Name => "elf-core";
    public override string Description => "ELF core reader (program headers, PN_XNUM, notes: CORE, QEMU, VMCOREINFO), RAM classification";
    public override int SmokeIterations => 6_000;

    public override IReadOnlyList<Seed> Seeds() =>
    [
        new("qemu-core", new ElfCoreBuilder()
            .Load(0, Pattern(0x1000, 1)).Load(0xc0000, Pattern(0x2000, 2)).Load(0xfd000000, Pattern(0x1000, 3)).Load(0x100000000, Pattern(0x1000, 4))
            .Note("CORE", 1, ElfCoreBuilder.PrStatus(0x1234, 0x5678))
            .Note("QEMU", 0, ElfCoreBuilder.QemuCpuState(cr3: 0x2000, cr4: 0x1020))
            .Note("VMCOREINFO", 0, "OSRELEASE=6.1.0\nKERNELOFFSET=1be00000\n"u8.ToArray())
            .Build()),
        new("pn-xnum", new ElfCoreBuilder { UsePnXNum = true }.Load(0, Pattern(0x1000, 5)).Load(0x200000, Pattern(0x1000, 6))
            .Note("QEMU", 0, ElfCoreBuilder.QemuCpuState(0x1000, 0, kernelGsBase: null)).Build()),
        new("two-cpus", new ElfCoreBuilder().Load(0, Pattern(0x2000, 7))
            .Note("CORE", 1, ElfCoreBuilder.PrStatus(1, 2)).Note("CORE", 1, ElfCoreBuilder.PrStatus(3, 4))
            .Note("QEMU", 0, ElfCoreBuilder.QemuCpuState(0x1000, 0x20)).Build()),
        new("i386-elf32", new Elf32CoreBuilder().Load(0, Pattern(0x1000, 8)).Load(0x100000, Pattern(0x2000, 9))
            .Note("CORE", 1, Elf32CoreBuilder.I386PrStatus(0xc1000000, 0xc1ff0000))
            .Note("QEMU", 0, ElfCoreBuilder.QemuCpuState(0x100020, 0x20, kernelGsBase: null)).Build()),
        new("i386-elf64", new ElfCoreBuilder { Machine = 3 }.Load(0, Pattern(0x2000, 10))
            .Note("CORE", 1, Elf32CoreBuilder.I386PrStatus(0xc1000000, 0xc1ff0000)).Build()),
    ];

    // Header, program headers, section header 0 and the notes: everything before the first PT_LOAD's data.
    public override IReadOnlyList<(int Offset, int Length)>? Focus(Seed seed) => [(0, 64), (64, Math.Min(seed.Data.Length - 64, 2048))];
}

public sealed class LimeTarget : DumpFileTarget
{
    public override string Name => "lime";
    public override string Description => "LiME range headers";
    public override int SmokeIterations => 6_000;

    public override IReadOnlyList<Seed> Seeds() =>
    [
        new("three-ranges", Lime((0, Pattern(0x1000, 1)), (0x100000, Pattern(0x2000, 2)), (0x100000000, Pattern(0x1000, 3)))),
        new("one-byte", Lime((0x1000, [0x42]))),
    ];

    public override IReadOnlyList<(int Offset, int Length)>? Focus(Seed seed)
    {
        var headers = new List<(int, int)>();
        for (int pos = 0; pos + 32 <= seed.Data.Length;)
        {
            headers.Add((pos, 32));
            ulong start = BinaryPrimitives.ReadUInt64LittleEndian(seed.Data.AsSpan(pos + 8));
            ulong end = BinaryPrimitives.ReadUInt64LittleEndian(seed.Data.AsSpan(pos + 16));
            pos += 32 + (int)(end - start + 1);
        }
        return headers;
    }

    private static byte[] Lime(params (ulong Start, byte[] Data)[] ranges)
    {
        var ms = new MemoryStream();
        foreach (var (start, data) in ranges)
        {
            var h = new byte[32];
            BinaryPrimitives.WriteUInt32LittleEndian(h, LimeReader.Magic);
            BinaryPrimitives.WriteUInt32LittleEndian(h.AsSpan(4), 1);
            BinaryPrimitives.WriteUInt64LittleEndian(h.AsSpan(8), start);
            BinaryPrimitives.WriteUInt64LittleEndian(h.AsSpan(16), start + (ulong)data.Length - 1);
            ms.Write(h);
            ms.Write(data);
        }
        return ms.ToArray();
    }
}

/// <summary>Format detection: inputs that almost look like ELF, LiME or kdump fall through to raw, in every raw layout.</summary>
public sealed class RawDetectionTarget : DumpFileTarget
{
    private int _layout;
    public override string Name => "raw-detect";
    public override string Description => "format detection (ELF/LiME/kdump magic) and raw images in Flat, Q35 and I440fx layouts";
    public override int SmokeIterations => 4_000;
    protected override RawLayout Layout => (RawLayout)(_layout++ % 3);

    public override IReadOnlyList<Seed> Seeds()
    {
        byte[] With(ReadOnlySpan<byte> head, int length = 0x3000)
        {
            var b = Pattern(length, head.Length);
            head.CopyTo(b);
            return b;
        }
        return
        [
            new("raw", Pattern(0x3000, 9)),
            new("kdump", With("KDUMP   "u8)),
            new("elf-magic-only", With("\u007fELF"u8)),
            new("lime-magic-only", With(BitConverter.GetBytes(LimeReader.Magic))),
            new("tiny", [1]),
            new("ascii", Encoding.ASCII.GetBytes("not a dump at all\n")),
        ];
    }

    public override IReadOnlyList<(int Offset, int Length)>? Focus(Seed seed) => [(0, Math.Min(seed.Data.Length, 64))];
}
