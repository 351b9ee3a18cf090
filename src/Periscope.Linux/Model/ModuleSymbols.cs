using Periscope.X86;
using System.Buffers;
using System.Buffers.Binary;
using System.Text;
using Periscope.Memory;

namespace Periscope.Linux.Model;

/// <summary>One module symbol as /proc/kallsyms prints it: <c>ADDRESS TYPE NAME\t[MODULE]</c>.</summary>
public readonly record struct ModuleSymbol(ulong Address, char Type, string Name, string Module)
{
    public override string ToString() => $"{Address:x16} {Type} {Name}\t[{Module}]";
}

/// <summary>
/// Every live module's own symbols, in the order and form of /proc/kallsyms after the core symbols
/// (kernel/module/kallsyms.c <c>module_get_kallsym</c> and kernel/kallsyms.c <c>s_show</c>): modules in list order,
/// UNFORMED ones skipped; per module, <c>mod->kallsyms</c> (the core copy once init is done) entries
/// <c>symtab[0..num_symtab)</c> in order, the name from <c>strtab + st_name</c> (at most KSYM_NAME_LEN − 1 bytes),
/// the value <c>st_value</c>, the type letter <c>typetab[i]</c> upper-cased when the module exports that name at that
/// value (found in <c>mod->syms</c>, as <c>is_exported</c> looks only there) and lower-cased otherwise; entries with an
/// empty name are not shown.
/// </summary>
/// <remarks>Guest data throughout: counts capped per module (MaxModuleSymbols) and in total (MaxModuleSymbolsTotal),
/// names capped, tables read in bounded chunks; an unreadable table is a diagnostic and the listing is marked
/// incomplete.</remarks>
public static class ModuleSymbols
{
    private const string Area = "module symbols";

    /// <summary>Symbol table entries read per guest read (bounded again by MaxGuestAllocation).</summary>
    private const int ChunkEntries = 4_096;

    /// <summary>All live modules' symbols, or only those of the module named <paramref name="onlyModule"/>.</summary>
    public static IReadOnlyList<ModuleSymbol> Read(LinuxKernel kernel, string? onlyModule = null)
    {
        var result = new List<ModuleSymbol>();
        if (kernel.Offsets.ModuleSymbols is not { } o)
        {
            kernel.Diagnostics.ReportIncomplete(Area, "BTF lacks struct mod_kallsyms or Elf64_Sym: module symbols are not listed");
            return result;
        }
        var limits = kernel.Limits;
        long budget = limits.MaxModuleSymbolsTotal;
        foreach (var module in kernel.Modules)
        {
            if (module.State == ModuleState.Unformed || (onlyModule is not null && module.Name != onlyModule)) continue;
            if (!ReadModule(kernel, o, module, result, ref budget)) break;
        }
        return result;
    }

