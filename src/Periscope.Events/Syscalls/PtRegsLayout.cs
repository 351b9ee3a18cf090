using System.Buffers.Binary;
using Periscope.Linux.Btf;
using Periscope.TraceRing;

namespace Periscope.Events.Syscalls;

/// <summary>The six syscall argument registers in the x86-64 syscall ABI order (di, si, dx, r10, r8, r9).</summary>
public readonly record struct SyscallArguments(ulong A0, ulong A1, ulong A2, ulong A3, ulong A4, ulong A5)
{
    public ulong this[int index] => index switch { 0 => A0, 1 => A1, 2 => A2, 3 => A3, 4 => A4, 5 => A5, _ => throw new ArgumentOutOfRangeException(nameof(index)) };
}

/// <summary>
/// Where the fields of struct pt_regs sit, from the kernel's BTF: the plugin copies pt_regs as raw bytes, and this
/// turns them into the syscall number, arguments, return value and user IP/SP.
/// </summary>
public sealed class PtRegsLayout
{
    public int Size { get; private init; }
    public int OrigAx { get; private init; }
    public int Ax { get; private init; }
    public int Ip { get; private init; }
    public int Sp { get; private init; }
    private int[] _args = [];

    /// <summary>Offsets of di, si, dx, r10, r8, r9.</summary>
    public IReadOnlyList<int> ArgumentOffsets => _args;

    public static PtRegsLayout FromBtf(BtfTypes btf)
    {
        var s = btf.FindStruct("pt_regs") ?? throw new InvalidOperationException("the kernel's BTF has no struct pt_regs");
        if (s.Size > TraceRingLayout.MaxRegsBytes)
            throw new InvalidOperationException($"struct pt_regs is {s.Size} bytes, the trace plugin captures {TraceRingLayout.MaxRegsBytes}");
        int O(string member) => (int)s.Offset(member);
        return new PtRegsLayout
        {
            Size = s.Size, OrigAx = O("orig_ax"), Ax = O("ax"), Ip = O("ip"), Sp = O("sp"),
            _args = [O("di"), O("si"), O("dx"), O("r10"), O("r8"), O("r9")],
        };
    }

    public long Number(ReadOnlySpan<byte> regs) => BinaryPrimitives.ReadInt64LittleEndian(regs[OrigAx..]);
    public long Return(ReadOnlySpan<byte> regs) => BinaryPrimitives.ReadInt64LittleEndian(regs[Ax..]);
    public ulong UserIp(ReadOnlySpan<byte> regs) => BinaryPrimitives.ReadUInt64LittleEndian(regs[Ip..]);
    public ulong UserSp(ReadOnlySpan<byte> regs) => BinaryPrimitives.ReadUInt64LittleEndian(regs[Sp..]);

    public SyscallArguments Arguments(ReadOnlySpan<byte> regs)
    {
        int[] a = _args;
        return new SyscallArguments(
            BinaryPrimitives.ReadUInt64LittleEndian(regs[a[0]..]), BinaryPrimitives.ReadUInt64LittleEndian(regs[a[1]..]),
            BinaryPrimitives.ReadUInt64LittleEndian(regs[a[2]..]), BinaryPrimitives.ReadUInt64LittleEndian(regs[a[3]..]),
            BinaryPrimitives.ReadUInt64LittleEndian(regs[a[4]..]), BinaryPrimitives.ReadUInt64LittleEndian(regs[a[5]..]));
    }
}
