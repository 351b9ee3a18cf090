using Periscope.Linux.Kallsyms;
using Periscope.Linux.Model;
using Periscope.Memory;

namespace Periscope.Linux.Inference;

/// <summary>One layout of struct taint_flag that kernel/panic.c's taint_flags[] table fits: its stride and where c_true,
/// c_false and module sit in an entry.</summary>
public sealed record TaintFlagLayout(int Stride, int CTrue, int CFalse, int? Module)
{
    /// <summary>The lowest member offset (struct taint_flag starts with its chars).</summary>
    public int First => Math.Min(CTrue, Math.Min(CFalse, Module ?? int.MaxValue));
}

/// <summary>
/// module->taints and the taint_flags[] table without BTF, from what the data satisfies.
/// The table: struct taint_flag { char c_true; char c_false; bool module; [const char *desc; (6.12+)] } indexed by TAINT_*
/// number, so entry i holds <see cref="KernelMacros.TaintFlagLetters"/>[i] at one offset of one stride, 'G' then ' ' at
/// another, and the module flag (1 exactly for P, F, C, O, E) at a third — until 7.x, whose struct taint_flag has no
/// module member (module_flags_taint prints every set bit): when no offset holds the module flags, the layouts of c_true
/// and c_false alone are returned, with Module null. Every stride and offset up to <see cref="MaxStride"/> is tried, so
/// two layouts that fit both show up.
/// module->taints: an unsigned long whose value in every listed module uses only the table's module bits and lies within
/// the kernel's tainted_mask (add_taint_module sets both), non-zero in at least one module.
/// </summary>
public static class ModuleTaintRule
{
    /// <summary>struct taint_flag is 3 bytes in 6.1 and 16 with its desc pointer (6.12+); a larger stride is not that table.</summary>
    public const int MaxStride = 64;

    /// <summary>Entries read to learn which TAINT_* bits are module flags: module->taints is an unsigned long.</summary>
    public const int MaxEntries = 64;

    /// <summary>Bytes of the table the rule reads: at most <see cref="MaxEntries"/> entries of the largest stride.</summary>
    public const int TableBytes = MaxEntries * MaxStride;

    /// <summary>Functions whose code indexes taint_flags: print_tainted (its loop, out of line as _print_tainted since 6.12)
    /// and module_flags_taint (kernel/module/main.c; inlined into module_flags on some builds).</summary>
    public static readonly string[] TableUsers = ["print_tainted", "_print_tainted", "module_flags_taint", "module_flags"];

    /// <summary>
    /// The taint_flags table: kallsyms' data symbol, else (a kernel without data symbols) the one address that the code
    /// of <see cref="TableUsers"/> refers to, possibly at a member of the first entry, whose bytes fit one layout with a
    /// member at offset 0 (struct taint_flag starts with its chars: a layout shifted by a byte would fit the same bytes).
    /// Null when none or several fit. Bounded: the functions' code (MaxDataFinderCodeBytes each) and one
    /// <see cref="TableBytes"/> read per referenced address.
    /// </summary>
    public static ulong? FindTable(GuestReader r, KernelSymbols symbols, IntrospectionLimits limits, Action<long>? step = null)
    {
        if (symbols.TryGetAddress("taint_flags", out ulong table)) return table;
        step ??= _ => { };
        var fits = new HashSet<ulong>();
        var refs = TableUsers.SelectMany(f => References(r, symbols, f, limits)).Distinct().Take(MaxReferences);
        var bytes = new byte[TableBytes + MaxStride];
        foreach (ulong at in refs)
        {
            ulong start = at - MaxStride + 1;
            int n = r.Space.Read(start, bytes);
            if (n < MaxStride) continue;
            for (int k = 0; k < MaxStride; k++)
            {
                var span = bytes.AsSpan(MaxStride - 1 - k, n - (MaxStride - 1 - k));
                if (span[0] is not ((byte)'P' or (byte)'G')) continue; // a member at offset 0: c_true 'P' or c_false 'G'
                if (Layouts(span, step).Any(l => l.First == 0)) fits.Add(at - (ulong)k);
            }
        }
        return fits.Count == 1 ? fits.First() : null;
    }

