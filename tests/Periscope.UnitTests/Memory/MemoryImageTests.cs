using System.Buffers.Binary;
using Periscope.Memory;
using Periscope.Memory.Formats;
using Periscope.UnitTests.Support;

namespace Periscope.UnitTests.Memory;

public class MemoryImageTests
{
    private static byte[] Pattern(int length, byte seed)
    {
        var b = new byte[length];
        for (int i = 0; i < b.Length; i++) b[i] = (byte)(i * 7 + seed);
        return b;
    }

    [Fact]
    public void Page_read_ahead_asks_nothing_for_resident_pages_or_addresses_outside_the_file()
    {
        // An ELF core's segments are not page-aligned in the file: each guest page spans two file pages here.
        var main = Pattern(0x4000, 5);
        var core = new ElfCoreBuilder().Load(0x100000, main).Build();
        using var f = new TempFile(core, ".core");
        using var image = MemoryImage.Open(f.Path);
        var buf = new byte[0x4000];
        Assert.Equal(buf.Length, image.Read(0x100000, buf)); // every page of the segment is now resident and mapped
        Assert.Equal(main, buf);
        Assert.Equal(0, image.PrefetchPages([0x100000, 0x100008, 0x101000, 0x103ff8]));
        Assert.Equal(0, image.PrefetchPages([0, 0xfffff, 0x104000, ulong.MaxValue]));
        Assert.Equal(0, image.PrefetchPages([]));
        // Advice changes no byte that is read.
        Assert.Equal(buf.Length, image.Read(0x100000, buf));
        Assert.Equal(main, buf);
    }

    [Fact]
    public void ElfCore_segments_notes_and_device_memory_are_read()
    {
        var low = Pattern(0xa0000, 1);
        var main = Pattern(0x100000, 2);
        var vram = Pattern(0x1000, 3);
        var core = new ElfCoreBuilder()
            .Load(0, low).Load(0xc0000, main).Load(0xfd000000, vram)
            .Note("CORE", 1, ElfCoreBuilder.PrStatus(0x1234, 0x5678))
            .Note("QEMU", 0, ElfCoreBuilder.QemuCpuState(cr3: 0x2a3f000, cr4: 0x1000 | 0x20))
            .Note("VMCOREINFO", 0, "OSRELEASE=6.1.0\nKERNELOFFSET=1be00000\n"u8.ToArray())
            .Build();
        using var f = new TempFile(core, ".core");
        using var image = MemoryImage.Open(f.Path);
        Assert.Equal(MemoryImageFormat.ElfCore, image.Format);
        Assert.Equal(3, image.Map.Ranges.Count);
        Assert.Equal(PhysicalRangeKind.Ram, image.Map.Ranges[0].Kind);
        Assert.Equal(PhysicalRangeKind.Ram, image.Map.Ranges[1].Kind);
        Assert.Equal(PhysicalRangeKind.Device, image.Map.Ranges[2].Kind);
        Assert.Equal((ulong)(0xa0000 + 0x100000), image.Map.RamBytes);

        var buf = new byte[16];
        Assert.Equal(16, image.Read(0xc0000 + 100, buf));
        Assert.Equal(main.AsSpan(100, 16).ToArray(), buf);
        // The VGA hole is not backed: a read stops there.
        Assert.Equal(0, image.Read(0xa0000, buf));
        Assert.Equal(8, image.Read(0xa0000 - 8, buf));

        var cpu = Assert.Single(image.Cpus);
        Assert.Equal(0x2a3f000UL, cpu.Cr3);
        Assert.Equal(0xffff888007c00000UL, cpu.KernelGsBase);
        Assert.Contains("KERNELOFFSET=1be00000", image.VmcoreInfo);
    }

    [Fact]
    public void ElfCore_without_kernel_gs_base_tail_is_accepted()
    {
        var core = new ElfCoreBuilder().Load(0, Pattern(0x2000, 1))
            .Note("QEMU", 0, ElfCoreBuilder.QemuCpuState(0x1000, 0, kernelGsBase: null)).Build();
        using var f = new TempFile(core);
        using var image = MemoryImage.Open(f.Path);
        Assert.Null(image.Cpus[0].KernelGsBase);
    }

