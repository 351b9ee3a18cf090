using System.Runtime.CompilerServices;
using Periscope.Memory;

namespace Periscope.X86;

/// <summary>
/// One x86-64 address space (a page-table root) over guest physical memory: translation with a small software TLB,
/// virtual reads, and enumeration of mappings. Instances are cheap and not thread-safe (the TLB is per instance);
/// call <see cref="FlushCache"/> before re-reading a live guest whose page tables may have changed.
/// </summary>
public sealed partial class AddressSpace : IVirtualMemory
{
    private readonly IPhysicalMemory _memory;
    private readonly MappedPhysicalMemory? _mapped;
    private readonly ulong _ramEnd;
    // Allocated on the first translation it would hold: a sweep opens one address space per process (2,000 on a big
    // guest) and most of them only walk tables, so an eager 28 KiB cache each was most of the sweep's allocations.
    private TranslationCache? _cache;

    public AddressSpace(IPhysicalMemory memory, ulong rootPhysicalAddress, PagingMode mode)
    {
        _memory = memory;
        _mapped = memory as MappedPhysicalMemory ?? (memory as Periscope.Memory.Formats.MemoryImage)?.Memory;
        Root = mode == PagingMode.Pae32 ? rootPhysicalAddress & LegacyPaging.PaeRootMask : rootPhysicalAddress & PageTableEntry.AddressMask;
        Mode = mode;
        _ramEnd = memory.Map.Ranges.Count == 0 ? 0 : memory.Map.Ranges[^1].End;
    }

    public IPhysicalMemory Physical => _memory;
    public ulong Root { get; }
    public PagingMode Mode { get; }
    int IVirtualMemory.PointerSize => Mode.PointerSize();

