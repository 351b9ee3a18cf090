using System.IO.Hashing;
using System.Security.Cryptography;
using Periscope.Integrity.Regions;
using Periscope.X86;

namespace Periscope.Integrity.Measurement;

/// <summary>One page (or the part of it inside the region) of a measured region.</summary>
public sealed record PageMeasurement(int Index, ulong VirtualAddress, ulong? PhysicalAddress, int Length, ulong XxHash3, byte[]? Sha256, byte[]? Content)
{
    public bool Present => PhysicalAddress is not null;
}

public sealed record RegionMeasurement(MeasuredRegion Region, IReadOnlyList<PageMeasurement> Pages);

/// <summary>
/// Reads regions page by page through an address space and hashes them: XxHash3 for fast comparison, SHA-256 as
/// evidence. Unmapped pages are recorded as not present rather than failing the region.
/// </summary>
public static class RegionMeasurer
{
    public static RegionMeasurement Measure(AddressSpace space, MeasuredRegion region, bool sha256, bool keepContent)
    {
        var pages = new List<PageMeasurement>();
        var buffer = new byte[4096];
        ulong va = region.Start;
        int index = 0;
        while (va < region.End)
        {
            ulong pageEnd = (va & ~0xfffUL) + 4096;
            int length = (int)(Math.Min(pageEnd, region.End) - va);
            var span = buffer.AsSpan(0, length);
            if (space.TryTranslate(va, out ulong pa) && space.Read(va, span) == length)
            {
                pages.Add(new PageMeasurement(index, va, pa, length, XxHash3.HashToUInt64(span),
                    sha256 ? SHA256.HashData(span) : null, keepContent ? span.ToArray() : null));
            }
            else pages.Add(new PageMeasurement(index, va, null, length, 0, null, null));
            va += (ulong)length;
            index++;
        }
        return new RegionMeasurement(region, pages);
    }
}