    /// <returns>False when the total budget is spent (the caller stops).</returns>
    private static bool ReadModule(LinuxKernel kernel, ModuleSymbolOffsets o, KernelModule module, List<ModuleSymbol> into, ref long budget)
    {
        var r = kernel.Reader;
        var limits = kernel.Limits;
        var diagnostics = kernel.Diagnostics;
        string owner = $"module '{module.Name}'";
        if (!r.TryPointer(module.Address + (ulong)o.Kallsyms, out ulong ks) || ks == 0
            || !r.TryPointer(ks + (ulong)o.Symtab, out ulong symtab) || !r.TryU32(ks + (ulong)o.NumSymtab, out uint count)
            || !r.TryPointer(ks + (ulong)o.Strtab, out ulong strtab) || !r.TryPointer(ks + (ulong)o.Typetab, out ulong typetab))
        {
            diagnostics.ReportIncomplete(Area, $"{owner}: mod_kallsyms unreadable", module.Address);
            return true;
        }
        if (count > limits.MaxModuleSymbols)
        {
            diagnostics.ReportIncomplete(Area, $"{owner}: num_symtab {count} exceeds MaxModuleSymbols = {limits.MaxModuleSymbols}", ks);
            return true;
        }
        if (count > budget)
        {
            diagnostics.ReportIncomplete(Area, $"{owner}: {count} more symbols exceed MaxModuleSymbolsTotal = {limits.MaxModuleSymbolsTotal}", ks);
            return false;
        }
        budget -= count;
        if (count == 0) return true;

        var exported = ReadExports(kernel, o, module);
        var strings = new StringTable(r, strtab, typetab, limits);
        int entrySize = o.SymSize;
        int perChunk = Math.Max(1, Math.Min(ChunkEntries, limits.MaxGuestAllocation / Math.Max(1, entrySize)));
        byte[] table = ArrayPool<byte>.Shared.Rent(perChunk * entrySize);
        byte[] types = ArrayPool<byte>.Shared.Rent(perChunk);
        try
        {
            for (uint first = 0; first < count; first += (uint)perChunk)
            {
                int n = (int)Math.Min((uint)perChunk, count - first);
                var entries = table.AsSpan(0, n * entrySize);
                var letters = types.AsSpan(0, n);
                if (r.Read(symtab + (ulong)first * (ulong)entrySize, entries) != entries.Length || r.Read(typetab + first, letters) != n)
                {
                    diagnostics.ReportIncomplete(Area, $"{owner}: symtab or typetab entries {first}..{first + (uint)n} unreadable", symtab);
                    return true;
                }
                for (int i = 0; i < n; i++)
                {
                    var e = entries.Slice(i * entrySize, entrySize);
                    uint nameOffset = BinaryPrimitives.ReadUInt32LittleEndian(e[o.SymName..]);
                    // st_value is an Elf_Addr: Elf32_Sym's 4 bytes on i386, Elf64_Sym's 8 on x86-64.
                    ulong value = r.PointerSize == 4 ? BinaryPrimitives.ReadUInt32LittleEndian(e[o.SymValue..]) : BinaryPrimitives.ReadUInt64LittleEndian(e[o.SymValue..]);
                    string? name = strings.Get(nameOffset);
                    if (name is null)
                    {
                        diagnostics.ReportIncomplete(Area, $"{owner}: name of symbol {first + (uint)i} unreadable", strtab + nameOffset);
                        continue;
                    }
                    if (name.Length == 0) continue; // s_show: "Some debugging symbols have no name. Ignore them."
                    char type = (char)letters[i];
                    type = exported.Contains((name, value)) ? char.ToUpperInvariant(type) : char.ToLowerInvariant(type);
                    into.Add(new ModuleSymbol(value, type, name, module.Name));
                }
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(table);
            ArrayPool<byte>.Shared.Return(types);
        }
        return true;
    }

    /// <summary>(name, value) of each entry of <c>mod->syms</c> (EXPORT_SYMBOL; is_exported does not look at gpl_syms).</summary>
    private static HashSet<(string, ulong)> ReadExports(LinuxKernel kernel, ModuleSymbolOffsets o, KernelModule module)
    {
        var set = new HashSet<(string, ulong)>();
        if (o.Syms is not { } symsOffset || o.NumSyms is not { } numOffset || o.KernelSymbolValue is not { } valueAt
            || o.KernelSymbolName is not { } nameAt || o.KernelSymbolSize <= 0)
            return set;
        var r = kernel.Reader;
        var limits = kernel.Limits;
        if (!r.TryPointer(module.Address + (ulong)symsOffset, out ulong syms) || !r.TryU32(module.Address + (ulong)numOffset, out uint count) || syms == 0)
            return set;
        if (count > limits.MaxModuleSymbols)
        {
            kernel.Diagnostics.ReportIncomplete(Area, $"module '{module.Name}': num_syms {count} exceeds MaxModuleSymbols = {limits.MaxModuleSymbols}; exported symbols shown lower-case", syms);
            return set;
        }
        for (uint i = 0; i < count; i++)
        {
            ulong entry = syms + (ulong)i * (ulong)o.KernelSymbolSize;
            ulong valueVa = entry + (ulong)valueAt, nameVa = entry + (ulong)nameAt;
            ulong value, namePtr;
            if (o.KernelSymbolRelative)
            {
                if (!r.TryI32(valueVa, out int dv) || !r.TryI32(nameVa, out int dn)) break;
                value = r.Space.Mode.Wrap(valueVa + (ulong)(long)dv);
                namePtr = r.Space.Mode.Wrap(nameVa + (ulong)(long)dn);
            }
            else if (!r.TryPointer(valueVa, out value) || !r.TryPointer(nameVa, out namePtr)) break;
            if (r.ReadCString(namePtr, limits.MaxModuleSymbolNameLength) is { Length: > 0 } name) set.Add((name, value));
        }
        return set;
    }

    /// <summary>
    /// Names from a module's strtab. The core copy lays symtab, strtab and typetab out back to back (layout_symtab), so
    /// the whole strtab is one read when typetab follows it closely; otherwise each name is read on its own.
    /// </summary>
    private sealed class StringTable
    {
        private readonly GuestReader _reader;
        private readonly ulong _strtab;
        private readonly int _maxLength;
        private readonly byte[]? _block;

        public StringTable(GuestReader reader, ulong strtab, ulong typetab, IntrospectionLimits limits)
        {
            _reader = reader;
            _strtab = strtab;
            _maxLength = limits.MaxModuleSymbolNameLength;
            if (typetab > strtab && typetab - strtab <= (ulong)limits.MaxGuestAllocation)
            {
                var block = new byte[(int)(typetab - strtab)];
                if (reader.Read(strtab, block) == block.Length) _block = block;
            }
        }

        public string? Get(uint offset)
        {
            if (_block is { } block && offset < block.Length)
            {
                var rest = block.AsSpan((int)offset);
                int nul = rest.IndexOf((byte)0);
                if (nul >= 0) return Encoding.UTF8.GetString(rest[..Math.Min(nul, _maxLength)]);
            }
            return _reader.ReadCString(_strtab + offset, _maxLength);
        }
    }
}
