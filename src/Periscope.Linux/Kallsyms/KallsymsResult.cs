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
/// <paramref name="AddressEncoding"/> is <c>"absolute"</c>.</param>
/// <param name="RelativeBaseVa"><c>kallsyms_relative_base</c>; 0 for absolute addresses.</param>
/// <param name="RelativeBase">The value of <c>kallsyms_relative_base</c>. It is relocated at boot, so on x86-64 it is
/// the run-time <c>_text</c> (a KASLR oracle); 0 for absolute addresses.</param>
/// <param name="SymbolCount"><c>kallsyms_num_syms</c>.</param>
/// <param name="HasSeqsOfNames">Whether <c>kallsyms_seqs_of_names</c> (6.2+, backported to Debian 6.1) is present.</param>
/// <param name="TableOrder"><c>"pre-6.4"</c> (offsets, relative_base, num_syms, names, markers, [seqs], token_table,
/// token_index) or <c>"6.4+"</c> (num_syms, names, markers, token_table, token_index, offsets, relative_base, seqs).</param>
/// <param name="AddressEncoding"><c>"relative+absolute-percpu"</c>, <c>"relative"</c> or <c>"absolute"</c>.</param>
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
    string TableOrder,
    string AddressEncoding,
    ulong SeqsOfNamesVa = 0)
{
    public const string OrderPre64 = "pre-6.4";
    public const string Order64 = "6.4+";
    public const string EncodingAbsolutePercpu = "relative+absolute-percpu";
    public const string EncodingRelative = "relative";
    public const string EncodingAbsolute = "absolute";

    /// <summary>All fields, addresses in hex.</summary>
    public override string ToString() =>
        $"kallsyms {{ token_table 0x{TokenTableVa:x}, token_index 0x{TokenIndexVa:x}, markers 0x{MarkersVa:x}, " +
        $"names 0x{NamesVa:x}, num_syms 0x{NumSymsVa:x} = {SymbolCount}, offsets 0x{OffsetsVa:x}, " +
        $"relative_base 0x{RelativeBaseVa:x} = 0x{RelativeBase:x}, seqs_of_names {(HasSeqsOfNames ? $"0x{SeqsOfNamesVa:x}" : "none")}, " +
        $"order {TableOrder}, addresses {AddressEncoding} }}";
}
