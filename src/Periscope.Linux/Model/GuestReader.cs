using System.Buffers.Binary;
using System.Text;
using Periscope.X86;

namespace Periscope.Linux.Model;

/// <summary>Typed reads of guest kernel memory through an address space. Failed reads return false; nothing throws.</summary>
public sealed class GuestReader(AddressSpace space)
{
    public AddressSpace Space { get; } = space;
    public PagingMode Mode => Space.Mode;

    public bool TryU64(ulong va, out ulong value) => Space.TryReadUInt64(va, out value);

    public bool TryPointer(ulong va, out ulong value) => Space.TryReadUInt64(va, out value);

    public bool TryU32(ulong va, out uint value)
    {
        Span<byte> b = stackalloc byte[4];
        if (Space.Read(va, b) != 4) { value = 0; return false; }
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
        bool ok = Space.Read(va, b) == 1;
        value = b[0];
        return ok;
    }

    public ulong U64OrZero(ulong va) => TryU64(va, out ulong v) ? v : 0;

    /// <summary>A kernel pointer that is canonical and in the kernel half (a plausibility check, not a guarantee).</summary>
    public bool IsKernelPointer(ulong va) => Mode.IsKernelAddress(va);

    /// <summary>Reads a NUL-terminated string of at most <paramref name="maxLength"/> bytes. Null if unreadable.</summary>
    public string? ReadCString(ulong va, int maxLength)
    {
        if (maxLength <= 0) return "";
        Span<byte> buf = maxLength <= 512 ? stackalloc byte[maxLength] : new byte[maxLength];
        int n = Space.Read(va, buf);
        if (n == 0) return null;
        var s = buf[..n];
        int nul = s.IndexOf((byte)0);
        if (nul >= 0) s = s[..nul];
        return Encoding.UTF8.GetString(s);
    }

    /// <summary>A fixed-size char array such as task_struct.comm.</summary>
    public string? ReadFixedString(ulong va, int size) => ReadCString(va, size);
}
