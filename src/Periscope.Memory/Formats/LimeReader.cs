using System.Buffers.Binary;
using Microsoft.Win32.SafeHandles;

namespace Periscope.Memory.Formats;

/// <summary>LiME images: a sequence of 32-byte range headers {magic "EMiL", version 1, start, end inclusive, reserved} each followed by its bytes.</summary>
public static class LimeReader
{
    public const uint Magic = 0x4C694D45;
    private const int HeaderSize = 32;

    public static bool IsLime(ReadOnlySpan<byte> head) => head.Length >= 4 && BinaryPrimitives.ReadUInt32LittleEndian(head) == Magic;

    public static IReadOnlyList<FileSegment> Read(string path, SafeFileHandle file, IntrospectionLimits limits)
    {
        long length = RandomAccess.GetLength(file);
        var segments = new List<FileSegment>();
        Span<byte> h = stackalloc byte[HeaderSize];
        ulong pos = 0;
        while (pos < (ulong)length)
        {
            if (segments.Count >= limits.MaxLimeRanges) ThrowHelper.Format(path, pos, $"more than {limits.MaxLimeRanges} LiME ranges");
            if (RandomAccess.Read(file, h, (long)pos) != HeaderSize) ThrowHelper.Format(path, pos, "file ends inside a LiME range header");
            uint magic = BinaryPrimitives.ReadUInt32LittleEndian(h);
            uint version = BinaryPrimitives.ReadUInt32LittleEndian(h[4..]);
            ulong start = BinaryPrimitives.ReadUInt64LittleEndian(h[8..]);
            ulong end = BinaryPrimitives.ReadUInt64LittleEndian(h[16..]);
            if (magic != Magic) ThrowHelper.Format(path, pos, $"LiME magic 0x{magic:x8} expected 0x{Magic:x8}");
            if (version != 1) ThrowHelper.Format(path, pos + 4, $"LiME version {version}, expected 1");
            if (end < start) ThrowHelper.Format(path, pos + 8, $"LiME range end 0x{end:x} is below start 0x{start:x}");
            ulong size = end - start + 1;
            ulong data = pos + HeaderSize;
            if (size == 0 || size > (ulong)length - data)
                ThrowHelper.Format(path, pos, $"LiME range 0x{start:x}-0x{end:x} needs 0x{size:x} bytes but the file has 0x{(ulong)length - data:x} left");
            segments.Add(new FileSegment(start, size, data, PhysicalRangeKind.Ram));
            pos = data + size;
        }
        return segments;
    }
}
