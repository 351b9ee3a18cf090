using System.Buffers.Binary;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace Periscope.Memory.Formats;

/// <summary>
/// Parses an x86-64 ELF core (QEMU dump-guest-memory, kdump /proc/vmcore): PT_LOAD segments by physical address,
/// CPU state from NT_PRSTATUS and QEMU's CPU-state note, and the VMCOREINFO note if the guest published one.
/// </summary>
public static class ElfCoreReader
{
    private const ushort PnXNum = 0xffff;
    private const uint PtLoad = 1, PtNote = 4;

    public static bool IsElf(ReadOnlySpan<byte> head) =>
        head.Length >= 4 && head[0] == 0x7f && head[1] == (byte)'E' && head[2] == (byte)'L' && head[3] == (byte)'F';

    public sealed record Result(IReadOnlyList<FileSegment> Segments, IReadOnlyList<CpuState> Cpus, string? VmcoreInfo, int ProgramHeaderCount)
    {
        /// <summary>The guest's architecture as the core's e_machine states it: EM_386 for a 32-bit guest, whatever the
        /// ELF class (QEMU's x86-64 binary writes ELF64 + EM_386 for a guest not in long mode when any guest-physical
        /// block ends above 4 GiB, ELF32 + EM_386 otherwise).</summary>
        public ElfMachine Machine { get; init; } = ElfMachine.X86_64;
        public ElfClass Class { get; init; } = ElfClass.Elf64;
    }

