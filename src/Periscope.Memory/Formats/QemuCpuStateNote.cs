using System.Buffers.Binary;

namespace Periscope.Memory.Formats;

/// <summary>
/// QEMU's "QEMU" ELF note (QEMUCPUState, target/i386/arch_dump.c): version, size, 18 registers, 10 segment
/// descriptors (cs ds es fs gs ss ldt tr gdt idt), cr[5], and on newer QEMU a trailing kernel_gs_base that is only
/// present when size says so.
/// </summary>
public static class QemuCpuStateNote
{
    private const int RegsOff = 8, SegOff = 152, SegSize = 24, CrOff = 392, KernelGsOff = 432;
    public const int MinimumSize = CrOff + 5 * 8;

    public static CpuState Parse(string path, ulong offset, ReadOnlySpan<byte> d, int index)
    {
        if (d.Length < MinimumSize) ThrowHelper.Format(path, offset, $"QEMU CPU-state note has {d.Length} bytes, expected at least {MinimumSize}");
        uint version = BinaryPrimitives.ReadUInt32LittleEndian(d);
        uint size = BinaryPrimitives.ReadUInt32LittleEndian(d[4..]);
        if (version != 1) ThrowHelper.Format(path, offset, $"QEMU CPU-state note version {version}, expected 1");
        if (size < MinimumSize || size > d.Length) ThrowHelper.Format(path, offset + 4, $"QEMU CPU-state note declares size {size}, but {d.Length} bytes are present (minimum {MinimumSize})");
        static ulong R(ReadOnlySpan<byte> d, int i) => BinaryPrimitives.ReadUInt64LittleEndian(d[(RegsOff + i * 8)..]);
        static SegmentState S(ReadOnlySpan<byte> d, int i)
        {
            var s = d.Slice(SegOff + i * SegSize, SegSize);
            return new SegmentState(BinaryPrimitives.ReadUInt32LittleEndian(s), BinaryPrimitives.ReadUInt32LittleEndian(s[4..]),
                BinaryPrimitives.ReadUInt32LittleEndian(s[8..]), BinaryPrimitives.ReadUInt64LittleEndian(s[16..]));
        }
        static ulong Cr(ReadOnlySpan<byte> d, int i) => BinaryPrimitives.ReadUInt64LittleEndian(d[(CrOff + i * 8)..]);
        return new CpuState
        {
            Index = index,
            Rax = R(d, 0), Rbx = R(d, 1), Rcx = R(d, 2), Rdx = R(d, 3), Rsi = R(d, 4), Rdi = R(d, 5), Rsp = R(d, 6), Rbp = R(d, 7),
            R8 = R(d, 8), R9 = R(d, 9), R10 = R(d, 10), R11 = R(d, 11), R12 = R(d, 12), R13 = R(d, 13), R14 = R(d, 14), R15 = R(d, 15),
            Rip = R(d, 16), Rflags = R(d, 17),
            Cs = S(d, 0), Fs = S(d, 3), Gs = S(d, 4), Gdt = S(d, 8), Idt = S(d, 9),
            Cr0 = Cr(d, 0), Cr2 = Cr(d, 2), Cr3 = Cr(d, 3), Cr4 = Cr(d, 4),
            KernelGsBase = size >= KernelGsOff + 8 ? BinaryPrimitives.ReadUInt64LittleEndian(d[KernelGsOff..]) : null,
            Source = "ELF QEMU CPU-state note",
        };
    }
}
