namespace Periscope.Memory;

/// <summary>A run of guest physical memory stored at <see cref="FileOffset"/> in a mapped file.</summary>
public readonly record struct FileSegment(ulong PhysicalStart, ulong Length, ulong FileOffset, PhysicalRangeKind Kind)
{
    public ulong PhysicalEnd => PhysicalStart + Length;
}