    public static Result Read(string path, SafeFileHandle file, IntrospectionLimits limits)
    {
        long fileLength = RandomAccess.GetLength(file);
        Span<byte> eh = stackalloc byte[ElfLayout.Elf64.EhdrSize];
        ReadExactly(path, file, 0, eh[..ElfLayout.Elf32.EhdrSize], "ELF header");
        if (!IsElf(eh)) ThrowHelper.Format(path, 0, "no ELF magic");
        if (eh[4] is not (1 or 2)) ThrowHelper.Format(path, 4, $"ELF class {eh[4]}, expected 1 (32-bit) or 2 (64-bit)");
        var layout = eh[4] == 2 ? ElfLayout.Elf64 : ElfLayout.Elf32;
        if (layout.EhdrSize > ElfLayout.Elf32.EhdrSize) ReadExactly(path, file, 0, eh, "ELF header");
        if (eh[5] != 1) ThrowHelper.Format(path, 5, $"ELF data encoding {eh[5]}, expected 1 (little-endian)");
        ushort type = BinaryPrimitives.ReadUInt16LittleEndian(eh[16..]);
        if (type != 4) ThrowHelper.Format(path, 16, $"ELF type {type}, expected 4 (core)");
        ushort machine = BinaryPrimitives.ReadUInt16LittleEndian(eh[18..]);
        if (machine is not ((ushort)ElfMachine.X86_64 or (ushort)ElfMachine.I386))
            ThrowHelper.Format(path, 18, $"ELF machine {machine}, expected 62 (x86-64) or 3 (i386)");
        ulong phoff = layout.Word(eh, layout.PhOffField);
        ulong shoff = layout.Word(eh, layout.ShOffField);
        ushort phentsize = BinaryPrimitives.ReadUInt16LittleEndian(eh[layout.PhEntSizeField..]);
        uint phnum = BinaryPrimitives.ReadUInt16LittleEndian(eh[(layout.PhEntSizeField + 2)..]);
        ushort shentsize = BinaryPrimitives.ReadUInt16LittleEndian(eh[(layout.PhEntSizeField + 4)..]);
        int phdrSize = layout.PhdrSize;
        if (phentsize != phdrSize) ThrowHelper.Format(path, (ulong)layout.PhEntSizeField, $"program header size {phentsize}, expected {phdrSize}");

        if (phnum == PnXNum)
        {
            // More than 65534 headers: the real count lives in section header 0's sh_info.
            int shdrSize = layout.ShdrSize;
            if (shentsize != shdrSize || shoff == 0) ThrowHelper.Format(path, (ulong)layout.ShOffField, "e_phnum is PN_XNUM but there is no section header 0 to hold the count");
            if (shoff > (ulong)fileLength || (ulong)fileLength - shoff < (ulong)shdrSize)
                ThrowHelper.Format(path, (ulong)layout.ShOffField, $"e_phnum is PN_XNUM but section header 0 at 0x{shoff:x} lies past the end of the file (length 0x{fileLength:x})");
            Span<byte> sh = stackalloc byte[shdrSize];
            ReadExactly(path, file, shoff, sh, "section header 0");
            phnum = BinaryPrimitives.ReadUInt32LittleEndian(sh[layout.ShInfoField..]);
        }
        if (phnum > (uint)limits.MaxElfProgramHeaders)
            ThrowHelper.Format(path, (ulong)layout.PhEntSizeField + 2, $"{phnum} program headers exceed the limit of {limits.MaxElfProgramHeaders}");
        if (phoff > (ulong)fileLength || (ulong)phnum * (ulong)phdrSize > (ulong)fileLength - phoff)
            ThrowHelper.Format(path, phoff, $"{phnum} program headers run past the end of the file (length 0x{fileLength:x})");

        var ph = new byte[phnum * phdrSize];
        ReadExactly(path, file, phoff, ph, "program headers");
        var segments = new List<FileSegment>();
        var prstatus = new List<CpuState>();
        var qemu = new List<CpuState>();
        string? vmcoreinfo = null;
        int notes = 0;
        for (int i = 0; i < phnum; i++)
        {
            ReadOnlySpan<byte> p = ph.AsSpan(i * phdrSize, phdrSize);
            uint ptype = BinaryPrimitives.ReadUInt32LittleEndian(p);
            ulong offset = layout.Word(p, layout.POffsetField);
            ulong paddr = layout.Word(p, layout.PPaddrField);
            ulong filesz = layout.Word(p, layout.PFileSzField);
            ulong headerOffset = phoff + (ulong)(i * phdrSize);
            if (offset > (ulong)fileLength || filesz > (ulong)fileLength - offset)
                ThrowHelper.Format(path, headerOffset, $"program header {i} describes 0x{filesz:x} bytes at file offset 0x{offset:x}, beyond the file end 0x{fileLength:x} (truncated dump?)");
            if (ptype == PtLoad && filesz > 0)
            {
                if (paddr + filesz < paddr) ThrowHelper.Format(path, headerOffset, $"program header {i}: physical range 0x{paddr:x}+0x{filesz:x} wraps around");
                segments.Add(new FileSegment(paddr, filesz, offset, PhysicalRangeKind.Ram));
            }
            else if (ptype == PtNote && filesz > 0)
            {
                if (filesz > (ulong)limits.MaxElfNoteSegmentBytes)
                    ThrowHelper.Format(path, headerOffset, $"note segment of 0x{filesz:x} bytes exceeds the limit of 0x{limits.MaxElfNoteSegmentBytes:x} (MaxElfNoteSegmentBytes)");
                var buf = new byte[filesz];
                ReadExactly(path, file, offset, buf, "note segment");
                ParseNotes(path, offset, buf, limits, (ElfMachine)machine, ref notes, prstatus, qemu, ref vmcoreinfo);
            }
        }

        segments.Sort((a, b) => a.PhysicalStart.CompareTo(b.PhysicalStart));
        for (int i = 1; i < segments.Count; i++)
        {
            if (segments[i].PhysicalStart < segments[i - 1].PhysicalEnd)
                ThrowHelper.Format(path, segments[i].FileOffset, $"PT_LOAD at physical 0x{segments[i].PhysicalStart:x} overlaps the one at 0x{segments[i - 1].PhysicalStart:x}..0x{segments[i - 1].PhysicalEnd:x}");
        }
        return new Result(RamClassifier.Classify(segments), MergeCpus(prstatus, qemu), vmcoreinfo, (int)phnum)
        {
            Machine = (ElfMachine)machine, Class = layout.Class,
        };
    }

