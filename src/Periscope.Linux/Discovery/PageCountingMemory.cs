using Periscope.Memory;

namespace Periscope.Linux.Discovery;

/// <summary>Counts the distinct 4 KiB pages discovery reads, so `info` can say what finding the kernel cost. Only the
/// bounded methods read through it, so the set stays small (bounded by their caps).</summary>
internal sealed class PageCountingMemory(IPhysicalMemory inner) : IPhysicalMemory
{
    private readonly HashSet<ulong> _pages = [];

    public PhysicalMemoryMap Map => inner.Map;
    public int PagesRead => _pages.Count;

    public int Read(ulong address, Span<byte> buffer)
    {
        int n = inner.Read(address, buffer);
        if (n > 0)
        {
            for (ulong page = address >> 12, last = (address + (ulong)n - 1) >> 12; page <= last; page++) _pages.Add(page);
        }
        return n;
    }
}
