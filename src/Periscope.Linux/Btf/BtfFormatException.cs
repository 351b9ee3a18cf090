using System.Buffers.Binary;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Periscope.Linux.Btf;

/// <summary>
/// A BTF blob is malformed: truncated, out of bounds, an unknown kind, a cycle or a chain longer than the limits allow.
/// <see cref="Offset"/> is relative to the start of the blob given to <see cref="BtfTypes.Parse(ReadOnlySpan{byte}, Periscope.Memory.IntrospectionLimits)"/>;
/// the message states that offset and what was expected there.
/// </summary>
public sealed class BtfFormatException : Exception
{
    public BtfFormatException(long offset, string message)
        : base($"BTF at offset 0x{offset:x}: {message}")
    {
        Offset = offset;
    }

    /// <summary>Byte offset in the blob where the problem was found.</summary>
    public long Offset { get; }
}

/// <summary>Throw helpers kept out of line so the readers that call them stay small and inlinable.</summary>
internal static class BtfThrow
{
    [DoesNotReturn]
    public static void Format(long offset, string what) => throw new BtfFormatException(offset, what);

    [DoesNotReturn]
    public static void Truncated(long offset, int needed, long available) =>
        throw new BtfFormatException(offset, $"expected {needed} readable bytes, found {Math.Max(0, available)}");
}

/// <summary>Little-endian reads with exactly one bounds check each.</summary>
internal static class BtfRead
{
    /// <summary>Reads a u32 at <paramref name="offset"/> in <paramref name="span"/>; <paramref name="blobBase"/> is the span's offset in the blob, for messages.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint U32(ReadOnlySpan<byte> span, int offset, long blobBase)
    {
        if ((ulong)(uint)offset + 4 > (uint)span.Length)
            BtfThrow.Truncated(blobBase + offset, 4, span.Length - (long)offset);
        uint v = Unsafe.ReadUnaligned<uint>(ref Unsafe.Add(ref MemoryMarshal.GetReference(span), (nint)(uint)offset));
        return BitConverter.IsLittleEndian ? v : BinaryPrimitives.ReverseEndianness(v);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort U16(ReadOnlySpan<byte> span, int offset, long blobBase)
    {
        if ((ulong)(uint)offset + 2 > (uint)span.Length)
            BtfThrow.Truncated(blobBase + offset, 2, span.Length - (long)offset);
        ushort v = Unsafe.ReadUnaligned<ushort>(ref Unsafe.Add(ref MemoryMarshal.GetReference(span), (nint)(uint)offset));
        return BitConverter.IsLittleEndian ? v : BinaryPrimitives.ReverseEndianness(v);
    }
}
