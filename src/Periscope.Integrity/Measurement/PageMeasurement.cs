using System.IO.Hashing;
using System.Security.Cryptography;
using Periscope.Integrity.Regions;
using Periscope.X86;

namespace Periscope.Integrity.Measurement;

/// <summary>One page (or the part of it inside the region) of a measured region.</summary>
public sealed record PageMeasurement(int Index, ulong VirtualAddress, ulong? PhysicalAddress, int Length, ulong XxHash3, byte[]? Sha256, byte[]? Content)
{
    private Func<byte[]?>? _loadContent;
    private byte[]? _content = Content;

    /// <summary>A stored page whose content is produced on first use (a baseline's page contents are decompressed only
    /// for the pages a verification finds changed; a clean verify decompresses none).</summary>
    public static PageMeasurement WithLazyContent(int index, ulong virtualAddress, ulong? physicalAddress, int length, ulong xxHash3, byte[]? sha256, Func<byte[]?> loadContent) =>
        new(index, virtualAddress, physicalAddress, length, xxHash3, sha256, null) { _loadContent = loadContent };

    /// <summary>The page's bytes, when kept; produced (and checked) on first use for a lazily loaded stored page.</summary>
    public byte[]? Content
    {
        get => _content ??= _loadContent?.Invoke();
        init => _content = value;
    }

    /// <summary>The content if it is in memory, without loading it: validation that must not decompress every page.</summary>
    public byte[]? ContentIfLoaded => _content;

    /// <summary>True when the page has content that has not been loaded yet.</summary>
    public bool ContentPending => _content is null && _loadContent is not null;

    public bool Present => PhysicalAddress is not null;
}

public sealed record RegionMeasurement(MeasuredRegion Region, IReadOnlyList<PageMeasurement> Pages);

/// <summary>
/// Reads regions page by page through an address space and hashes them: XxHash3 for fast comparison, SHA-256 as
/// evidence. Unmapped pages are recorded as not present rather than failing the region.
/// </summary>
public static class RegionMeasurer
{
    private const ulong ChunkBytes = 1 << 20;
    /// <summary>Leaf and table entries one chunk's page-table walk may visit: 256 leaves plus the tables above them.</summary>
    private const long MaxLeavesPerChunk = 1024;

    public static RegionMeasurement Measure(AddressSpace space, MeasuredRegion region, bool sha256, bool keepContent)
    {
        using var hasher = sha256 ? IncrementalHash.CreateHash(HashAlgorithmName.SHA256) : null;
        return new RegionMeasurement(region, MeasureRange(space, region, region.Start, region.End, hasher, keepContent, new byte[4096]));
    }

    /// <summary>
    /// Measures many regions on all cores: regions are cut into 1 MiB chunks, each worker walks with its own address
    /// space (translation caches are per instance) and its own hasher; pages are reassembled in order.
    /// </summary>
    public static IReadOnlyList<RegionMeasurement> MeasureAll(AddressSpace kernelSpace, IReadOnlyList<MeasuredRegion> regions, bool sha256, bool keepContent, int? parallelism = null)
    {
        var chunks = new List<(int Region, ulong From, ulong To)>();
        for (int r = 0; r < regions.Count; r++)
            for (ulong from = regions[r].Start; from < regions[r].End;)
            {
                ulong to = Math.Min(regions[r].End, (from & ~(ChunkBytes - 1)) + ChunkBytes);
                chunks.Add((r, from, to));
                from = to;
            }
        var results = new List<PageMeasurement>[chunks.Count];
        Parallel.For(0, chunks.Count, new ParallelOptions { MaxDegreeOfParallelism = parallelism ?? Environment.ProcessorCount },
            () => (Space: new AddressSpace(kernelSpace.Physical, kernelSpace.Root, kernelSpace.Mode),
                   Hasher: sha256 ? IncrementalHash.CreateHash(HashAlgorithmName.SHA256) : null, Buffer: new byte[4096]),
            (i, _, worker) =>
            {
                var (region, from, to) = chunks[i];
                results[i] = MeasureRange(worker.Space, regions[region], from, to, worker.Hasher, keepContent, worker.Buffer);
                return worker;
            },
            worker => worker.Hasher?.Dispose());
        var pages = regions.Select(_ => new List<PageMeasurement>()).ToArray();
        for (int i = 0; i < chunks.Count; i++) pages[chunks[i].Region].AddRange(results[i]);
        return regions.Select((r, i) => new RegionMeasurement(r, pages[i])).ToArray();
    }

    private static List<PageMeasurement> MeasureRange(AddressSpace space, MeasuredRegion region, ulong from, ulong to, IncrementalHash? hasher, bool keepContent, byte[] buffer)
    {
        var pages = new List<PageMeasurement>();
        ulong firstPage = region.Start & ~0xfffUL;
        // Enumerate, don't probe: which pages of the range are mapped comes from one page-table walk over it, whose
        // cost is bounded by the tables that exist (a chunk is at most 256 pages, plus the tables above them).
        var mapped = new List<(ulong Start, ulong End)>();
        foreach (var m in space.EnumerateMappings(from & ~0xfffUL, to, maxLeaves: MaxLeavesPerChunk)) mapped.Add((m.VirtualAddress, m.VirtualEnd));
        int nextMapped = 0;
        ulong va = from;
        while (va < to)
        {
            ulong pageEnd = (va & ~0xfffUL) + 4096;
            int length = (int)(Math.Min(pageEnd, to) - va);
            int index = (int)(((va & ~0xfffUL) - firstPage) / 4096);
            while (nextMapped < mapped.Count && mapped[nextMapped].End <= va) nextMapped++;
            if (nextMapped >= mapped.Count || mapped[nextMapped].Start > va)
            {
                pages.Add(new PageMeasurement(index, va, null, length, 0, null, null));
                va += (ulong)length;
                continue;
            }
            // Hash straight out of the mapping when possible: no copy on the hot path.
            ReadOnlySpan<byte> span = space.GetSpan(va, length);
            bool ok = !span.IsEmpty;
            if (!ok && space.Read(va, buffer.AsSpan(0, length)) == length) { span = buffer.AsSpan(0, length); ok = true; }
            if (ok && space.TryTranslate(va, out ulong pa))
                pages.Add(new PageMeasurement(index, va, pa, length, XxHash3.HashToUInt64(span),
                    hasher is null ? null : PageHash.Sha256(hasher, span), keepContent ? span.ToArray() : null));
            else pages.Add(new PageMeasurement(index, va, null, length, 0, null, null));
            va += (ulong)length;
        }
        return pages;
    }
}

/// <summary>SHA-256 of one page through a reused hasher: per-call setup of the one-shot API costs ~15% on 4 KiB pages.</summary>
public static class PageHash
{
    public static byte[] Sha256(IncrementalHash hasher, ReadOnlySpan<byte> data)
    {
        hasher.AppendData(data);
        return hasher.GetHashAndReset();
    }
}
