using System.Buffers.Binary;

namespace Periscope.Memory;

public static class PhysicalMemoryExtensions
{
    public static bool TryReadUInt64(this IPhysicalMemory memory, ulong address, out ulong value)
    {
        if (memory is MappedPhysicalMemory mapped) return mapped.TryReadUInt64(address, out value);
        Span<byte> b = stackalloc byte[8];
        if (memory.Read(address, b) != 8) { value = 0; return false; }
        value = BinaryPrimitives.ReadUInt64LittleEndian(b);
        return true;
    }

    public static bool TryReadUInt32(this IPhysicalMemory memory, ulong address, out uint value)
    {
        Span<byte> b = stackalloc byte[4];
        if (memory.Read(address, b) != 4) { value = 0; return false; }
        value = BinaryPrimitives.ReadUInt32LittleEndian(b);
        return true;
    }
}
