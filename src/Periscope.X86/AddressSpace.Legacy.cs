using System.Runtime.CompilerServices;
using Periscope.Memory;

namespace Periscope.X86;

/// <summary>Entry layouts of the two 32-bit paging modes (Intel SDM vol. 3A §4.3 and §4.4).</summary>
public static class LegacyPaging
{
    /// <summary>PAE CR3: bits 31:5 hold the 32-byte-aligned PDPT (4 entries of 8 bytes), not a page.</summary>
    public const ulong PaeRootMask = 0xffffffe0UL;
    /// <summary>Non-PAE entries: a 4 KiB table or page frame in bits 31:12.</summary>
    public const uint FrameMask = 0xfffff000u;
    /// <summary>Non-PAE 4 MiB page: physical bits 31:22.</summary>
    public const uint LargeFrameMask = 0xffc00000u;
    /// <summary>PSE-36: a 4 MiB PDE's bits 20:13 hold physical bits 39:32 (bit 21 would be bit 40, reserved on every CPU
    /// QEMU emulates for a 32-bit guest).</summary>
    public const int Pse36Shift = 13;
    public const uint Pse36Mask = 0xffu;
    /// <summary>PAT in a large-page entry (bit 12): part of the flags, never of the frame.</summary>
    public const ulong LargePat = 1UL << 12;

    public const ulong LargePageSizeNonPae = 4UL << 20;
    public const ulong LargePageSizePae = 2UL << 20;

    /// <summary>Physical frame of a non-PAE 4 MiB PDE, with PSE-36's high bits.</summary>
    public static ulong LargeFrame(uint pde) => (pde & LargeFrameMask) | ((ulong)((pde >> Pse36Shift) & Pse36Mask) << 32);
}

