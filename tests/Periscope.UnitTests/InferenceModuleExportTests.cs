using System.Buffers.Binary;
using Periscope.Linux.Inference;
using Periscope.Linux.Model;
using Periscope.Memory;
using Periscope.Memory.Formats;
using Periscope.UnitTests.Support;
using Periscope.X86;

namespace Periscope.UnitTests;

/// <summary>
/// module.syms without BTF on synthetic x86-64 struct modules whose export tables live in (page-table mapped) module
/// memory: before 7.0 num_syms follows syms by 16 bytes (syms, crcs); Linux 7.0 put flagstab between crcs and num_syms,
/// so it follows by 24 and flagstab is NULL exactly when there is nothing to export. Each layout must be found on its own
/// bytes and only there, and the kernel_symbols are place-relative (x86 PREL32).
/// </summary>
public class InferenceModuleExportTests
{
    private const ulong ModuleVa = 0xffff_ffff_c000_0000, ModulePa = 0x20_0000;
    private static readonly VirtualRange Area = new(ModuleVa, 0xffff_ffff_ff00_0000);
    private const int Syms = 0x60;

    /// <summary>Three modules' windows (two export, one does not) and the memory holding their kernel_symbol tables.</summary>
    private static (List<byte[]> Windows, byte[] Memory, ulong Root) Build(bool flagstab)
    {
        var memory = new byte[4 << 20];
        var tables = new PageTableBuilder(memory, PagingMode.FourLevel, 0x10_0000);
        tables.Map(ModuleVa, ModulePa, 2UL << 20);
        var windows = new List<byte[]>();
        for (int m = 0; m < 3; m++)
        {
            var w = new byte[0x200];
            // Noise a wrong offset would read: kernel pointers and small counters around the export fields.
            for (int o = 0x18; o < 0x200; o += 8) BinaryPrimitives.WriteUInt64LittleEndian(w.AsSpan(o), 0xffff_8880_0100_0000 + (ulong)o);
            uint count = m == 2 ? 0u : 2u + (uint)m;
            ulong table = count == 0 ? 0 : ModuleVa + 0x1000 + (ulong)m * 0x1000;
            BinaryPrimitives.WriteUInt64LittleEndian(w.AsSpan(Syms), table);
            BinaryPrimitives.WriteUInt64LittleEndian(w.AsSpan(Syms + 8), 0); // crcs: NULL without MODVERSIONS
            if (flagstab)
            {
                BinaryPrimitives.WriteUInt64LittleEndian(w.AsSpan(Syms + 16), count == 0 ? 0 : table + 0x800);
                BinaryPrimitives.WriteUInt64LittleEndian(w.AsSpan(Syms + 24), count); // num_syms (u32) and padding
            }
            else BinaryPrimitives.WriteUInt64LittleEndian(w.AsSpan(Syms + 16), count);
            for (uint i = 0; i < count; i++)
            {
                // kernel_symbol { int value_offset; int name_offset; int namespace_offset; }, each relative to itself.
                ulong entry = table + i * 12, value = ModuleVa + 0x10_0000 + i * 0x40, name = table + 0x400 + i * 0x20;
                int at = (int)(entry - ModuleVa + ModulePa);
                BinaryPrimitives.WriteInt32LittleEndian(memory.AsSpan(at), (int)(long)(value - entry));
                BinaryPrimitives.WriteInt32LittleEndian(memory.AsSpan(at + 4), (int)(long)(name - (entry + 4)));
                System.Text.Encoding.ASCII.GetBytes($"export_{m}_{i}\0").CopyTo(memory.AsSpan((int)(name - ModuleVa + ModulePa)));
            }
            windows.Add(w);
        }
        return (windows, memory, tables.Root);
    }

    private static List<ModuleExportLayout> Search(bool flagstab)
    {
        var (windows, memory, root) = Build(flagstab);
        using var file = new TempFile(memory);
        using var image = MemoryImage.Open(file.Path);
        var reader = new GuestReader(new AddressSpace(image, root, PagingMode.FourLevel));
        return ModuleExportRule.Candidates(windows, 0x18, WordLayout.For(8), Area, reader, IntrospectionLimits.Default.MaxModuleSymbols, _ => { });
    }

    [Fact]
    public void Linux_7_layout_puts_num_syms_24_bytes_after_syms()
    {
        Assert.Equal([new ModuleExportLayout(Syms, StructuralFacts.KernelSymbolNumAfterSymsWithFlags, Relative: true)], Search(flagstab: true));
    }

    [Fact]
    public void Layout_before_7_puts_num_syms_16_bytes_after_syms()
    {
        Assert.Equal([new ModuleExportLayout(Syms, StructuralFacts.KernelSymbolNumAfterSyms, Relative: true)], Search(flagstab: false));
    }

    [Fact]
    public void A_flagstab_set_without_exports_fails_the_7_layout()
    {
        var (windows, memory, root) = Build(flagstab: true);
        BinaryPrimitives.WriteUInt64LittleEndian(windows[2].AsSpan(Syms + 16), ModuleVa + 0x9000); // flagstab, but num_syms 0
        using var file = new TempFile(memory);
        using var image = MemoryImage.Open(file.Path);
        var reader = new GuestReader(new AddressSpace(image, root, PagingMode.FourLevel));
        Assert.False(ModuleExportRule.Fits(windows, Syms, StructuralFacts.KernelSymbolNumAfterSymsWithFlags, true, WordLayout.For(8), Area, reader, 1000));
        Assert.True(ModuleExportRule.Fits(Build(flagstab: true).Windows, Syms, StructuralFacts.KernelSymbolNumAfterSymsWithFlags, true, WordLayout.For(8), Area, reader, 1000));
    }
}
