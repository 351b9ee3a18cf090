using System.Buffers.Binary;

namespace Periscope.Memory;

public static class PhysicalMemoryExtensions
{
    /// <summary>
    /// <see cref="IPhysicalMemory.Read"/> for a source whose bytes are reachable through pointers: copies contiguous runs
    /// until the buffer is full or an unbacked address is reached; returns the bytes copied.
    /// </summary>
    public static unsafe int ReadThroughPointers(this IDirectPhysicalMemory memory, ulong address, Span<byte> buffer)
    {
        int done = 0;
        while (done < buffer.Length)
        {
            byte* p = memory.GetPointer(address + (ulong)done, out ulong available);
            if (p == null) break;
            int n = (int)Math.Min(available, (ulong)(buffer.Length - done));
            new ReadOnlySpan<byte>(p, n).CopyTo(buffer[done..]);
            done += n;
        }
        return done;
    }

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
