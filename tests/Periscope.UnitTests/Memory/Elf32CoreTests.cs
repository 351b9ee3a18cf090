using System.Buffers.Binary;
using Periscope.Memory;
using Periscope.Memory.Formats;
using Periscope.UnitTests.Support;

namespace Periscope.UnitTests.Memory;

/// <summary>Cores of i386 guests: ELF32 + EM_386 (qemu-system-i386, or qemu-system-x86_64 below 4 GiB) and
/// ELF64 + EM_386 (qemu-system-x86_64 when a guest-physical block ends above 4 GiB), with the 144-byte i386 prstatus.</summary>
public class Elf32CoreTests
{
    private static byte[] Pattern(int length, byte seed)
    {
        var b = new byte[length];
        for (int i = 0; i < b.Length; i++) b[i] = (byte)(i * 7 + seed);
        return b;
    }

    private static ElfCoreReader.Result ReadCore(byte[] core)
    {
        using var f = new TempFile(core, ".core");
        using var h = File.OpenHandle(f.Path);
        return ElfCoreReader.Read(f.Path, h, IntrospectionLimits.Default);
    }

    [Fact]
    public void Elf32_i386_core_gives_segments_registers_and_vmcoreinfo()
    {
        var low = Pattern(0x9f000, 1);
        var main = Pattern(0x100000, 2);
        var core = new Elf32CoreBuilder()
            .Load(0, low).Load(0x100000, main)
            .Note("CORE", 1, Elf32CoreBuilder.I386PrStatus(eip: 0xce5e1002, esp: 0xc10f9f50))
            .Note("QEMU", 0, ElfCoreBuilder.QemuCpuState(cr3: 0x122f100, cr4: 0x350ef0, rip: 0xce5e1002, kernelGsBase: null))
            .Note("VMCOREINFO", 0, "OSRELEASE=6.1.0-50-686-pae\nSYMBOL(swapper_pg_dir)=cee98000\nCONFIG_X86_PAE=y\n"u8.ToArray())
            .Build();
        var r = ReadCore(core);
        Assert.Equal(ElfClass.Elf32, r.Class);
        Assert.Equal(ElfMachine.I386, r.Machine);
        Assert.Equal([(0UL, 0x9f000UL), (0x100000UL, 0x100000UL)], r.Segments.Select(s => (s.PhysicalStart, s.Length)).ToArray());
        var cpu = Assert.Single(r.Cpus);
        Assert.Equal(0x122f100UL, cpu.Cr3);
        Assert.Contains("CONFIG_X86_PAE=y", r.VmcoreInfo);

        using var f = new TempFile(core, ".core");
        using var image = MemoryImage.Open(f.Path);
        var buf = new byte[16];
        Assert.Equal(16, image.Read(0x100000 + 40, buf));
        Assert.Equal(main.AsSpan(40, 16).ToArray(), buf);
    }

    [Fact]
    public void I386_prstatus_alone_gives_eip_esp_and_selectors()
    {
        var r = ReadCore(new Elf32CoreBuilder().Load(0, Pattern(0x1000, 3))
            .Note("CORE", 1, Elf32CoreBuilder.I386PrStatus(eip: 0xc1234567, esp: 0xc0ffee00, fs: 0xd8)).Build());
        var cpu = Assert.Single(r.Cpus);
        Assert.Equal(0xc1234567UL, cpu.Rip);
        Assert.Equal(0xc0ffee00UL, cpu.Rsp);
        Assert.Equal(0xd8u, cpu.Fs!.Value.Selector);
        Assert.Null(cpu.Cr3);
    }

    [Fact]
    public void Elf64_core_with_EM_386_reads_the_i386_prstatus()
    {
        // What QEMU 7.2's x86_64 binary wrote for a 686-pae guest on q35 (measured: ELF64, Machine Intel 80386,
        // NT_PRSTATUS of 0x90 bytes, QEMU note of 0x1b8).
        var r = ReadCore(new ElfCoreBuilder { Machine = 3 }.Load(0, Pattern(0x2000, 4))
            .Note("CORE", 1, Elf32CoreBuilder.I386PrStatus(eip: 0xce5e1002, esp: 0xc10f9f50))
            .Note("QEMU", 0, ElfCoreBuilder.QemuCpuState(cr3: 0x122f100, cr4: 0x350ef0))
            .Build());
        Assert.Equal(ElfClass.Elf64, r.Class);
        Assert.Equal(ElfMachine.I386, r.Machine);
        Assert.Equal(0x122f100UL, Assert.Single(r.Cpus).Cr3);
    }

    [Fact]
    public void Truncated_elf32_program_header_data_names_the_header_and_offset()
    {
        var core = new Elf32CoreBuilder().Load(0, Pattern(0x1000, 5)).Load(0x100000, Pattern(0x1000, 6)).Build();
        var cut = core.AsSpan(0, core.Length - 0x800).ToArray();
        using var f = new TempFile(cut, ".core");
        var e = Assert.Throws<MemoryFormatException>(() => MemoryImage.Open(f.Path));
        Assert.Contains(f.Path, e.Message);
        Assert.Contains("program header 1", e.Message);
        Assert.Contains("offset 0x54", e.Message); // 52 + 32: the second ELF32 program header
    }

    [Fact]
    public void Elf32_program_header_count_past_the_file_end_is_rejected_before_reading()
    {
        var core = new Elf32CoreBuilder { Corrupt = b => BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(44), 60000) }
            .Load(0, Pattern(0x1000, 7)).Build();
        using var f = new TempFile(core, ".core");
        var e = Assert.Throws<MemoryFormatException>(() => MemoryImage.Open(f.Path, IntrospectionLimits.Default with { MaxElfProgramHeaders = 100_000 }));
        Assert.Contains("60000 program headers run past the end of the file", e.Message);
    }

    [Fact]
    public void Short_i386_prstatus_is_rejected()
    {
        var core = new Elf32CoreBuilder().Load(0, Pattern(0x1000, 8)).Note("CORE", 1, new byte[100]).Build();
        using var f = new TempFile(core, ".core");
        var e = Assert.Throws<MemoryFormatException>(() => MemoryImage.Open(f.Path));
        Assert.Contains("i386 NT_PRSTATUS note has 100 bytes, expected at least 140", e.Message);
    }

    [Theory]
    [InlineData(40, "ELF machine 40, expected 62 (x86-64) or 3 (i386)")]
    [InlineData(3, "program header size 56, expected 32")]
    public void Wrong_machine_or_program_header_size_is_one_clear_line(ushort machine, string expected)
    {
        var b = new Elf32CoreBuilder { Machine = machine }.Load(0, Pattern(0x1000, 9));
        if (machine == 3) b.ProgramHeaderSize = 56;
        using var f = new TempFile(b.Build(), ".core");
        var e = Assert.Throws<MemoryFormatException>(() => MemoryImage.Open(f.Path));
        Assert.Contains(expected, e.Message);
        Assert.DoesNotContain("\n", e.Message);
    }

    [Fact]
    public void Unknown_elf_class_is_rejected()
    {
        var core = new Elf32CoreBuilder { Corrupt = b => b[4] = 3 }.Load(0, Pattern(0x1000, 10)).Build();
        using var f = new TempFile(core, ".core");
        var e = Assert.Throws<MemoryFormatException>(() => MemoryImage.Open(f.Path));
        Assert.Contains("ELF class 3, expected 1 (32-bit) or 2 (64-bit)", e.Message);
    }
}
