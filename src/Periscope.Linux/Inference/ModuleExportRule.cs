using Periscope.Linux.Model;
using Periscope.X86;
using static Periscope.Linux.Inference.StructuralFacts;

namespace Periscope.Linux.Inference;

/// <summary>Where module.syms sits, how far num_syms follows it, and whether kernel_symbol is place-relative.</summary>
public readonly record struct ModuleExportLayout(int Syms, int NumAfter, bool Relative);

/// <summary>
/// module.syms (the EXPORT_SYMBOL table) without BTF: { const struct kernel_symbol *syms; const s32 *crcs; unsigned int
/// num_syms; } before Linux 7.0, { syms; crcs; const u8 *flagstab; num_syms } since. In every module syms is NULL exactly
/// when num_syms is 0 (and flagstab too, in the 7.0 layout), otherwise in the module area with a first kernel_symbol
/// naming an identifier and a module address; some module must export something. kernel_symbol holds place-relative s32
/// offsets with CONFIG_HAVE_ARCH_PREL32_RELOCATIONS (x86), absolute pointers otherwise: the relative form is tried first.
/// The wrong layout fails on an exporting module: its num_syms would be the low half of a pointer, or a NULL flagstab.
/// </summary>
public static class ModuleExportRule
{
    /// <summary>Every (syms, num_syms distance, encoding) that fits all <paramref name="modules"/>' windows, searched from
    /// <paramref name="from"/>; the place-relative encoding only, unless nothing fits it.</summary>
    public static List<ModuleExportLayout> Candidates(IReadOnlyList<byte[]> modules, int from, WordLayout w, VirtualRange area, GuestReader r, int maxSymbols, Action<long> step)
    {
        var found = new List<ModuleExportLayout>();
        foreach (bool relative in (ReadOnlySpan<bool>)[true, false])
        {
            foreach (int after in (ReadOnlySpan<int>)[w.KernelSymbolNumAfterSyms, w.KernelSymbolNumAfterSymsWithFlags])
                for (int s = from; s + after + 4 <= modules.Min(m => m.Length); s += w.PointerSize)
                {
                    step(modules.Count);
                    if (Fits(modules, s, after, relative, w, area, r, maxSymbols)) found.Add(new ModuleExportLayout(s, after, relative));
                }
            if (found.Count > 0) break;
        }
        return found;
    }

    public static bool Fits(IReadOnlyList<byte[]> modules, int s, int numAfter, bool relative, WordLayout w, VirtualRange area, GuestReader r, int maxSymbols)
    {
        int p = w.PointerSize;
        ulong Word(byte[] b, int o) => WordLayout.ReadWord(b, o, p);
        bool any = false;
        foreach (var m in modules)
        {
            ulong table = Word(m, s);
            uint count = System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(m.AsSpan(s + numAfter));
            if ((table == 0) != (count == 0) || count > maxSymbols) return false;
            if (numAfter == w.KernelSymbolNumAfterSymsWithFlags)
            {
                ulong flags = Word(m, s + 2 * p);
                if ((flags == 0) != (count == 0) || (flags != 0 && !area.Contains(flags))) return false;
            }
            if (table == 0) continue;
            any = true;
            if (!area.Contains(table)) return false;
            ulong value, name;
            if (relative)
            {
                if (!r.TryI32(table + (ulong)KernelSymbolValueOffset, out int dv) || !r.TryI32(table + (ulong)KernelSymbolNameOffset, out int dn)) return false;
                value = r.Mode.Wrap(table + (ulong)KernelSymbolValueOffset + (ulong)(long)dv);
                name = r.Mode.Wrap(table + (ulong)KernelSymbolNameOffset + (ulong)(long)dn);
            }
            else if (!r.TryPointer(table, out value) || !r.TryPointer(table + (ulong)p, out name)) return false;
            if (!area.Contains(value) || r.ReadCString(name, 128) is not { Length: > 0 } text || !IsIdentifier(text)) return false;
        }
        return any;
    }

    private static bool IsIdentifier(string s)
    {
        foreach (char c in s) if (!(char.IsAsciiLetterOrDigit(c) || c == '_')) return false;
        return true;
    }
}
