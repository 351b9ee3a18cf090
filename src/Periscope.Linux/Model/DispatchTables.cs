using Periscope.Linux.Kallsyms;
using Periscope.Memory;
using Periscope.X86;

namespace Periscope.Linux.Model;

/// <summary>How a table the integrity checks read was found.</summary>
public enum TableFoundBy
{
    /// <summary>Its kallsyms data symbol (a kernel with KALLSYMS_ALL).</summary>
    Symbol,
    /// <summary>By its own contents: the syscall table by its first entries, the addresses of their text symbols.</summary>
    Structure,
    /// <summary>The vCPU's IDTR (base and limit), read from the dump's CPU notes or QMP.</summary>
    IdtRegister,
    /// <summary>The kernel page tables: the read-only mappings that follow _etext.</summary>
    PageTables,
}

/// <summary>A kernel table or range the integrity checks measure: where, how long, its entry size, and how it was found.</summary>
public sealed record KernelTable(string Name, ulong Address, ulong Length, int EntrySize, TableFoundBy FoundBy, string How)
{
    public ulong End => Address + Length;
}

/// <summary>
/// Where the syscall table, the IDT and the kernel's read-only data are. With data symbols (KALLSYMS_ALL) from kallsyms,
/// as always; without them (Debian's 686 kernels; <c>--no-data-symbols</c>) from what the model has: the syscall table by
/// its first entries (the addresses of the text symbols <c>__ia32_sys_restart_syscall</c>, <c>__ia32_sys_exit</c>, ... on
/// i386; <c>__x64_sys_read</c>, ... on x86-64) in the read-only data after _etext, the IDT from the vCPU's IDTR, and the
/// read-only data from the page tables. A table that cannot be found has a reason instead; none is guessed: a first-entry
/// pattern found twice is an ambiguity, not a pick.
/// </summary>
public sealed class DispatchTables
{
    /// <summary>Gates in an x86 IDT (architectural).</summary>
    private const int IdtGates = 256;
    /// <summary>A syscall table's extent when it is found by structure: it ends after its last entry that is a syscall
    /// function, once this many words in a row are not (a hooked entry inside the table is one word, not sixteen).</summary>
    private const int SyscallTableEndRun = 16;
    /// <summary>The data-symbol extent cap for tables (RegionCatalog's, kept here for the symbol path).</summary>
    private const ulong MaxTableBytes = 64 * 1024;
    private const ulong PageSize = 4096;

    /// <summary>The first syscalls of each ABI's table (arch/x86/entry/syscalls/syscall_{32,64}.tbl: numbers 0..4), as
    /// their pt_regs wrappers are named since 4.17 (x86-64) and 5.7 (i386).</summary>
    private static readonly string[] I386First = ["restart_syscall", "exit", "fork", "read", "write"];
    private static readonly string[] X64First = ["read", "write", "open", "close", "newstat"];

    private DispatchTables() { }

    public KernelTable? SyscallTable { get; private init; }
    public string? SyscallTableMissing { get; private init; }
    public KernelTable? InterruptTable { get; private init; }
    public string? InterruptTableMissing { get; private init; }
    public KernelTable? ReadOnlyData { get; private init; }
    public string? ReadOnlyDataMissing { get; private init; }
    /// <summary>The function syscalls dispatch through (x64_sys_call's switch on x86-64; ia32_sys_call on i386), by its text symbol.</summary>
    public KernelTable? SyscallDispatcher { get; private init; }

    public static DispatchTables Find(KernelSymbols symbols, GuestReader reader, IReadOnlyList<CpuState> cpus, IntrospectionLimits limits)
    {
        string? syscallMissing = null, idtMissing = null, rodataMissing = null;
        bool i386 = reader.PointerSize == 4;
        var table = SymbolTable(symbols, "sys_call_table", reader.PointerSize)
            ?? (i386 ? SymbolTable(symbols, "ia32_sys_call_table", 4) : null)
            ?? SyscallTableByStructure(symbols, reader, limits, out syscallMissing);
        var idt = symbols.TryGetAddress("idt_table", out ulong idtVa)
            ? new KernelTable("idt_table", idtVa, IdtGates * 2UL * (ulong)reader.PointerSize, 2 * reader.PointerSize, TableFoundBy.Symbol, "kallsyms idt_table")
            : IdtFromRegister(reader, cpus, out idtMissing);
        KernelTable? rodata = null;
        if (symbols.TryGetAddress("__start_rodata", out ulong rs) && symbols.TryGetAddress("__end_rodata", out ulong re) && re > rs)
            rodata = new KernelTable("kernel rodata", rs, re - rs, 1, TableFoundBy.Symbol, "kallsyms __start_rodata/__end_rodata");
        else rodata = ReadOnlyAfterText(symbols, reader, limits, out rodataMissing);
        string dispatcherName = i386 ? "ia32_sys_call" : "x64_sys_call";
        var dispatcher = SymbolTable(symbols, dispatcherName, 1);
        return new DispatchTables
        {
            SyscallTable = table, SyscallTableMissing = table is null ? syscallMissing ?? "no sys_call_table" : null,
            InterruptTable = idt, InterruptTableMissing = idt is null ? idtMissing : null,
            ReadOnlyData = rodata, ReadOnlyDataMissing = rodata is null ? rodataMissing : null,
            SyscallDispatcher = dispatcher,
        };
    }

