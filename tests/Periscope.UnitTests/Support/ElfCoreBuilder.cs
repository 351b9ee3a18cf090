using System.Buffers.Binary;

namespace Periscope.UnitTests.Support;

/// <summary>Builds x86-64 ELF cores in memory: PT_LOADs for physical ranges and PT_NOTE with CORE/QEMU notes.</summary>
public sealed class ElfCoreBuilder
{
    private readonly List<(ulong Paddr, byte[] Data)> _loads = [];
    private readonly List<(string Name, uint Type, byte[] Desc)> _notes = [];
    public ushort Machine { get; set; } = 62;
    public ushort Type { get; set; } = 4;
    public bool UsePnXNum { get; set; }
    /// <summary>Lets tests corrupt fields after layout: (phdr index, file offset of that phdr).</summary>
    public Action<byte[], int>? Corrupt { get; set; }

    public ElfCoreBuilder Load(ulong paddr, byte[] data) { _loads.Add((paddr, data)); return this; }
    public ElfCoreBuilder Note(string name, uint type, byte[] desc) { _notes.Add((name, type, desc)); return this; }

    public static byte[] QemuCpuState(ulong cr3, ulong cr4, ulong rip = 0xffffffff81000000, ulong? kernelGsBase = 0xffff888007c00000, uint? sizeOverride = null)
    {
        int size = kernelGsBase is null ? 432 : 440;
        var d = new byte[size];
        BinaryPrimitives.WriteUInt32LittleEndian(d, 1);
        BinaryPrimitives.WriteUInt32LittleEndian(d.AsSpan(4), sizeOverride ?? (uint)size);
        BinaryPrimitives.WriteUInt64LittleEndian(d.AsSpan(8 + 16 * 8), rip);
        BinaryPrimitives.WriteUInt64LittleEndian(d.AsSpan(392 + 3 * 8), cr3);
        BinaryPrimitives.WriteUInt64LittleEndian(d.AsSpan(392 + 4 * 8), cr4);
        if (kernelGsBase is { } k) BinaryPrimitives.WriteUInt64LittleEndian(d.AsSpan(432), k);
        return d;
    }

    public static byte[] PrStatus(ulong rip, ulong rsp)
    {
        var d = new byte[336];
        BinaryPrimitives.WriteUInt64LittleEndian(d.AsSpan(112 + 16 * 8), rip);
        BinaryPrimitives.WriteUInt64LittleEndian(d.AsSpan(112 + 19 * 8), rsp);
        return d;
    }

    public byte[] Build()
    {
        var notes = ElfNotes.Serialize(_notes);
        int phnum = _loads.Count + (_notes.Count > 0 ? 1 : 0);
        int phoff = 64;
        int shoff = UsePnXNum ? phoff + phnum * 56 : 0;
        int dataStart = phoff + phnum * 56 + (UsePnXNum ? 64 : 0);
        var file = new MemoryStream();
        file.SetLength(dataStart);
        var header = new byte[64];
        "\u007fELF"u8.CopyTo(header);
        header[4] = 2; header[5] = 1; header[6] = 1;
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(16), Type);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(18), Machine);
        BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(32), (ulong)phoff);
        BinaryPrimitives.WriteUInt64LittleEndian(header.AsSpan(40), (ulong)shoff);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(52), 64);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(54), 56);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(56), UsePnXNum ? (ushort)0xffff : (ushort)phnum);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(58), 64);
        var bytes = new List<byte[]>();
        var phdrs = new byte[phnum * 56];
        long offset = dataStart;
        int idx = 0;
        if (_notes.Count > 0)
        {
            WritePhdr(phdrs.AsSpan(0, 56), 4, (ulong)offset, 0, (ulong)notes.Length);
            bytes.Add(notes);
            offset += notes.Length;
            idx++;
        }
        foreach (var (paddr, data) in _loads)
        {
            WritePhdr(phdrs.AsSpan(idx * 56, 56), 1, (ulong)offset, paddr, (ulong)data.Length);
            bytes.Add(data);
            offset += data.Length;
            idx++;
        }
        var all = new byte[offset];
        header.CopyTo(all, 0);
        phdrs.CopyTo(all, phoff);
        if (UsePnXNum) BinaryPrimitives.WriteUInt32LittleEndian(all.AsSpan(shoff + 44), (uint)phnum);
        long pos = dataStart;
        foreach (var b in bytes) { b.CopyTo(all, pos); pos += b.Length; }
        for (int i = 0; i < phnum; i++) Corrupt?.Invoke(all, phoff + i * 56);
        return all;
    }

    private static void WritePhdr(Span<byte> p, uint type, ulong offset, ulong paddr, ulong size)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(p, type);
        BinaryPrimitives.WriteUInt64LittleEndian(p[8..], offset);
        BinaryPrimitives.WriteUInt64LittleEndian(p[24..], paddr);
        BinaryPrimitives.WriteUInt64LittleEndian(p[32..], size);
        BinaryPrimitives.WriteUInt64LittleEndian(p[40..], size);
    }
}
