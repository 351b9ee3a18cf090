using System.Buffers.Binary;
using System.Runtime.CompilerServices;

namespace Periscope.Linux.Kallsyms;

/// <summary>
/// Bounded little-endian reads from the kernel image. Offsets are <see cref="long"/> so sums of untrusted
/// 32-bit values cannot wrap; every read is one range check.
/// </summary>
internal static class ImageBytes
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool Fits(ReadOnlySpan<byte> image, long offset, long length) =>
        offset >= 0 && length >= 0 && offset <= image.Length - length;

    /// <summary>u32 at an offset the caller has range-checked.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint U32(ReadOnlySpan<byte> image, long offset) =>
        BinaryPrimitives.ReadUInt32LittleEndian(image.Slice((int)offset, 4));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort U16(ReadOnlySpan<byte> image, long offset) =>
        BinaryPrimitives.ReadUInt16LittleEndian(image.Slice((int)offset, 2));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong U64(ReadOnlySpan<byte> image, long offset) =>
        BinaryPrimitives.ReadUInt64LittleEndian(image.Slice((int)offset, 8));

    public static bool TryU32(ReadOnlySpan<byte> image, long offset, out uint value)
    {
        if (Fits(image, offset, 4)) { value = U32(image, offset); return true; }
        value = 0;
        return false;
    }

    public static bool TryU64(ReadOnlySpan<byte> image, long offset, out ulong value)
    {
        if (Fits(image, offset, 8)) { value = U64(image, offset); return true; }
        value = 0;
        return false;
    }

    /// <summary>Rounds an image offset up so that its virtual address is a multiple of <paramref name="alignment"/>
    /// (a power of two): the tables are aligned by virtual address (<c>.balign 8</c>).</summary>
    public static long AlignUp(ulong imageVa, long offset, int alignment)
    {
        ulong mask = (ulong)alignment - 1;
        return offset + (long)((ulong)alignment - ((imageVa + (ulong)offset) & mask) & mask);
    }

    /// <summary>Rounds an image offset down to a virtual-address multiple of <paramref name="alignment"/>.</summary>
    public static long AlignDown(ulong imageVa, long offset, int alignment) =>
        offset - (long)((imageVa + (ulong)offset) & ((ulong)alignment - 1));

    public static bool AllZero(ReadOnlySpan<byte> image, long offset, long length) =>
        Fits(image, offset, length) && !image.Slice((int)offset, (int)length).ContainsAnyExcept((byte)0);
}
