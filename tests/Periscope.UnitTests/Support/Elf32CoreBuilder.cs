using System.Buffers.Binary;

namespace Periscope.UnitTests.Support;

/// <summary>Builds ELF32 cores as QEMU writes them for an i386 guest: EM_386, PT_NOTE first, then PT_LOADs.</summary>
public sealed class Elf32CoreBuilder
{
    private readonly List<(uint Paddr, byte[] Data)> _loads = [];
    private readonly List<(string Name, uint Type, byte[] Desc)> _notes = [];
    public ushort Machine { get; set; } = 3;
    public ushort ProgramHeaderSize { get; set; } = 32;
    /// <summary>Lets tests corrupt the file after layout.</summary>
    public Action<byte[]>? Corrupt { get; set; }

    public Elf32CoreBuilder Load(uint paddr, byte[] data) { _loads.Add((paddr, data)); return this; }
    public Elf32CoreBuilder Note(string name, uint type, byte[] desc) { _notes.Add((name, type, desc)); return this; }

    /// <summary>An i386 elf_prstatus (144 bytes) with pr_reg at +72: eip is word 12, esp word 15, fs word 9.</summary>
    public static byte[] I386PrStatus(uint eip, uint esp, ushort fs = 0xd8)
    {
        var d = new byte[144];
        BinaryPrimitives.WriteUInt32LittleEndian(d.AsSpan(72 + 12 * 4), eip);
        BinaryPrimitives.WriteUInt32LittleEndian(d.AsSpan(72 + 15 * 4), esp);
        BinaryPrimitives.WriteUInt32LittleEndian(d.AsSpan(72 + 9 * 4), fs);
        return d;
    }

    public byte[] Build()
    {
        var notes = ElfNotes.Serialize(_notes);
        int phnum = _loads.Count + (_notes.Count > 0 ? 1 : 0);
        const int phoff = 52;
        int dataStart = phoff + phnum * 32;
        var file = new MemoryStream();
        var header = new byte[52];
        "\u007fELF"u8.CopyTo(header);
        header[4] = 1; header[5] = 1; header[6] = 1;
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(16), 4);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(18), Machine);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(20), 1);
        BinaryPrimitives.WriteUInt32LittleEndian(header.AsSpan(28), phoff);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(40), 52);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(42), ProgramHeaderSize);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(44), (ushort)phnum);
        BinaryPrimitives.WriteUInt16LittleEndian(header.AsSpan(46), 40);
        file.Write(header);
        var phdrs = new byte[phnum * 32];
        var blobs = new List<byte[]>();
        uint offset = (uint)dataStart;
        int idx = 0;
        if (_notes.Count > 0)
        {
            Phdr(phdrs.AsSpan(0, 32), 4, offset, 0, (uint)notes.Length);
            blobs.Add(notes);
            offset += (uint)notes.Length;
            idx++;
        }
        foreach (var (paddr, data) in _loads)
        {
            Phdr(phdrs.AsSpan(idx++ * 32, 32), 1, offset, paddr, (uint)data.Length);
            blobs.Add(data);
            offset += (uint)data.Length;
        }
        file.Write(phdrs);
        foreach (var b in blobs) file.Write(b);
        var bytes = file.ToArray();
        Corrupt?.Invoke(bytes);
        return bytes;
    }

    private static void Phdr(Span<byte> p, uint type, uint offset, uint paddr, uint size)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(p, type);
        BinaryPrimitives.WriteUInt32LittleEndian(p[4..], offset);
        BinaryPrimitives.WriteUInt32LittleEndian(p[8..], paddr == 0 && type == 4 ? 0 : 0xC0000000u + paddr);
        BinaryPrimitives.WriteUInt32LittleEndian(p[12..], paddr);
        BinaryPrimitives.WriteUInt32LittleEndian(p[16..], size);
        BinaryPrimitives.WriteUInt32LittleEndian(p[20..], size);
    }
}
