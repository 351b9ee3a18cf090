using System.Buffers.Binary;
using System.Security.Cryptography;

namespace Periscope.Integrity.ProcessCode;

/// <summary>
/// Expected per-page hashes of an executable or shared library, computed from the file itself: each page of an
/// executable PT_LOAD segment is the file's bytes at that page-aligned offset (zero-filled past the end of the file),
/// which is what a private file mapping shows before anyone writes to it.
/// </summary>
public static class ElfCodePages
{
    private const uint PtLoad = 1, PfX = 1;

    /// <summary>(file offset, SHA-256) per code page of a file's bytes; empty for files that are not x86-64 ELF.</summary>
    public static IReadOnlyList<(ulong Offset, byte[] Sha256)> Read(byte[] bytes)
    {
        var result = new List<(ulong, byte[])>();
        if (bytes.Length < 64 || !bytes.AsSpan(0, 4).SequenceEqual("\u007fELF"u8) || bytes[4] != 2 || bytes[5] != 1) return result;
        ulong phoff = BinaryPrimitives.ReadUInt64LittleEndian(bytes.AsSpan(32));
        int phentsize = BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(54));
        int phnum = BinaryPrimitives.ReadUInt16LittleEndian(bytes.AsSpan(56));
        if (phentsize < 56 || phoff > (ulong)bytes.Length || (ulong)phnum * (ulong)phentsize > (ulong)bytes.Length - phoff) return result;
        var seen = new HashSet<ulong>();
        var page = new byte[4096];
        for (int i = 0; i < phnum; i++)
        {
            var ph = bytes.AsSpan((int)phoff + i * phentsize, 56);
            if (BinaryPrimitives.ReadUInt32LittleEndian(ph) != PtLoad || (BinaryPrimitives.ReadUInt32LittleEndian(ph[4..]) & PfX) == 0) continue;
            ulong offset = BinaryPrimitives.ReadUInt64LittleEndian(ph[8..]);
            ulong filesz = BinaryPrimitives.ReadUInt64LittleEndian(ph[32..]);
            for (ulong p = offset & ~0xfffUL; p < offset + filesz && p < (ulong)bytes.Length; p += 4096)
            {
                if (!seen.Add(p)) continue;
                Array.Clear(page);
                int n = (int)Math.Min(4096, (ulong)bytes.Length - p);
                bytes.AsSpan((int)p, n).CopyTo(page);
                result.Add((p, SHA256.HashData(page)));
            }
        }
        return result;
    }
}