    [Fact]
    public void ElfCore_with_PN_XNUM_takes_the_count_from_section_header_0()
    {
        var core = new ElfCoreBuilder { UsePnXNum = true }.Load(0, Pattern(0x3000, 1)).Load(0x100000, Pattern(0x1000, 2)).Build();
        using var f = new TempFile(core);
        using var image = MemoryImage.Open(f.Path);
        Assert.Equal(2, image.Map.Ranges.Count);
    }

    [Fact]
    public void Truncated_core_names_file_and_offset()
    {
        var core = new ElfCoreBuilder().Load(0, Pattern(0x4000, 1)).Build();
        using var f = new TempFile(core[..^100]);
        var e = Assert.Throws<MemoryFormatException>(() => MemoryImage.Open(f.Path));
        Assert.Contains(f.Path, e.Message);
        Assert.Contains("offset 0x", e.Message);
        Assert.Contains("truncated", e.Message);
    }

    [Fact]
    public void Truncated_inside_header_is_a_clear_error()
    {
        var core = new ElfCoreBuilder().Load(0, Pattern(0x1000, 1)).Build();
        using var f = new TempFile(core[..40]);
        var e = Assert.Throws<MemoryFormatException>(() => MemoryImage.Open(f.Path));
        Assert.Contains("ELF header", e.Message);
    }

    [Fact]
    public void Absurd_program_header_count_is_refused()
    {
        var core = new ElfCoreBuilder().Load(0, Pattern(0x1000, 1)).Build();
        BinaryPrimitives.WriteUInt16LittleEndian(core.AsSpan(56), 0xfffe);
        using var f = new TempFile(core);
        var e = Assert.Throws<MemoryFormatException>(() => MemoryImage.Open(f.Path, IntrospectionLimits.Default with { MaxElfProgramHeaders = 1000 }));
        Assert.Contains("65534 program headers exceed the limit of 1000", e.Message);
    }

    [Fact]
    public void Program_headers_past_end_of_file_are_refused()
    {
        var core = new ElfCoreBuilder().Load(0, Pattern(0x1000, 1)).Build();
        BinaryPrimitives.WriteUInt16LittleEndian(core.AsSpan(56), 200);
        using var f = new TempFile(core);
        var e = Assert.Throws<MemoryFormatException>(() => MemoryImage.Open(f.Path));
        Assert.Contains("past the end of the file", e.Message);
    }

    [Fact]
    public void Overlapping_segments_are_refused()
    {
        var core = new ElfCoreBuilder().Load(0, Pattern(0x2000, 1)).Load(0x1000, Pattern(0x2000, 2)).Build();
        using var f = new TempFile(core);
        var e = Assert.Throws<MemoryFormatException>(() => MemoryImage.Open(f.Path));
        Assert.Contains("overlaps", e.Message);
    }

    [Fact]
    public void Wrong_machine_and_type_are_refused()
    {
        using var f1 = new TempFile(new ElfCoreBuilder { Machine = 183 }.Load(0, Pattern(0x1000, 1)).Build());
        Assert.Contains("machine 183", Assert.Throws<MemoryFormatException>(() => MemoryImage.Open(f1.Path)).Message);
        using var f2 = new TempFile(new ElfCoreBuilder { Type = 2 }.Load(0, Pattern(0x1000, 1)).Build());
        Assert.Contains("expected 4 (core)", Assert.Throws<MemoryFormatException>(() => MemoryImage.Open(f2.Path)).Message);
    }

