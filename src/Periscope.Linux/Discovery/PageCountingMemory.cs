using Periscope.Memory;

namespace Periscope.Linux.Discovery;

/// <summary>Counts the distinct 4 KiB pages discovery reads, so `info` can say what finding the kernel cost. Only the
/// bounded methods read through it, so the set stays small; on a hostile dump that makes the full scan's verification
/// visit many candidate tables it stops growing at <paramref name="maxTracked"/> (IntrospectionLimits.MaxDiscoveryPagesCounted)
/// and the count is a lower bound.</summary>
internal sealed class PageCountingMemory(IPhysicalMemory inner, int maxTracked) : IPhysicalMemory
{
    private readonly HashSet<ulong> _pages = [];

    public PhysicalMemoryMap Map => inner.Map;
    public int PagesRead => _pages.Count;

    public int Read(ulong address, Span<byte> buffer)
    {
        int n = inner.Read(address, buffer);
        if (n > 0)
        {
            for (ulong page = address >> 12, last = (address + (ulong)n - 1) >> 12; page <= last && _pages.Count < maxTracked; page++) _pages.Add(page);
        }
        return n;
    }
}
