using System.Runtime.CompilerServices;
using Periscope.Memory;

namespace Periscope.X86;

/// <summary>
/// One x86-64 address space (a page-table root) over guest physical memory: translation with a small software TLB,
/// virtual reads, and enumeration of mappings. Instances are cheap and not thread-safe (the TLB is per instance);
/// call <see cref="FlushCache"/> before re-reading a live guest whose page tables may have changed.
/// </summary>
public sealed class AddressSpace : IVirtualMemory
{
    private const int TlbBits = 10;
    private const int TlbSize = 1 << TlbBits;

    private readonly IPhysicalMemory _memory;
    private readonly MappedPhysicalMemory? _mapped;
    private readonly ulong _ramEnd;
    // Direct-mapped TLB keyed by virtual page number; tag holds vpn+1 so zero means empty.
    private readonly ulong[] _tlbTag = new ulong[TlbSize];
    private readonly ulong[] _tlbFrame = new ulong[TlbSize];
    private readonly PageFlags[] _tlbFlags = new PageFlags[TlbSize];
    private readonly ulong[] _tlbPageSize = new ulong[TlbSize];
    // Large-page TLB keyed by 2 MiB virtual frame: direct-map and kernel-image reads mostly land in 2 MiB pages, so one
    // entry covers 512 small pages (1 GiB leaves are cached per 2 MiB piece).
    private const int LargeTlbSize = 256;
    private readonly ulong[] _largeTag = new ulong[LargeTlbSize];
    private readonly ulong[] _largeFrame = new ulong[LargeTlbSize];
    private readonly PageFlags[] _largeFlags = new PageFlags[LargeTlbSize];
    private readonly ulong[] _largeSize = new ulong[LargeTlbSize];

    public AddressSpace(IPhysicalMemory memory, ulong rootPhysicalAddress, PagingMode mode)
    {
        _memory = memory;
        _mapped = memory as MappedPhysicalMemory ?? (memory as Periscope.Memory.Formats.MemoryImage)?.Memory;
        Root = rootPhysicalAddress & PageTableEntry.AddressMask;
        Mode = mode;
        _ramEnd = memory.Map.Ranges.Count == 0 ? 0 : memory.Map.Ranges[^1].End;
    }

    public IPhysicalMemory Physical => _memory;
    public ulong Root { get; }
    public PagingMode Mode { get; }
    int IVirtualMemory.PointerSize => 8;

    public void FlushCache()
    {
        Array.Clear(_tlbTag);
        Array.Clear(_largeTag);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private bool ReadEntry(ulong address, out ulong value) =>
        _mapped is not null ? _mapped.TryReadUInt64(address, out value) : _memory.TryReadUInt64(address, out value);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryTranslate(ulong va, out ulong pa)
    {
        ulong vpn = va >> 12;
        int slot = (int)(vpn & (TlbSize - 1));
        if (_tlbTag[slot] == vpn + 1)
        {
            pa = _tlbFrame[slot] | (va & 0xfff);
            return true;
        }
        ulong vfn2m = va >> 21;
        int large = (int)(vfn2m & (LargeTlbSize - 1));
        if (_largeTag[large] == vfn2m + 1)
        {
            pa = _largeFrame[large] | (va & 0x1fffff);
            return true;
        }
        if (TranslateWithoutCache(va, out var t))
        {
            pa = t.PhysicalAddress;
            return true;
        }
        pa = 0;
        return false;
    }

    public bool TryTranslate(ulong va, out Translation translation)
    {
        ulong vpn = va >> 12;
        int slot = (int)(vpn & (TlbSize - 1));
        if (_tlbTag[slot] == vpn + 1)
        {
            translation = new Translation(_tlbFrame[slot] | (va & 0xfff), _tlbPageSize[slot], _tlbFlags[slot]);
            return true;
        }
        ulong vfn2m = va >> 21;
        int large = (int)(vfn2m & (LargeTlbSize - 1));
        if (_largeTag[large] == vfn2m + 1)
        {
            translation = new Translation(_largeFrame[large] | (va & 0x1fffff), _largeSize[large], _largeFlags[large]);
            return true;
        }
        return TranslateWithoutCache(va, out translation);
    }

    /// <summary>A full page walk (the result is then cached). Public for benchmarks and tests of the walk itself.</summary>
    public bool TranslateWithoutCache(ulong va, out Translation translation)
    {
        translation = default;
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
                if (size > 4096)
                {
                    ulong vfn2m = va >> 21;
                    int large = (int)(vfn2m & (LargeTlbSize - 1));
                    _largeFrame[large] = pa & ~0x1fffffUL;
                    _largeFlags[large] = flags;
                    _largeSize[large] = size;
                    _largeTag[large] = vfn2m + 1;
                    return true;
                }
                ulong vpn = va >> 12;
                int slot = (int)(vpn & (TlbSize - 1));
                _tlbFrame[slot] = pa & ~0xfffUL;
                _tlbFlags[slot] = flags;
                _tlbPageSize[slot] = size;
                _tlbTag[slot] = vpn + 1;
                return true;
            }
            table = e & PageTableEntry.AddressMask;
            shift -= 9;
        }
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
        var budget = new WalkBudget { Remaining = maxLeaves };
        MappedRange? pending = null;
        foreach (var leaf in Walk(Root, Mode.TopLevelShift(), 0, true, true, false, start, end, budget))
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

    private IEnumerable<MappedRange> Walk(ulong table, int shift, ulong vaBase, bool writable, bool user, bool nx, ulong start, ulong end, WalkBudget budget)
    {
        ulong span = 1UL << shift;
        for (ulong i = 0; i < 512; i++)
        {
            if (budget.Remaining <= 0) yield break;
            ulong va = vaBase + i * span;
            if (shift == Mode.TopLevelShift() && i >= 256)
                va |= Mode == PagingMode.FiveLevel ? 0xfe00000000000000UL : 0xffff000000000000UL; // sign-extend the kernel half
            ulong last = va + (span - 1);
            if (last < start || va >= end) continue;
            if (!ReadEntry(table + i * 8, out ulong e) || (e & PageTableEntry.Present) == 0) continue;
            bool w = writable && (e & PageTableEntry.Writable) != 0;
            bool u = user && (e & PageTableEntry.User) != 0;
            bool x = nx || (e & PageTableEntry.NoExecute) != 0;
            bool leaf = shift == 12 || ((shift == 21 || shift == 30) && (e & PageTableEntry.LargePage) != 0);
            if (leaf)
            {
                budget.Remaining--;
                ulong pa = (e & PageTableEntry.AddressMask) & ~(span - 1);
                yield return new MappedRange(va, pa, span, span, (w ? PageFlags.Writable : 0) | (u ? PageFlags.User : 0) | (x ? 0 : PageFlags.Executable));
                continue;
            }
            ulong next = e & PageTableEntry.AddressMask;
            if (next >= _ramEnd) continue;
            budget.Remaining--; // tables count too: hostile tables may hold no leaves at all
            foreach (var r in Walk(next, shift - 9, va, w, u, x, start, end, budget)) yield return r;
        }
    }

    private sealed class WalkBudget
    {
        public long Remaining;
    }
}
