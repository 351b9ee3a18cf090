using Periscope.Integrity.Evidence;

namespace Periscope.UnitTests.Integrity;

/// <summary>Function starts from the evidence's symbols (kernel text and listed modules), found by binary search.</summary>
public sealed class EvidenceIndexTests
{
    private const ulong Text = 0xffffffff81000000, Module = 0xffffffffc0000000;

    private static EvidenceIndex Index(params CodeSymbol[] symbols) => new(new EvidenceSnapshot
    {
        KernelTextStart = Text, KernelTextEnd = Text + 0x100000, Symbols = symbols,
        Modules = [new ModuleEvidence(0xffff888000001000, "listed", Module, 0x4000, 0x2000, Hidden: false),
                   new ModuleEvidence(0xffff888000002000, "hidden", Module + 0x10000, 0x4000, 0x2000, Hidden: true)],
    });

    [Fact]
    public void Only_the_first_byte_of_a_kernel_or_listed_module_symbol_is_a_function_start()
    {
        // Out of address order on purpose: the index sorts what is not sorted.
        var index = Index(new CodeSymbol(Text + 0x40, 0, "b", 0), new CodeSymbol(Text, 0, "a", 0), new CodeSymbol(Text + 0x80, 0, "c", 0),
            new CodeSymbol(Module + 0x10, 0x20, "m", 1), new CodeSymbol(Module + 0x10010, 0x20, "h", 2), new CodeSymbol(Text + 0x200000, 0, "outside", 0));
        foreach (ulong start in new[] { Text, Text + 0x40, Text + 0x80, Module + 0x10 })
            Assert.True(index.IsFunctionStart(start), $"0x{start:x}");
        // Inside a function, between symbols, before the first, after the last, in a hidden module, outside text.
        foreach (ulong other in new[] { Text + 1, Text + 0x41, Text - 1, Text + 0x81, Module + 0x11, Module + 0x10010, Text + 0x200000, 0UL, ulong.MaxValue })
            Assert.False(index.IsFunctionStart(other), $"0x{other:x}");
        Assert.False(Index().IsFunctionStart(Text));
    }
}
