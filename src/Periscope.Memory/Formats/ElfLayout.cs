using System.Buffers.Binary;

namespace Periscope.Memory.Formats;

public enum ElfClass : byte { Elf32 = 1, Elf64 = 2 }

/// <summary>e_machine values of the cores Periscope reads.</summary>
public enum ElfMachine : ushort { I386 = 3, X86_64 = 62 }

/// <summary>
/// Where the fields a core reader needs sit in the ELF32 and ELF64 headers (System V gABI): the two classes differ in
/// word size and in field order of the program header, nothing else a core reader touches. Notes have the same 12-byte
/// header in both classes.
/// </summary>
internal sealed record ElfLayout(ElfClass Class, int WordSize, int EhdrSize, int PhdrSize, int ShdrSize,
    int PhOffField, int ShOffField, int PhEntSizeField, int ShInfoField, int POffsetField, int PPaddrField, int PFileSzField)
{
    public static readonly ElfLayout Elf32 = new(ElfClass.Elf32, 4, 52, 32, 40,
        PhOffField: 28, ShOffField: 32, PhEntSizeField: 42, ShInfoField: 28, POffsetField: 4, PPaddrField: 12, PFileSzField: 16);

    public static readonly ElfLayout Elf64 = new(ElfClass.Elf64, 8, 64, 56, 64,
        PhOffField: 32, ShOffField: 40, PhEntSizeField: 54, ShInfoField: 44, POffsetField: 8, PPaddrField: 24, PFileSzField: 32);

    /// <summary>An address or offset field: 4 bytes in ELF32, 8 in ELF64. The caller's span holds the whole header.</summary>
    public ulong Word(ReadOnlySpan<byte> header, int field) => WordSize == 4
        ? BinaryPrimitives.ReadUInt32LittleEndian(header[field..])
        : BinaryPrimitives.ReadUInt64LittleEndian(header[field..]);
}

/// <summary>
/// NT_PRSTATUS of an i386 guest: the 144-byte elf_prstatus of a 32-bit kernel, whose pr_reg (17 32-bit words, the i386
/// user_regs_struct: ebx ecx edx esi edi ebp eax ds es fs gs orig_eax eip cs eflags esp ss) starts at +72. QEMU writes
/// this layout in ELF32 and in ELF64 cores of a guest that is not in long mode (target/i386/arch_dump.c).
/// </summary>
internal static class I386PrStatus
{
    private const int RegOff = 72, RegCount = 17;
    public const int MinimumSize = RegOff + RegCount * 4;

    public static CpuState Parse(string path, ulong offset, ReadOnlySpan<byte> d, int index)
    {
        if (d.Length < MinimumSize) ThrowHelper.Format(path, offset, $"i386 NT_PRSTATUS note has {d.Length} bytes, expected at least {MinimumSize}");
        static uint R(ReadOnlySpan<byte> d, int i) => BinaryPrimitives.ReadUInt32LittleEndian(d[(RegOff + i * 4)..]);
        return new CpuState
        {
            Index = index,
            Rbx = R(d, 0), Rcx = R(d, 1), Rdx = R(d, 2), Rsi = R(d, 3), Rdi = R(d, 4), Rbp = R(d, 5), Rax = R(d, 6),
            Fs = new SegmentState(R(d, 9) & 0xffff, 0, 0, 0), Gs = new SegmentState(R(d, 10) & 0xffff, 0, 0, 0),
            Rip = R(d, 12), Cs = new SegmentState(R(d, 13) & 0xffff, 0, 0, 0), Rflags = R(d, 14), Rsp = R(d, 15),
            Source = "ELF NT_PRSTATUS note (i386)",
        };
    }
}
