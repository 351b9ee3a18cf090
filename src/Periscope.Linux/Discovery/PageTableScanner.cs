using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using Periscope.Memory;
using Periscope.X86;

namespace Periscope.Linux.Discovery;

/// <summary>
/// Finds top-level page tables (PML4/PML5) in physical memory without registers. Linux copies the kernel half of
/// the top-level table into every new PGD, so all live PGDs share byte-identical entries 256–511; grouping candidates
/// by those bytes separates the kernel PGDs from PTI user copies and stray lower-level tables.
/// </summary>
public static unsafe class PageTableScanner
{
    public sealed record Group(IReadOnlyList<ulong> Tables, int PresentKernelEntries);

    public static IReadOnlyList<Group> FindTopLevelGroups(IPhysicalMemory memory) => FindTopLevelGroups(memory, out _);

    /// <summary>Reads one qword of every RAM page (<paramref name="pagesScanned"/> of them): cost grows with RAM size, so
    /// <see cref="KernelLocator"/> uses this only when CR3, VMCOREINFO and the bounded search all failed.</summary>
    public static IReadOnlyList<Group> FindTopLevelGroups(IPhysicalMemory memory, out long pagesScanned)
    {
        ulong ramEnd = memory.Map.RamEnd;
        var candidates = new List<ulong>();
        pagesScanned = 0;
        // Holes of a sparse file read as zeros and hold no page tables: scan only what the file stores.
        var ram = memory is IAllocatedPhysicalMemory allocated ? allocated.AllocatedRam : memory.Map.Ram;
        var page = new byte[4096];
        foreach (var range in ram)
        {
            ulong first = (range.Start + 0xfff) & ~0xfffUL;
            if (first >= range.End) continue;
            if (memory is IDirectPhysicalMemory direct)
            {
                byte* p = direct.GetPointer(first, out ulong available);
                if (p == null) continue;
                ulong pages = Math.Min(available, range.End - first) / 4096;
                pagesScanned += (long)pages;
                for (ulong i = 0; i < pages; i++)
                {
                    byte* pg = p + i * 4096;
                    // Cheap pre-filter: slot 511 maps kernel image/modules/fixmap in every Linux PGD.
                    ulong e511 = Unsafe.ReadUnaligned<ulong>(pg + 511 * 8);
                    if (!IsSaneUpperEntry(e511, ramEnd)) continue;
                    if (IsTopLevelTable(new ReadOnlySpan<byte>(pg, 4096), ramEnd)) candidates.Add(first + i * 4096);
                }
            }
            else
            {
                for (ulong pa = first; pa + 4096 <= range.End; pa += 4096)
                {
                    pagesScanned++;
                    if (!memory.TryReadUInt64(pa + 511 * 8, out ulong e511) || !IsSaneUpperEntry(e511, ramEnd)) continue;
                    if (memory.Read(pa, page) == 4096 && IsTopLevelTable(page, ramEnd)) candidates.Add(pa);
                }
            }
        }

        var groups = new Dictionary<KernelHalfKey, List<ulong>>();
        foreach (ulong pa in candidates)
        {
            var half = new byte[256 * 8];
            if (memory.Read(pa + 256 * 8, half) != half.Length) continue;
            var key = new KernelHalfKey(half);
            if (!groups.TryGetValue(key, out var list)) groups[key] = list = [];
            list.Add(pa);
        }
        return groups
            .Select(g => new Group(g.Value, CountPresent(g.Key.Bytes)))
            .OrderByDescending(g => g.Tables.Count > 1)
            .ThenByDescending(g => g.PresentKernelEntries)
            .ThenByDescending(g => g.Tables.Count)
            .ToArray();
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static bool IsSaneUpperEntry(ulong e, ulong ramEnd) =>
        (e & PageTableEntry.Present) != 0 && (e & PageTableEntry.HighBits) == 0 && (e & PageTableEntry.LargePage) == 0
        && (e & PageTableEntry.AddressMask) < ramEnd;

    /// <summary>Every entry is 0 or a sane upper-level entry, and at least two kernel-half entries are present.</summary>
    public static bool IsTopLevelTable(ReadOnlySpan<byte> page, ulong ramEnd)
    {
        if (page.Length < 4096) return false;
        int kernelPresent = 0;
        for (int i = 0; i < 512; i++)
        {
            ulong e = BinaryPrimitives.ReadUInt64LittleEndian(page.Slice(i * 8, 8));
            if (e == 0) continue;
            if (!IsSaneUpperEntry(e, ramEnd)) return false;
            if (i >= 256) kernelPresent++;
        }
        return kernelPresent >= 2;
    }

    private static int CountPresent(byte[] kernelHalf)
    {
        int n = 0;
        for (int i = 0; i < kernelHalf.Length; i += 8) if ((kernelHalf[i] & 1) != 0) n++;
        return n;
    }

    private sealed class KernelHalfKey(byte[] bytes) : IEquatable<KernelHalfKey>
    {
        public byte[] Bytes { get; } = bytes;
        private readonly int _hash = ComputeHash(bytes);
        private static int ComputeHash(byte[] b) { var h = new HashCode(); h.AddBytes(b); return h.ToHashCode(); }
        public bool Equals(KernelHalfKey? other) => other is not null && Bytes.AsSpan().SequenceEqual(other.Bytes);
        public override bool Equals(object? obj) => Equals(obj as KernelHalfKey);
        public override int GetHashCode() => _hash;
    }
}