    [Fact]
    public void Note_running_past_its_segment_is_refused()
    {
        var core = new ElfCoreBuilder().Load(0, Pattern(0x1000, 1)).Note("CORE", 1, ElfCoreBuilder.PrStatus(1, 2)).Build();
        // The note segment starts right after the headers: make its descsz absurd.
        int noteStart = 64 + 2 * 56;
        BinaryPrimitives.WriteUInt32LittleEndian(core.AsSpan(noteStart + 4), 0x7fffffff);
        using var f = new TempFile(core);
        var e = Assert.Throws<MemoryFormatException>(() => MemoryImage.Open(f.Path));
        Assert.Contains("runs past its segment", e.Message);
    }

    [Fact]
    public void Qemu_note_with_lying_size_is_refused()
    {
        var core = new ElfCoreBuilder().Load(0, Pattern(0x1000, 1))
            .Note("QEMU", 0, ElfCoreBuilder.QemuCpuState(0x1000, 0, sizeOverride: 10_000)).Build();
        using var f = new TempFile(core);
        Assert.Contains("declares size 10000", Assert.Throws<MemoryFormatException>(() => MemoryImage.Open(f.Path)).Message);
    }

    [Fact]
    public void Lime_ranges_are_read_and_validated()
    {
        var a = Pattern(0x1000, 5);
        var b = Pattern(0x2000, 6);
        var ms = new MemoryStream();
        void Range(ulong start, byte[] data)
        {
            var h = new byte[32];
            BinaryPrimitives.WriteUInt32LittleEndian(h, LimeReader.Magic);
            BinaryPrimitives.WriteUInt32LittleEndian(h.AsSpan(4), 1);
            BinaryPrimitives.WriteUInt64LittleEndian(h.AsSpan(8), start);
            BinaryPrimitives.WriteUInt64LittleEndian(h.AsSpan(16), start + (ulong)data.Length - 1);
            ms.Write(h); ms.Write(data);
        }
        Range(0x1000, a);
        Range(0x100000, b);
        using var f = new TempFile(ms.ToArray(), ".lime");
        using var image = MemoryImage.Open(f.Path);
        Assert.Equal(MemoryImageFormat.Lime, image.Format);
        var buf = new byte[4];
        image.Read(0x100010, buf);
        Assert.Equal(b.AsSpan(0x10, 4).ToArray(), buf);

        using var bad = new TempFile(ms.ToArray()[..^10], ".lime");
        Assert.Contains("needs 0x2000 bytes", Assert.Throws<MemoryFormatException>(() => MemoryImage.Open(bad.Path)).Message);
    }

    [Fact]
    public void Raw_q35_layout_puts_high_ram_at_4GiB()
    {
        var segs = RawImage.Segments(3UL << 30, RawLayout.Q35);
        Assert.Equal(2, segs.Count);
        Assert.Equal(new FileSegment(0, 2UL << 30, 0, PhysicalRangeKind.Ram), segs[0]);
        Assert.Equal(new FileSegment(4UL << 30, 1UL << 30, 2UL << 30, PhysicalRangeKind.Ram), segs[1]);
        Assert.Single(RawImage.Segments(256UL << 20, RawLayout.Q35));
        Assert.Single(RawImage.Segments(3UL << 30, RawLayout.Flat));
    }

    [Fact]
    public void Format_is_detected_from_content_not_name()
    {
        var core = new ElfCoreBuilder().Load(0, Pattern(0x1000, 1)).Build();
        using var f = new TempFile(core, ".raw");
        using var image = MemoryImage.Open(f.Path);
        Assert.Equal(MemoryImageFormat.ElfCore, image.Format);
        using var raw = new TempFile(Pattern(0x3000, 9), ".elf");
        using var image2 = MemoryImage.Open(raw.Path);
        Assert.Equal(MemoryImageFormat.Raw, image2.Format);
    }

    [Fact]
    public void Empty_and_missing_files_are_clear_errors()
    {
        using var f = new TempFile([]);
        Assert.Contains("empty", Assert.Throws<MemoryFormatException>(() => MemoryImage.Open(f.Path)).Message);
        Assert.Throws<FileNotFoundException>(() => MemoryImage.Open("/nonexistent/periscope.core"));
    }
}
