using System.Buffers.Binary;
using System.Text;
using Periscope.Memory;
using Periscope.X86;

namespace Periscope.Linux.Model;

/// <summary>
/// Typed reads of guest kernel memory through an address space. Failed reads return false; nothing throws.
/// Every read is charged to the <see cref="WorkBudget"/> (bytes and page touches); once that is spent, reads fail,
/// walks stop as on an unreadable pointer, and the budget records that the results are incomplete.
/// </summary>
public sealed class GuestReader(AddressSpace space, IntrospectionLimits? limits = null, WorkBudget? budget = null)
{
    public AddressSpace Space { get; } = space;
    public PagingMode Mode => Space.Mode;
    public IntrospectionLimits Limits { get; } = limits ?? IntrospectionLimits.Default;
    public WorkBudget Budget { get; } = budget ?? new WorkBudget(limits ?? IntrospectionLimits.Default);

    /// <summary>Charges a read of <paramref name="length"/> bytes at <paramref name="va"/>; false when the budget is spent.</summary>
    private bool Charge(ulong va, int length)
    {
        if (length <= 0) return true;
        ulong last = va + (ulong)length - 1;
        long pages = last < va ? 2 : (long)((last >> 12) - (va >> 12) + 1);
        return Budget.TryConsume(WorkKind.BytesRead, length) && Budget.TryConsume(WorkKind.PagesRead, pages);
    }

    /// <summary>Reads into <paramref name="buffer"/>; returns the bytes read (0 when unmapped or out of budget).</summary>
    public int Read(ulong va, Span<byte> buffer) => Charge(va, buffer.Length) ? Space.Read(va, buffer) : 0;

    public bool TryU64(ulong va, out ulong value)
    {
        if (Charge(va, 8)) return Space.TryReadUInt64(va, out value);
        value = 0;
        return false;
    }

    /// <summary>sizeof(void *) and sizeof(unsigned long) of the guest kernel: 4 on i386 (both paging modes), 8 on x86-64.</summary>
    public int PointerSize { get; } = space.Mode.PointerSize();

    /// <summary>A pointer-sized value (a pointer, or an unsigned long: the two have one size on every x86 Linux),
    /// zero-extended on i386.</summary>
    public bool TryPointer(ulong va, out ulong value)
    {
        if (PointerSize == 8) return TryU64(va, out value);
        bool ok = TryU32(va, out uint v);
        value = v;
        return ok;
    }

    /// <summary>An unsigned long (vm_start, vm_flags, i_ino, ...): the guest's word, 4 bytes on i386.</summary>
    public bool TryULong(ulong va, out ulong value) => TryPointer(va, out value);

    public ulong PointerOrZero(ulong va) => TryPointer(va, out ulong v) ? v : 0;

    public bool TryU32(ulong va, out uint value)
    {
        Span<byte> b = stackalloc byte[4];
        if (Read(va, b) != 4) { value = 0; return false; }
        value = BinaryPrimitives.ReadUInt32LittleEndian(b);
        return true;
    }

    public bool TryI32(ulong va, out int value)
    {
        bool ok = TryU32(va, out uint v);
        value = (int)v;
        return ok;
    }

    public bool TryU8(ulong va, out byte value)
    {
        Span<byte> b = stackalloc byte[1];
        bool ok = Read(va, b) == 1;
        value = b[0];
        return ok;
    }

    public ulong U64OrZero(ulong va) => TryU64(va, out ulong v) ? v : 0;

    /// <summary>A kernel pointer that is canonical and in the kernel half (a plausibility check, not a guarantee).</summary>
    public bool IsKernelPointer(ulong va) => Mode.IsKernelAddress(va);

    /// <summary>
    /// Reads a NUL-terminated string of at most <paramref name="maxLength"/> bytes, itself capped by MaxStringLength
    /// and MaxGuestAllocation (the length usually comes from BTF or the guest). Null if unreadable.
    /// </summary>
    public string? ReadCString(ulong va, int maxLength)
    {
        maxLength = Math.Min(maxLength, Math.Min(Limits.MaxStringLength, Limits.MaxGuestAllocation));
        if (maxLength <= 0) return "";
        Span<byte> buf = maxLength <= 512 ? stackalloc byte[maxLength] : new byte[maxLength];
        int n = Read(va, buf);
        if (n == 0) return null;
        var s = buf[..n];
        int nul = s.IndexOf((byte)0);
        if (nul >= 0) s = s[..nul];
        return Encoding.UTF8.GetString(s);
    }

    /// <summary>A fixed-size char array such as task_struct.comm.</summary>
    public string? ReadFixedString(ulong va, int size) => ReadCString(va, size);
}