    private static void ParseNotes(string path, ulong segmentOffset, ReadOnlySpan<byte> buf, IntrospectionLimits limits, ElfMachine machine, ref int notes,
        List<CpuState> prstatus, List<CpuState> qemu, ref string? vmcoreinfo)
    {
        int pos = 0;
        while (buf.Length - pos >= 12)
        {
            if (++notes > limits.MaxElfNotes)
                ThrowHelper.Format(path, segmentOffset + (ulong)pos, $"more than {limits.MaxElfNotes} ELF notes");
            uint namesz = BinaryPrimitives.ReadUInt32LittleEndian(buf[pos..]);
            uint descsz = BinaryPrimitives.ReadUInt32LittleEndian(buf[(pos + 4)..]);
            uint ntype = BinaryPrimitives.ReadUInt32LittleEndian(buf[(pos + 8)..]);
            ulong nameStart = (ulong)pos + 12;
            ulong descStart = nameStart + Align4(namesz);
            ulong next = descStart + Align4(descsz);
            if (next > (ulong)buf.Length)
                ThrowHelper.Format(path, segmentOffset + (ulong)pos, $"note (namesz {namesz}, descsz {descsz}) runs past its segment of {buf.Length} bytes");
            var name = buf.Slice((int)nameStart, (int)namesz).TrimEnd((byte)0);
            var desc = buf.Slice((int)descStart, (int)descsz);
            if (name.SequenceEqual("CORE"u8) && ntype == 1)
                prstatus.Add(machine == ElfMachine.I386 ? I386PrStatus.Parse(path, segmentOffset + descStart, desc, prstatus.Count)
                    : ParsePrStatus(path, segmentOffset + descStart, desc, prstatus.Count));
            else if (name.SequenceEqual("QEMU"u8) && ntype == 0) qemu.Add(QemuCpuStateNote.Parse(path, segmentOffset + descStart, desc, qemu.Count));
            else if (name.SequenceEqual("VMCOREINFO"u8)) vmcoreinfo = Encoding.ASCII.GetString(desc.TrimEnd((byte)0));
            pos = (int)next;
        }
    }

    private static ulong Align4(uint v) => ((ulong)v + 3) & ~3UL;

    /// <summary>NT_PRSTATUS: pr_reg (27 u64, user_regs_struct order) starts at +112.</summary>
    private static CpuState ParsePrStatus(string path, ulong offset, ReadOnlySpan<byte> d, int index)
    {
        const int RegOff = 112;
        if (d.Length < RegOff + 27 * 8) ThrowHelper.Format(path, offset, $"NT_PRSTATUS note has {d.Length} bytes, expected at least {RegOff + 27 * 8}");
        static ulong R(ReadOnlySpan<byte> d, int i) => BinaryPrimitives.ReadUInt64LittleEndian(d[(RegOff + i * 8)..]);
        return new CpuState
        {
            Index = index,
            R15 = R(d, 0), R14 = R(d, 1), R13 = R(d, 2), R12 = R(d, 3), Rbp = R(d, 4), Rbx = R(d, 5), R11 = R(d, 6), R10 = R(d, 7),
            R9 = R(d, 8), R8 = R(d, 9), Rax = R(d, 10), Rcx = R(d, 11), Rdx = R(d, 12), Rsi = R(d, 13), Rdi = R(d, 14),
            Rip = R(d, 16), Cs = new SegmentState((uint)R(d, 17), 0, 0, 0), Rflags = R(d, 18), Rsp = R(d, 19),
            Fs = new SegmentState((uint)R(d, 25), 0, 0, R(d, 21)), Gs = new SegmentState((uint)R(d, 26), 0, 0, R(d, 22)),
            Source = "ELF NT_PRSTATUS note",
        };
    }

    /// <summary>The QEMU note is richer (control registers, descriptor tables); prefer it, pairing notes by CPU order.</summary>
    private static IReadOnlyList<CpuState> MergeCpus(List<CpuState> prstatus, List<CpuState> qemu) =>
        qemu.Count >= prstatus.Count ? qemu : prstatus.Select((p, i) => i < qemu.Count ? qemu[i] : p).ToArray();

    private static void ReadExactly(string path, SafeFileHandle file, ulong offset, Span<byte> buffer, string what)
    {
        // Offsets come from the file: one at or past 2^63 would be a negative position for RandomAccess.
        if (offset > long.MaxValue - (ulong)buffer.Length) ThrowHelper.Format(path, offset, $"the {what} lies past the end of the file");
        int n = RandomAccess.Read(file, buffer, (long)offset);
        if (n != buffer.Length) ThrowHelper.Format(path, offset, $"file ends inside the {what} ({n} of {buffer.Length} bytes)");
    }
}