    /// <summary>A symbol's extent: up to the next symbol at a higher address, capped for tables.</summary>
    private static KernelTable? SymbolTable(KernelSymbols symbols, string name, int entrySize)
    {
        if (!symbols.TryGetAddress(name, out ulong start) || !symbols.TryGetNextAddress(start, out ulong next)) return null;
        return new KernelTable(name, start, Math.Min(next - start, MaxTableBytes), entrySize, TableFoundBy.Symbol, $"kallsyms {name}, up to the next symbol");
    }

    /// <summary>The kernel's read-only data after _etext: from the page after _etext up to the first page that is writable
    /// or unmapped (mark_rodata_ro leaves [_text, __end_rodata) read-only; .data follows, writable).</summary>
    private static KernelTable? ReadOnlyAfterText(KernelSymbols symbols, GuestReader reader, IntrospectionLimits limits, out string? missing)
    {
        missing = null;
        if (!symbols.TryGetAddress("_etext", out ulong etext))
        {
            missing = "kernel rodata: kallsyms has neither __start_rodata/__end_rodata nor _etext";
            return null;
        }
        ulong start = (etext + PageSize - 1) & ~(PageSize - 1);
        ulong va = start;
        ulong cap = start + (ulong)limits.MaxReadOnlyDataSearchBytes;
        while (va < cap && reader.Space.TryTranslate(va, out Translation t) && (t.Flags & PageFlags.Writable) == 0) va += PageSize;
        if (va == start)
        {
            missing = $"kernel rodata: the page after _etext (0x{start:x}) is {(reader.Space.TryTranslate(start, out ulong _) ? "writable" : "unmapped")}, not read-only data";
            return null;
        }
        if (va >= cap)
        {
            missing = $"kernel rodata: read-only mappings after _etext run past the limit MaxReadOnlyDataSearchBytes ({limits.MaxReadOnlyDataSearchBytes} bytes)";
            return null;
        }
        return new KernelTable("kernel rodata", start, va - start, 1, TableFoundBy.PageTables,
            "no __start_rodata/__end_rodata in kallsyms: the read-only pages from the page after _etext to the first writable one");
    }

    private static KernelTable? IdtFromRegister(GuestReader reader, IReadOnlyList<CpuState> cpus, out string? missing)
    {
        int gate = 2 * reader.PointerSize;
        ulong bytes = IdtGates * (ulong)gate;
        var idts = cpus.Where(c => c.Idt is not null).Select(c => c.Idt!.Value).ToList();
        if (idts.Count == 0)
        {
            missing = "kallsyms has no idt_table and the memory source gives no vCPU IDTR (a dump without QEMU's CPU notes?)";
            return null;
        }
        // Linux loads one IDT on every CPU; differing IDTRs are not ours to pick from.
        if (idts.Select(i => i.Base).Distinct().Count() != 1)
        {
            missing = $"kallsyms has no idt_table and the vCPUs' IDTRs differ ({string.Join(", ", idts.Select(i => $"0x{i.Base:x}").Distinct())})";
            return null;
        }
        var idtr = idts[0];
        if (!reader.IsKernelPointer(idtr.Base) || idtr.Limit + 1UL < bytes)
        {
            missing = $"kallsyms has no idt_table and the IDTR (base 0x{idtr.Base:x}, limit 0x{idtr.Limit:x}) is not a kernel IDT of {IdtGates} {gate}-byte gates";
            return null;
        }
        missing = null;
        return new KernelTable("idt_table", idtr.Base, bytes, gate, TableFoundBy.IdtRegister,
            $"no idt_table in kallsyms: the vCPU's IDTR (base 0x{idtr.Base:x}, limit 0x{idtr.Limit:x}), read through the kernel page tables");
    }

