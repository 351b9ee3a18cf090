using System.Runtime.CompilerServices;

namespace Periscope.X86;

/// <summary>
/// A software TLB: one direct-mapped table for 4 KiB pages and one for large pages keyed by 2 MiB frame (1 GiB leaves
/// are cached per 2 MiB piece). Direct-map and kernel-image reads mostly land in 2 MiB pages, so one large entry
/// covers 512 small pages. Tags hold frame number + 1 so that zero means empty. Not thread-safe.
/// </summary>
internal sealed class TranslationCache
{
    private const int SmallSize = 1024, LargeSize = 256;
    private readonly ulong[] _smallTag = new ulong[SmallSize];
    private readonly ulong[] _smallFrame = new ulong[SmallSize];
    private readonly PageFlags[] _smallFlags = new PageFlags[SmallSize];
    private readonly ulong[] _largeTag = new ulong[LargeSize];
    private readonly ulong[] _largeFrame = new ulong[LargeSize];
    private readonly PageFlags[] _largeFlags = new PageFlags[LargeSize];
    private readonly ulong[] _largeSize = new ulong[LargeSize];

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public bool TryLookup(ulong va, out ulong pa, out ulong pageSize, out PageFlags flags)
    {
        ulong vpn = va >> 12;
        int slot = (int)(vpn & (SmallSize - 1));
        if (_smallTag[slot] == vpn + 1)
        {
            pa = _smallFrame[slot] | (va & 0xfff);
            pageSize = 4096;
            flags = _smallFlags[slot];
            return true;
        }
        ulong vfn = va >> 21;
        int large = (int)(vfn & (LargeSize - 1));
        if (_largeTag[large] == vfn + 1)
        {
            pa = _largeFrame[large] | (va & 0x1fffff);
            pageSize = _largeSize[large];
            flags = _largeFlags[large];
            return true;
        }
        pa = pageSize = 0;
        flags = 0;
        return false;
    }

    public void Insert(ulong va, Translation t)
    {
        if (t.PageSize > 4096)
        {
            ulong vfn = va >> 21;
            int large = (int)(vfn & (LargeSize - 1));
            _largeFrame[large] = t.PhysicalAddress & ~0x1fffffUL;
            _largeFlags[large] = t.Flags;
            _largeSize[large] = t.PageSize;
            _largeTag[large] = vfn + 1;
            return;
        }
        ulong vpn = va >> 12;
        int slot = (int)(vpn & (SmallSize - 1));
        _smallFrame[slot] = t.PhysicalAddress & ~0xfffUL;
        _smallFlags[slot] = t.Flags;
        _smallTag[slot] = vpn + 1;
    }

    public void Clear()
    {
        Array.Clear(_smallTag);
        Array.Clear(_largeTag);
    }
}