    /// <summary>
    /// Kernel addresses in <paramref name="function"/>'s first MaxDataFinderCodeBytes of code: immediates and memory
    /// displacements, indexed ones included (print_tainted's loop reads taint_flags[i].c_true as
    /// [table + i*3] on 6.1), and past the first ret (its "Not tainted" branch returns before the loop). Code past the
    /// function's end only adds candidates, each checked against the table's bytes.
    /// </summary>
    private static IEnumerable<ulong> References(GuestReader r, KernelSymbols symbols, string function, IntrospectionLimits limits)
    {
        if (!symbols.TryGetAddress(function, out ulong at)) return [];
        var code = new byte[limits.MaxDataFinderCodeBytes];
        int n = r.Space.Read(at, code);
        if (n < 16) return [];
        var found = new List<ulong>();
        ulong mask = r.PointerSize == 8 ? ulong.MaxValue : uint.MaxValue;
        var decoder = Iced.Intel.Decoder.Create(r.PointerSize * 8, new Iced.Intel.ByteArrayCodeReader(code, 0, n), at);
        while (decoder.IP < at + (ulong)n)
        {
            decoder.Decode(out var ins);
            if (ins.IsInvalid) continue;
            for (int i = 0; i < ins.OpCount; i++)
            {
                var kind = ins.GetOpKind(i);
                ulong a = kind == Iced.Intel.OpKind.Memory ? ins.MemoryDisplacement64 & mask
                    : kind is Iced.Intel.OpKind.Immediate32 or Iced.Intel.OpKind.Immediate32to64 or Iced.Intel.OpKind.Immediate64 ? ins.GetImmediate(i) & mask : 0;
                if (a > 0xfff && r.IsKernelPointer(a)) found.Add(a);
            }
        }
        return found;
    }

    /// <summary>Distinct addresses the table users' code refers to that are tried as the table.</summary>
    private const int MaxReferences = 256;

    /// <summary>Every (stride, c_true, c_false, module) the table's bytes fit. <paramref name="table"/> holds the bytes read
    /// from taint_flags (shorter when the read stopped early: a stride whose entries it does not hold fits nothing).</summary>
    public static List<TaintFlagLayout> Layouts(ReadOnlySpan<byte> table, Action<long> step)
    {
        var found = new List<TaintFlagLayout>();
        var withoutModule = new List<TaintFlagLayout>();
        string letters = KernelMacros.TaintFlagLetters;
        for (int stride = 3; stride <= MaxStride && letters.Length * stride <= table.Length; stride++)
        {
            step(stride);
            for (int c = 0; c < stride; c++)
            {
                if (!Column(table, stride, c, i => letters[i])) continue;
                for (int f = 0; f < stride; f++)
                {
                    if (f == c || !Column(table, stride, f, i => i == 0 ? KernelMacros.TaintFlagProprietaryFalse : KernelMacros.TaintFlagOtherFalse)) continue;
                    withoutModule.Add(new TaintFlagLayout(stride, c, f, null));
                    for (int m = 0; m < stride; m++)
                        if (m != c && m != f && Column(table, stride, m, i => KernelMacros.TaintFlagModuleLetters.Contains(letters[i]) ? (char)1 : (char)0))
                            found.Add(new TaintFlagLayout(stride, c, f, m));
                }
            }
        }
        return found.Count > 0 ? found : withoutModule;
    }

    private static bool Column(ReadOnlySpan<byte> table, int stride, int at, Func<int, char> expected)
    {
        for (int i = 0; i < KernelMacros.TaintFlagLetters.Length; i++)
            if (table[i * stride + at] != expected(i)) return false;
        return true;
    }

    /// <summary>
    /// The TAINT_* bits whose taint_flags entry says module = true, over the entries that look like taint_flag entries
    /// (an ASCII capital for c_true, a printable c_false, module 0 or 1); the first entry that does not ends the table.
    /// Without a module member (7.x) every entry's bit: any taint may then be a module's.
    /// </summary>
    public static ulong ModuleBits(ReadOnlySpan<byte> table, TaintFlagLayout l)
    {
        ulong bits = 0;
        for (int i = 0; i < MaxEntries && (i + 1) * l.Stride <= table.Length; i++)
        {
            var e = table.Slice(i * l.Stride, l.Stride);
            if (e[l.CTrue] is < (byte)'A' or > (byte)'Z' || e[l.CFalse] is < 0x20 or > 0x7e || (l.Module is { } m && e[m] > 1)) break;
            if (l.Module is not { } module || e[module] == 1) bits |= 1UL << i;
        }
        return bits;
    }

    /// <summary>
    /// Offsets (pointer-aligned, from <paramref name="from"/>) of a word that in every module window uses only
    /// <paramref name="moduleBits"/> and, when known, lies within <paramref name="taintedMask"/>, non-zero in at least
    /// one. <paramref name="zeroEverywhere"/> counts the words that pass all but the last test: the candidates when no
    /// listed module is tainted, which no evidence tells apart.
    /// </summary>
    public static List<int> Candidates(IReadOnlyList<byte[]> modules, int from, int pointerSize, ulong moduleBits, ulong? taintedMask,
        Action<long> step, out int zeroEverywhere)
    {
        var found = new List<int>();
        zeroEverywhere = 0;
        if (modules.Count == 0) return found;
        ulong allowed = moduleBits & (taintedMask ?? ulong.MaxValue);
        int length = modules.Min(w => w.Length);
        for (int o = from; o + pointerSize <= length; o += pointerSize)
        {
            step(modules.Count);
            bool fits = true, set = false;
            foreach (var w in modules)
            {
                ulong v = WordLayout.ReadWord(w, o, pointerSize);
                if ((v & ~allowed) != 0) { fits = false; break; }
                set |= v != 0;
            }
            if (!fits) continue;
            if (set) found.Add(o);
            else zeroEverywhere++;
        }
        return found;
    }
}