    /// <summary>
    /// The syscall table by its first five entries: the one pointer-aligned place in the read-only data after _etext
    /// (up to __init_begin or the search limit) holding the addresses of the ABI's first five syscall functions in order.
    /// Its length runs to its last entry that is a syscall function (a symbol start named <c>__ia32_sys_*</c> /
    /// <c>__x64_sys_*</c>, or sys_ni_syscall), within MaxSyscallTableEntries.
    /// </summary>
    private static KernelTable? SyscallTableByStructure(KernelSymbols symbols, GuestReader reader, IntrospectionLimits limits, out string? missing)
    {
        missing = null;
        bool i386 = reader.PointerSize == 4;
        string prefix = i386 ? "__ia32_sys_" : "__x64_sys_";
        string name = i386 ? "ia32_sys_call_table" : "sys_call_table";
        var first = i386 ? I386First : X64First;
        int word = reader.PointerSize;
        var pattern = new byte[first.Length * word];
        for (int i = 0; i < first.Length; i++)
        {
            if (!symbols.TryGetAddress(prefix + first[i], out ulong fn))
            {
                missing = $"kallsyms has no {name} and no {prefix}{first[i]} to find it by";
                return null;
            }
            WriteWord(pattern.AsSpan(i * word, word), fn);
        }
        if (!symbols.TryGetAddress("_etext", out ulong etext))
        {
            missing = $"kallsyms has no {name} and no _etext to search after";
            return null;
        }
        ulong start = (etext + PageSize - 1) & ~(PageSize - 1);
        ulong end = start + (ulong)limits.MaxReadOnlyDataSearchBytes;
        if (symbols.TryGetAddress("__init_begin", out ulong initBegin) && initBegin > start && initBegin < end) end = initBegin;

        var hits = new List<ulong>();
        const int Chunk = 1 << 20;
        var buffer = new byte[Chunk + pattern.Length];
        for (ulong va = start; va < end && hits.Count < 2; va += Chunk)
        {
            int want = (int)Math.Min((ulong)buffer.Length, end - va);
            int got = reader.Space.Read(va, buffer.AsSpan(0, want));
            var span = buffer.AsSpan(0, got);
            for (int at = 0; (at = IndexFrom(span, pattern, at)) >= 0 && hits.Count < 2; at++)
                if ((va + (ulong)at) % (ulong)word == 0 && at < Chunk) hits.Add(va + (ulong)at);
            if (got < want) break; // an unmapped page ends the read-only data
        }
        if (hits.Count != 1)
        {
            missing = hits.Count == 0
                ? $"kallsyms has no {name}, and no pointer array starting {prefix}{string.Join(", ", first)} is in the {end - start} bytes after _etext"
                : $"kallsyms has no {name}, and its first entries ({prefix}{first[0]}...) appear at 0x{hits[0]:x} and 0x{hits[1]:x}: ambiguous, not guessed";
            return null;
        }

        ulong table = hits[0];
        int last = -1, run = 0;
        for (int i = 0; i < limits.MaxSyscallTableEntries && run < SyscallTableEndRun; i++)
        {
            if (!reader.TryPointer(table + (ulong)(i * word), out ulong entry)) break;
            bool syscall = symbols.TryFindContaining(entry, out var sym, out ulong offset) && offset == 0
                && (sym.Name.StartsWith(prefix, StringComparison.Ordinal) || sym.Name == "sys_ni_syscall");
            if (syscall) { last = i; run = 0; }
            else run++;
        }
        int count = last + 1;
        return new KernelTable(name, table, (ulong)(count * word), word, TableFoundBy.Structure,
            $"no {name} in kallsyms: the one array after _etext starting {prefix}{first[0]}, {prefix}{first[1]}, ..., {count} entries up to its last syscall function");
    }

    private static int IndexFrom(ReadOnlySpan<byte> span, ReadOnlySpan<byte> pattern, int from)
    {
        if (from >= span.Length) return -1;
        int i = span[from..].IndexOf(pattern);
        return i < 0 ? -1 : from + i;
    }

    private static void WriteWord(Span<byte> into, ulong value)
    {
        if (into.Length == 4) System.Buffers.Binary.BinaryPrimitives.WriteUInt32LittleEndian(into, (uint)value);
        else System.Buffers.Binary.BinaryPrimitives.WriteUInt64LittleEndian(into, value);
    }
}
