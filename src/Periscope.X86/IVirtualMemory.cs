namespace Periscope.X86;

/// <summary>Read-only access to a virtual address space.</summary>
public interface IVirtualMemory
{
    int PointerSize { get; }
    /// <summary>Copies bytes starting at <paramref name="address"/>; returns how many were read before the first unmapped byte.</summary>
    int Read(ulong address, Span<byte> buffer);
    bool TryReadUInt64(ulong address, out ulong value);
}
