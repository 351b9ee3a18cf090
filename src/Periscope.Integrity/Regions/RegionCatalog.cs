using Periscope.Linux;

namespace Periscope.Integrity.Regions;

/// <summary>
/// The regions a baseline covers: kernel text and read-only data, the syscall table and the syscall dispatcher
/// (Debian 6.1 dispatches through x64_sys_call's switch, so a table-only check is blind), the IDT, and each module's
/// core text and read-only data. Sizes come from the guest's own symbols and module layouts.
/// </summary>
public static class RegionCatalog
{
    private const ulong MaxTableBytes = 64 * 1024;

    public static IReadOnlyList<MeasuredRegion> Kernel(LinuxKernel kernel)
    {
        var s = kernel.Symbols;
        var regions = new List<MeasuredRegion>();
        void Span(string name, RegionKind kind, string from, string to)
        {
            if (s.TryGetAddress(from, out ulong a) && s.TryGetAddress(to, out ulong b) && b > a)
                regions.Add(new MeasuredRegion(name, kind, a, b - a));
        }
        Span("kernel text", RegionKind.KernelText, "_stext", "_etext");
        Span("kernel rodata", RegionKind.KernelReadOnlyData, "__start_rodata", "__end_rodata");
        if (SymbolExtent(kernel, "sys_call_table") is { } table) regions.Add(new MeasuredRegion("sys_call_table", RegionKind.SyscallTable, table.Start, table.Length));
        if (SymbolExtent(kernel, "x64_sys_call") is { } dispatcher) regions.Add(new MeasuredRegion("x64_sys_call", RegionKind.SyscallDispatcher, dispatcher.Start, dispatcher.Length));
        if (s.TryGetAddress("idt_table", out ulong idt)) regions.Add(new MeasuredRegion("idt_table", RegionKind.InterruptTable, idt, 256 * 16));
        foreach (var m in kernel.Modules)
        {
            if (m.Base == 0 || m.TextSize is not { } text || text == 0) continue;
            regions.Add(new MeasuredRegion($"module {m.Name} text", RegionKind.ModuleText, m.Base, text, m.Name));
            if (m.ReadOnlySize is { } ro && ro > text)
                regions.Add(new MeasuredRegion($"module {m.Name} rodata", RegionKind.ModuleReadOnlyData, m.Base + text, ro - text, m.Name));
        }
        return regions;
    }

    /// <summary>A symbol's extent: up to the next symbol at a higher address, capped for tables.</summary>
    public static (ulong Start, ulong Length)? SymbolExtent(LinuxKernel kernel, string name)
    {
        if (!kernel.Symbols.TryGetAddress(name, out ulong start)) return null;
        ulong next = ulong.MaxValue;
        foreach (var sym in kernel.Symbols.All)
            if (sym.Address > start && sym.Address < next) next = sym.Address;
        if (next == ulong.MaxValue) return null;
        return (start, Math.Min(next - start, MaxTableBytes));
    }
}
