namespace Periscope.Memory;

public enum PhysicalRangeKind
{
    /// <summary>Guest RAM: scans and statistics may use it.</summary>
    Ram,
    /// <summary>Device memory captured by the dump (VGA VRAM, BIOS ROM): readable but not RAM.</summary>
    Device,
}

public readonly record struct PhysicalRange(ulong Start, ulong Length, PhysicalRangeKind Kind)
{
    public ulong End => Start + Length;
    public bool Contains(ulong address) => address - Start < Length;
}

/// <summary>Sorted, non-overlapping ranges of guest physical address space that a source backs.</summary>
public sealed class PhysicalMemoryMap
{
    private readonly PhysicalRange[] _ranges;

    public PhysicalMemoryMap(IEnumerable<PhysicalRange> ranges)
    {
        _ranges = ranges.OrderBy(r => r.Start).ToArray();
        for (int i = 1; i < _ranges.Length; i++)
        {
            if (_ranges[i].Start < _ranges[i - 1].End)
                throw new ArgumentException($"physical ranges overlap at 0x{_ranges[i].Start:x}");
        }
    }

    public IReadOnlyList<PhysicalRange> Ranges => _ranges;

    public IEnumerable<PhysicalRange> Ram => _ranges.Where(r => r.Kind == PhysicalRangeKind.Ram);

    /// <summary>One past the highest RAM byte; a page-table entry pointing above it is not sane.</summary>
    public ulong RamEnd => _ranges.Where(r => r.Kind == PhysicalRangeKind.Ram).Select(r => r.End).DefaultIfEmpty(0UL).Max();

    public ulong RamBytes => _ranges.Where(r => r.Kind == PhysicalRangeKind.Ram).Aggregate(0UL, (s, r) => s + r.Length);

    public bool IsRam(ulong address)
    {
        int i = Find(address);
        return i >= 0 && _ranges[i].Kind == PhysicalRangeKind.Ram;
    }

    /// <summary>Index of the range holding <paramref name="address"/>, or -1.</summary>
    public int Find(ulong address)
    {
        int lo = 0, hi = _ranges.Length - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            var r = _ranges[mid];
            if (address < r.Start) hi = mid - 1;
            else if (address >= r.End) lo = mid + 1;
            else return mid;
        }
        return -1;
    }
}
