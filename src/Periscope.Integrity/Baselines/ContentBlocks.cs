using System.IO.Compression;
using Periscope.Integrity.Measurement;

namespace Periscope.Integrity.Baselines;

/// <summary>
/// The page contents of a baseline (what a finding shows as the expected bytes), compressed in blocks of
/// <see cref="PagesPerBlock"/> consecutive pages of a region: one Brotli call per 4 KiB page cost about ten times the
/// page's SHA-256 and was most of a first `baseline create`; a 64 KiB block costs about half as much per byte and
/// compresses better. A block holds the present pages of its index range, in index order, and is stored only when
/// every one of them has content. Built on all cores, or on the calling thread while another thread does other work
/// (<see cref="BaselineRecorder"/> reads the guest meanwhile).
/// </summary>
public sealed class ContentBlocks
{
    public const int PagesPerBlock = 16;
    private const int PageBytes = 4096;

    private ContentBlocks(IReadOnlyList<RegionMeasurement> source, IReadOnlyList<Block> blocks)
    {
        Source = source;
        Blocks = blocks;
    }

    /// <summary>One compressed block: <paramref name="Region"/> indexes the measured regions, <paramref name="FirstIndex"/>
    /// is the page index the block starts at (a multiple of <see cref="PagesPerBlock"/>).</summary>
    internal readonly record struct Block(int Region, int FirstIndex, byte[] Data);

    /// <summary>The measurements these blocks were cut from: a store saves blocks only with these regions.</summary>
    internal IReadOnlyList<RegionMeasurement> Source { get; }

    internal IReadOnlyList<Block> Blocks { get; }

    public int Count => Blocks.Count;

    public long CompressedBytes => Blocks.Sum(b => (long)b.Data.Length);

    public static ContentBlocks Compress(IReadOnlyList<RegionMeasurement> regions, int? parallelism = null)
    {
        var spans = new List<(int Region, int First, PageMeasurement[] Pages)>();
        for (int r = 0; r < regions.Count; r++)
        {
            foreach (var group in regions[r].Pages.Where(p => p.Index >= 0).GroupBy(p => p.Index / PagesPerBlock))
            {
                var present = group.Where(p => p.Present).ToArray();
                if (present.Length == 0 || present.Any(p => p.ContentIfLoaded is not { } c || c.Length != p.Length || c.Length > PageBytes)) continue;
                spans.Add((r, group.Key * PagesPerBlock, present));
            }
        }
        var blocks = new Block[spans.Count];
        int workers = parallelism ?? Environment.ProcessorCount;
        if (workers <= 1)
        {
            // On the calling thread: BaselineRecorder compresses on its main thread while another thread reads the guest.
            var worker = new Worker();
            for (int i = 0; i < spans.Count; i++) blocks[i] = worker.Compress(spans[i]);
            return new ContentBlocks(regions, blocks);
        }
        Parallel.For(0, spans.Count, new ParallelOptions { MaxDegreeOfParallelism = workers }, () => new Worker(),
            (i, _, worker) =>
            {
                blocks[i] = worker.Compress(spans[i]);
                return worker;
            },
            _ => { });
        return new ContentBlocks(regions, blocks);
    }

    /// <summary>One compressing thread's buffers, reused for every block: a fresh 64 KiB input and output pair per block
    /// was ~48 MiB of short-lived arrays per baseline, and the collections they caused copied the page contents around.</summary>
    private sealed class Worker
    {
        private readonly byte[] _raw = new byte[PagesPerBlock * PageBytes];
        private readonly byte[] _output = new byte[BrotliEncoder.GetMaxCompressedLength(PagesPerBlock * PageBytes)];

        public Block Compress((int Region, int First, PageMeasurement[] Pages) span)
        {
            int at = 0;
            foreach (var p in span.Pages)
            {
                p.ContentIfLoaded!.CopyTo(_raw, at);
                at += p.Length;
            }
            return new Block(span.Region, span.First, BrotliFast(_raw.AsSpan(0, at), _output));
        }
    }

    private static byte[] BrotliFast(ReadOnlySpan<byte> data, byte[] output)
    {
        // Quality 0: the same Brotli format any decoder reads, and the cheapest encoder setting.
        if (!BrotliEncoder.TryCompress(data, output, out int written, quality: 0, window: 22)) throw new InvalidOperationException("Brotli compression failed");
        return output.AsSpan(0, written).ToArray();
    }

    /// <summary>The decompressed block, or null unless it is exactly <paramref name="length"/> bytes.</summary>
    internal static byte[]? Decompress(byte[] data, int length)
    {
        // One byte of room beyond the expected size tells "longer than stored" apart from "exactly as long".
        var output = new byte[length + 1];
        using var decoder = new BrotliDecoder();
        var status = decoder.Decompress(data, output, out _, out int written);
        return status == System.Buffers.OperationStatus.Done && written == length ? output[..written] : null;
    }
}