public sealed partial class AddressSpace
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private unsafe bool ReadEntry32(ulong address, out uint value)
    {
        if (_mapped is not null)
        {
            byte* p = _mapped.GetPointer(address, out ulong available);
            if (p != null && available >= 4) { value = Unsafe.ReadUnaligned<uint>(p); return true; }
            value = 0;
            return false;
        }
        return _memory.TryReadUInt32(address, out value);
    }

    /// <summary>The 32-bit walks: PAE (PDPT → PD → PT, 64-bit entries, 2 MiB leaves, NX) and non-PAE (PD → PT, 32-bit
    /// entries, 4 MiB leaves with PSE-36, no NX). PDPTEs carry no permission bits, so only PDE and PTE restrict.</summary>
    private bool TranslateLegacy(ulong va, out Translation translation)
    {
        translation = default;
        if (va > uint.MaxValue) return false;
        ulong pa, size;
        bool writable, user, nx = false;
        if (Mode == PagingMode.Pae32)
        {
            if (!ReadEntry(Root + ((va >> 30) & 3) * 8, out ulong pdpte) || (pdpte & PageTableEntry.Present) == 0) return false;
            if (!ReadEntry((pdpte & PageTableEntry.AddressMask) + ((va >> 21) & 511) * 8, out ulong pde) || (pde & PageTableEntry.Present) == 0) return false;
            writable = (pde & PageTableEntry.Writable) != 0;
            user = (pde & PageTableEntry.User) != 0;
            nx = (pde & PageTableEntry.NoExecute) != 0;
            if ((pde & PageTableEntry.LargePage) != 0)
            {
                size = LegacyPaging.LargePageSizePae;
                pa = (pde & PageTableEntry.AddressMask & ~(size - 1)) | (va & (size - 1)); // drops PAT (bit 12)
            }
            else
            {
                if (!ReadEntry((pde & PageTableEntry.AddressMask) + ((va >> 12) & 511) * 8, out ulong pte) || (pte & PageTableEntry.Present) == 0) return false;
                writable &= (pte & PageTableEntry.Writable) != 0;
                user &= (pte & PageTableEntry.User) != 0;
                nx |= (pte & PageTableEntry.NoExecute) != 0;
                size = 4096;
                pa = (pte & PageTableEntry.AddressMask) | (va & 0xfff);
            }
        }
        else
        {
            if (!ReadEntry32(Root + (va >> 22) * 4, out uint pde) || (pde & PageTableEntry.Present) == 0) return false;
            writable = (pde & PageTableEntry.Writable) != 0;
            user = (pde & PageTableEntry.User) != 0;
            if ((pde & PageTableEntry.LargePage) != 0)
            {
                size = LegacyPaging.LargePageSizeNonPae;
                pa = LegacyPaging.LargeFrame(pde) | (va & (size - 1));
            }
            else
            {
                if (!ReadEntry32((pde & LegacyPaging.FrameMask) + ((va >> 12) & 1023) * 4, out uint pte) || (pte & PageTableEntry.Present) == 0) return false;
                writable &= (pte & PageTableEntry.Writable) != 0;
                user &= (pte & PageTableEntry.User) != 0;
                size = 4096;
                pa = (pte & LegacyPaging.FrameMask) | (va & 0xfff);
            }
        }
        var flags = (writable ? PageFlags.Writable : 0) | (user ? PageFlags.User : 0) | (nx ? 0 : PageFlags.Executable);
        translation = new Translation(pa, size, flags);
        (_cache ??= new TranslationCache()).Insert(va, translation);
        return true;
    }

    /// <summary>Leaves of a 32-bit address space in [start, end); every leaf and every table entered spends budget.</summary>
    private IEnumerable<MappedRange> WalkLegacy(ulong start, ulong end, long budget)
    {
        bool pae = Mode == PagingMode.Pae32;
        int topCount = pae ? 4 : 1;
        for (ulong top = 0; top < (ulong)topCount; top++)
        {
            ulong pd;
            ulong topBase = pae ? top << 30 : 0;
            if (pae)
            {
                if (topBase >= end || topBase + (1UL << 30) - 1 < start) continue;
                if (!ReadEntry(Root + top * 8, out ulong pdpte) || (pdpte & PageTableEntry.Present) == 0) continue;
                pd = pdpte & PageTableEntry.AddressMask;
                if (pd >= _ramEnd) continue;
            }
            else pd = Root;
            int pdEntries = pae ? 512 : 1024;
            int pdShift = pae ? 21 : 22;
            for (ulong i = 0; i < (ulong)pdEntries; i++)
            {
                if (budget <= 0) yield break;
                ulong va = topBase + (i << pdShift);
                ulong span = 1UL << pdShift;
                if (va >= end || va + span - 1 < start) continue;
                ulong pde;
                if (pae) { if (!ReadEntry(pd + i * 8, out pde)) continue; }
                else { if (!ReadEntry32(pd + i * 4, out uint e32)) continue; pde = e32; }
                if ((pde & PageTableEntry.Present) == 0) continue;
                bool w = (pde & PageTableEntry.Writable) != 0, u = (pde & PageTableEntry.User) != 0;
                bool x = !pae || (pde & PageTableEntry.NoExecute) == 0;
                if ((pde & PageTableEntry.LargePage) != 0)
                {
                    budget--;
                    ulong frame = pae ? pde & PageTableEntry.AddressMask & ~(span - 1) : LegacyPaging.LargeFrame((uint)pde);
                    yield return new MappedRange(va, frame, span, span, Flags(w, u, x));
                    continue;
                }
                ulong pt = pae ? pde & PageTableEntry.AddressMask : pde & LegacyPaging.FrameMask;
                if (pt >= _ramEnd) continue;
                budget--; // tables count too: hostile tables may hold no leaves at all
                for (ulong j = 0; j < (ulong)pdEntries; j++)
                {
                    if (budget <= 0) yield break;
                    ulong pva = va + j * 4096;
                    if (pva >= end || pva + 4095 < start) continue;
                    ulong pte;
                    if (pae) { if (!ReadEntry(pt + j * 8, out pte)) continue; }
                    else { if (!ReadEntry32(pt + j * 4, out uint e32)) continue; pte = e32; }
                    if ((pte & PageTableEntry.Present) == 0) continue;
                    budget--;
                    bool pw = w && (pte & PageTableEntry.Writable) != 0, pu = u && (pte & PageTableEntry.User) != 0;
                    bool px = x && (!pae || (pte & PageTableEntry.NoExecute) == 0);
                    ulong frame = pae ? pte & PageTableEntry.AddressMask : pte & LegacyPaging.FrameMask;
                    yield return new MappedRange(pva, frame, 4096, 4096, Flags(pw, pu, px));
                }
            }
        }

        static PageFlags Flags(bool w, bool u, bool x) => (w ? PageFlags.Writable : 0) | (u ? PageFlags.User : 0) | (x ? PageFlags.Executable : 0);
    }
}