    public void FlushCache() => _cache?.Clear();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool ReadEntry(ulong address, out ulong value) =>
        _mapped is not null ? _mapped.TryReadUInt64(address, out value) : _memory.TryReadUInt64(address, out value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryTranslate(ulong va, out ulong pa)
    {
        if (_cache is { } cache && cache.TryLookup(va, out pa, out _, out _)) return true;
        bool ok = TranslateWithoutCache(va, out var t);
        pa = t.PhysicalAddress;
        return ok;
    }

    public bool TryTranslate(ulong va, out Translation translation)
    {
        if (_cache is { } cache && cache.TryLookup(va, out ulong pa, out ulong size, out PageFlags flags))
        {
            translation = new Translation(pa, size, flags);
            return true;
        }
        return TranslateWithoutCache(va, out translation);
    }

    /// <summary>A full page walk (the result is then cached). Public for benchmarks and tests of the walk itself.</summary>
    public bool TranslateWithoutCache(ulong va, out Translation translation)
    {
        translation = default;
        if (Mode.Is32Bit()) return TranslateLegacy(va, out translation);
        if (!Mode.IsCanonical(va)) return false;
        ulong table = Root;
        int shift = Mode.TopLevelShift();
        bool writable = true, user = true, nx = false;
        while (true)
        {
            ulong index = (va >> shift) & 511;
            if (!ReadEntry(table + index * 8, out ulong e) || (e & PageTableEntry.Present) == 0) return false;
            writable &= (e & PageTableEntry.Writable) != 0;
            user &= (e & PageTableEntry.User) != 0;
            nx |= (e & PageTableEntry.NoExecute) != 0;
            bool leaf = shift == 12 || ((shift == 21 || shift == 30) && (e & PageTableEntry.LargePage) != 0);
            if (leaf)
            {
                ulong size = 1UL << shift;
                // For large pages this also drops the PAT bit (bit 12).
                ulong frameBase = (e & PageTableEntry.AddressMask) & ~(size - 1);
                ulong pa = frameBase | (va & (size - 1));
                var flags = (writable ? PageFlags.Writable : 0) | (user ? PageFlags.User : 0) | (nx ? 0 : PageFlags.Executable);
                translation = new Translation(pa, size, flags);
                (_cache ??= new TranslationCache()).Insert(va, translation);
                return true;
            }
            table = e & PageTableEntry.AddressMask;
            shift -= 9;
        }
    }

    /// <summary>Zero-copy view of [va, va+length) when it lies in one page of a file-mapped source; empty otherwise.
    /// Valid until the source is disposed; for hashing pages without copying them.</summary>
    public unsafe ReadOnlySpan<byte> GetSpan(ulong va, int length)
    {
        if (_mapped is null || length <= 0 || (va & 0xfff) + (ulong)length > 4096 || !TryTranslate(va, out ulong pa)) return default;
        byte* p = _mapped.GetPointer(pa, out ulong available);
        return p == null || available < (ulong)length ? default : new ReadOnlySpan<byte>(p, length);
    }

    public unsafe int Read(ulong va, Span<byte> buffer)
    {
        // Fast path: the read stays inside one page of a mapped source (the common case for guest structures and pages).
        if (_mapped is not null && (va & 0xfff) + (ulong)buffer.Length <= 4096 && TryTranslate(va, out ulong fastPa))
        {
            byte* p = _mapped.GetPointer(fastPa, out ulong available);
            if (p != null && available >= (ulong)buffer.Length)
            {
                new ReadOnlySpan<byte>(p, buffer.Length).CopyTo(buffer);
                return buffer.Length;
            }
        }
        int done = 0;
        while (done < buffer.Length)
        {
            ulong cur = va + (ulong)done;
            if (!TryTranslate(cur, out ulong pa)) break;
            int inPage = (int)Math.Min(4096 - (cur & 0xfff), (ulong)(buffer.Length - done));
            int n = _memory.Read(pa, buffer.Slice(done, inPage));
            done += n;
            if (n != inPage) break;
        }
        return done;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryReadUInt64(ulong va, out ulong value)
    {
        if ((va & 0xfff) <= 0xff8 && TryTranslate(va, out ulong pa)) return ReadEntry(pa, out value);
        Span<byte> b = stackalloc byte[8];
        if (Read(va, b) != 8) { value = 0; return false; }
        value = System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(b);
        return true;
    }

    /// <summary>
    /// Enumerates mapped ranges in [start, end), coalescing neighbours that are contiguous in both virtual and physical
    /// space with equal page size and permissions. Stops after <paramref name="maxLeaves"/> leaf entries so that hostile
    /// page tables (every entry pointing at the same table) cannot make it run for hours.
    /// </summary>
    public IEnumerable<MappedRange> EnumerateMappings(ulong start = 0, ulong end = ulong.MaxValue, long maxLeaves = 1L << 24)
    {
        MappedRange? pending = null;
        foreach (var leaf in Walk(start, end, maxLeaves))
        {
            if (pending is { } p && p.VirtualEnd == leaf.VirtualAddress && p.PhysicalAddress + p.Length == leaf.PhysicalAddress
                && p.Flags == leaf.Flags && p.PageSize == leaf.PageSize)
            {
                pending = p with { Length = p.Length + leaf.Length };
                continue;
            }
            if (pending is { } done) yield return done;
            pending = leaf;
        }
        if (pending is { } last) yield return last;
    }

    /// <summary>Depth-first walk with an explicit stack (one iterator, not one per level: hostile tables that spend the
    /// whole budget cost ~20 ns per entry instead of a chain of nested iterators per leaf).</summary>
    private IEnumerable<MappedRange> Walk(ulong start, ulong end, long budget)
    {
        if (Mode.Is32Bit()) return WalkLegacy(start, end, budget);
        return Walk64(start, end, budget);
    }

    private IEnumerable<MappedRange> Walk64(ulong start, ulong end, long budget)
    {
        int top = Mode.TopLevelShift();
        int levels = (top - 12) / 9 + 1;
        var table = new ulong[levels];
        var next = new ulong[levels];
        var vaBase = new ulong[levels];
        var writable = new bool[levels];
        var user = new bool[levels];
        var noExecute = new bool[levels];
        table[0] = Root;
        writable[0] = user[0] = true;
        int depth = 0;
        while (depth >= 0)
        {
            if (budget <= 0) yield break;
            if (next[depth] >= 512) { depth--; continue; }
            ulong i = next[depth]++;
            int shift = top - 9 * depth;
            ulong span = 1UL << shift;
            ulong va = vaBase[depth] + i * span;
            if (depth == 0 && i >= 256)
                va |= Mode == PagingMode.FiveLevel ? 0xfe00000000000000UL : 0xffff000000000000UL; // sign-extend the kernel half
            ulong last = va + (span - 1);
            // Entries ascend in address: past the end, the rest of this table is too (a per-VMA walk touches only the
            // entries over the VMA, not all 512 of every table on its path).
            if (va >= end) { next[depth] = 512; continue; }
            if (last < start) continue;
            if (!ReadEntry(table[depth] + i * 8, out ulong e) || (e & PageTableEntry.Present) == 0) continue;
            bool w = writable[depth] && (e & PageTableEntry.Writable) != 0;
            bool u = user[depth] && (e & PageTableEntry.User) != 0;
            bool x = noExecute[depth] || (e & PageTableEntry.NoExecute) != 0;
            bool leaf = shift == 12 || ((shift == 21 || shift == 30) && (e & PageTableEntry.LargePage) != 0);
            if (leaf)
            {
                budget--;
                ulong pa = (e & PageTableEntry.AddressMask) & ~(span - 1);
                yield return new MappedRange(va, pa, span, span, (w ? PageFlags.Writable : 0) | (u ? PageFlags.User : 0) | (x ? 0 : PageFlags.Executable));
                continue;
            }
            ulong child = e & PageTableEntry.AddressMask;
            if (child >= _ramEnd) continue;
            budget--; // tables count too: hostile tables may hold no leaves at all
            depth++;
            table[depth] = child;
            // Below the top level va = base + index * span (no sign extension): start at the entry holding `start`.
            next[depth] = start > va ? Math.Min(512, (start - va) >> (shift - 9)) : 0;
            vaBase[depth] = va;
            writable[depth] = w;
            user[depth] = u;
            noExecute[depth] = x;
        }
    }
}
