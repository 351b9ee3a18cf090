using Periscope.Linux;
using Periscope.Linux.Bpf;
using Periscope.Memory;

namespace Periscope.Integrity.Regions;

/// <summary>A region left out, and why (a size past a limit, a range that wraps, symbols missing).</summary>
public sealed record SkippedRegion(MeasuredRegion? Region, string Reason)
{
    public override string ToString() => Reason;
}

/// <summary>The regions of a kernel, and those left out.</summary>
public sealed record RegionSet(IReadOnlyList<MeasuredRegion> Regions, IReadOnlyList<SkippedRegion> Skipped);

/// <summary>
/// The regions a baseline covers: kernel text and read-only data, the syscall table and the syscall dispatcher
/// (Debian 6.1 dispatches through x64_sys_call's switch, so a table-only check is blind), the IDT, and each module's
/// core text and read-only data, and each loaded eBPF program's JIT code. Sizes come from the guest's own symbols and module layouts, so each is checked
/// against <see cref="IntrospectionLimits.MaxKernelRegionBytes"/> / <see cref="IntrospectionLimits.MaxModuleRegionBytes"/>
/// before anything is measured: a forged _etext or module size yields a skipped region, not gigabytes of pages.
/// </summary>
public static class RegionCatalog
{
    private const ulong MaxTableBytes = 64 * 1024;
    /// <summary>The largest IDT: 256 gates of 16 bytes (x86-64; i386 gates are 8 bytes).</summary>
    private const ulong IdtBytes = 256 * 16;

    public static IReadOnlyList<MeasuredRegion> Kernel(LinuxKernel kernel) => Catalog(kernel).Regions;

    public static RegionSet Catalog(LinuxKernel kernel)
    {
        var limits = kernel.Limits;
        var s = kernel.Symbols;
        var regions = new List<MeasuredRegion>();
        var skipped = new List<SkippedRegion>();
        void Add(MeasuredRegion r, ulong max)
        {
            if (r.Length == 0) return;
            if (r.Start + r.Length < r.Start || !kernel.Reader.IsKernelPointer(r.Start)) skipped.Add(new(r, $"{r.Name}: range 0x{r.Start:x}+0x{r.Length:x} is not kernel memory"));
            else if (r.Length > max) skipped.Add(new(r, $"{r.Name}: length {r.Length} bytes exceeds the limit of {max} bytes"));
            else regions.Add(r);
        }
        void Span(string name, RegionKind kind, string from, string to)
        {
            if (s.TryGetAddress(from, out ulong a) && s.TryGetAddress(to, out ulong b) && b > a) Add(new MeasuredRegion(name, kind, a, b - a), limits.MaxKernelRegionBytes);
            else skipped.Add(new(null, $"{name}: symbols {from}/{to} missing or out of order"));
        }
        Span("kernel text", RegionKind.KernelText, "_stext", "_etext");
        // The tables come by data symbol, or on kernels without data symbols (i386) by structure, IDTR and page tables.
        var tables = kernel.Dispatch;
        if (tables.ReadOnlyData is { } rodata) Add(new MeasuredRegion("kernel rodata", RegionKind.KernelReadOnlyData, rodata.Address, rodata.Length), limits.MaxKernelRegionBytes);
        else skipped.Add(new(null, tables.ReadOnlyDataMissing ?? "kernel rodata: not found"));
        if (tables.SyscallTable is { } table) Add(new MeasuredRegion(table.Name, RegionKind.SyscallTable, table.Address, table.Length), MaxTableBytes);
        else if (kernel.Reader.PointerSize == 4) skipped.Add(new(null, $"syscall table: {tables.SyscallTableMissing}"));
        if (tables.SyscallDispatcher is { } dispatcher) Add(new MeasuredRegion(dispatcher.Name, RegionKind.SyscallDispatcher, dispatcher.Address, dispatcher.Length), MaxTableBytes);
        if (tables.InterruptTable is { } idt) Add(new MeasuredRegion("idt_table", RegionKind.InterruptTable, idt.Address, idt.Length), IdtBytes);
        else if (kernel.Reader.PointerSize == 4) skipped.Add(new(null, $"IDT: {tables.InterruptTableMissing}"));
        foreach (var m in kernel.Modules)
        {
            if (m.Base == 0 || m.TextSize is not { } text || text == 0) continue;
            Add(new MeasuredRegion($"module {m.Name} text", RegionKind.ModuleText, m.Base, text, m.Name), limits.MaxModuleRegionBytes);
            if (m.ReadOnlySize is { } ro && ro > text)
                Add(new MeasuredRegion($"module {m.Name} rodata", RegionKind.ModuleReadOnlyData, m.Base + text, ro - text, m.Name), limits.MaxModuleRegionBytes);
            else if (m.ReadOnlySize is { } small && small < text)
                // Start unknown (0): text and read-only sizes contradict each other, so neither bounds the other.
                skipped.Add(new(new MeasuredRegion($"module {m.Name} rodata", RegionKind.ModuleReadOnlyData, 0, 0, m.Name),
                    $"module {m.Name} rodata: read-only size {small} is below text size {text} (inconsistent layout)"));
        }
        // eBPF JIT images (the programs prog_idr lists; `bpf` finds the ones attached but unlisted): code the kernel wrote
        // at load time and must never change afterwards, measured like module text. Named by id, name and tag, so that a
        // program reloaded with other code is a new region, not a modified one.
        var bpf = new BpfView(kernel).ListedPrograms(out var bpfGaps);
        skipped.AddRange(bpfGaps.Select(g => new SkippedRegion(null, $"bpf programs: {g}")));
        foreach (var p in bpf.Where(p => p.JitAddress != 0 && p.JitLength > 0))
            Add(new MeasuredRegion($"bpf prog {p.Id} {p.Name} {p.Tag} jit", RegionKind.BpfJitCode, p.JitAddress, p.JitLength, $"bpf:{p.Id}"), limits.MaxModuleRegionBytes);
        return new RegionSet(regions, skipped);
    }

    /// <summary>A symbol's extent: up to the next symbol at a higher address, capped for tables.</summary>
    public static (ulong Start, ulong Length)? SymbolExtent(LinuxKernel kernel, string name)
    {
        if (!kernel.Symbols.TryGetAddress(name, out ulong start)) return null;
        if (!kernel.Symbols.TryGetNextAddress(start, out ulong next)) return null;
        return (start, Math.Min(next - start, MaxTableBytes));
    }
}
