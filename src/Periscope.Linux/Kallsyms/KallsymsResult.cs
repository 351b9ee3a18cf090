namespace Periscope.Linux.Kallsyms;

/// <summary>The decoded symbol table and where its parts were found.</summary>
public sealed record KallsymsResult(KernelSymbols Symbols, KallsymsLocation Location);

/// <summary>
/// Kernel virtual addresses of the kallsyms tables, as found in the image.
/// </summary>
/// <param name="TokenTableVa"><c>kallsyms_token_table</c>.</param>
/// <param name="TokenIndexVa"><c>kallsyms_token_index</c> (256 × u16).</param>
/// <param name="MarkersVa"><c>kallsyms_markers</c> (u32 per 256 names).</param>
/// <param name="NamesVa"><c>kallsyms_names</c>.</param>
/// <param name="NumSymsVa"><c>kallsyms_num_syms</c>.</param>
/// <param name="OffsetsVa"><c>kallsyms_offsets</c> (s32 × N), or <c>kallsyms_addresses</c> (u64 × N) when
/// <paramref name="AddressEncoding"/> is <see cref="KallsymsAddressEncoding.Absolute"/>.</param>
/// <param name="RelativeBaseVa"><c>kallsyms_relative_base</c>; 0 when the kernel has none (absolute addresses, or
/// place-relative offsets since Linux 7.0).</param>
/// <param name="RelativeBase">The value of <c>kallsyms_relative_base</c>. It is relocated at boot, so on x86-64 it is
/// the run-time <c>_text</c> (a KASLR oracle); 0 when absent.</param>
/// <param name="SymbolCount"><c>kallsyms_num_syms</c>.</param>
/// <param name="HasSeqsOfNames">Whether <c>kallsyms_seqs_of_names</c> (6.2+, backported to Debian 6.1) is present.</param>
/// <param name="TableOrder">Where the address table sits relative to the name tables.</param>
/// <param name="AddressEncoding">How <c>kallsyms_offsets</c> encode addresses.</param>
/// <param name="SeqsOfNamesVa"><c>kallsyms_seqs_of_names</c>; 0 when absent.</param>
public sealed record KallsymsLocation(
    ulong TokenTableVa,
    ulong TokenIndexVa,
    ulong MarkersVa,
    ulong NamesVa,
    ulong NumSymsVa,
    ulong OffsetsVa,
    ulong RelativeBaseVa,
    ulong RelativeBase,
    int SymbolCount,
    bool HasSeqsOfNames,
    KallsymsTableOrder TableOrder,
    KallsymsAddressEncoding AddressEncoding,
    ulong SeqsOfNamesVa = 0)
{
    /// <summary>All fields, addresses in hex.</summary>
    public override string ToString() =>
        $"kallsyms {{ token_table 0x{TokenTableVa:x}, token_index 0x{TokenIndexVa:x}, markers 0x{MarkersVa:x}, " +
        $"names 0x{NamesVa:x}, num_syms 0x{NumSymsVa:x} = {SymbolCount}, offsets 0x{OffsetsVa:x}, " +
        $"relative_base 0x{RelativeBaseVa:x} = 0x{RelativeBase:x}, seqs_of_names {(HasSeqsOfNames ? $"0x{SeqsOfNamesVa:x}" : "none")}, " +
        $"order {TableOrder.Describe()}, addresses {AddressEncoding.Describe()} }}";
}

/// <summary>The order in which scripts/kallsyms.c emits the tables.</summary>
public enum KallsymsTableOrder
{
    /// <summary>≤ 6.3: offsets, relative_base, num_syms, names, markers, [seqs_of_names], token_table, token_index.</summary>
    Pre64,
    /// <summary>≥ 6.4: num_syms, names, markers, token_table, token_index, offsets, [relative_base], seqs_of_names
    /// (relative_base is gone since 7.0).</summary>
    Post64,
}

/// <summary>How the entries of <c>kallsyms_offsets</c> (or <c>kallsyms_addresses</c>) give a symbol's address.</summary>
public enum KallsymsAddressEncoding
{
    /// <summary>x86-64 SMP before 6.15: offset ≥ 0 is an absolute per-CPU value, else <c>relative_base − 1 − offset</c>.</summary>
    RelativeAbsolutePercpu,
    /// <summary><c>relative_base + (u32)offset</c> (KALLSYMS_BASE_RELATIVE without ABSOLUTE_PERCPU).</summary>
    Relative,
    /// <summary>Linux 7.0+ ("kallsyms: Get rid of kallsyms relative base"): each s32 is relative to its own address,
    /// <c>&amp;kallsyms_offsets[i] + offset</c>, so the table needs no relocation and has no base.</summary>
    PlaceRelative,
    /// <summary>u64 <c>kallsyms_addresses</c> (kernels without KALLSYMS_BASE_RELATIVE).</summary>
    Absolute,
}

public static class KallsymsLayoutNames
{
    public static string Describe(this KallsymsTableOrder order) => order switch
    {
        KallsymsTableOrder.Pre64 => "pre-6.4",
        _ => "6.4+",
    };

    public static string Describe(this KallsymsAddressEncoding encoding) => encoding switch
    {
        KallsymsAddressEncoding.RelativeAbsolutePercpu => "relative+absolute-percpu",
        KallsymsAddressEncoding.Relative => "relative",
        KallsymsAddressEncoding.PlaceRelative => "place-relative",
        _ => "absolute",
    };
}
