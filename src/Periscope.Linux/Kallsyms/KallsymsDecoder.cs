using Periscope.Memory;

namespace Periscope.Linux.Kallsyms;

/// <summary>
/// Finds and decodes the kernel's kallsyms tables in a kernel image with no profile, System.map or debug info,
/// following linux-discovery.md §4.3. Handles the ≤6.3 and ≥6.4 table orders, with and without
/// <c>kallsyms_seqs_of_names</c>, 2-byte "big symbol" lengths, ABSOLUTE_PERCPU and plain relative offsets, and
/// u64 <c>kallsyms_addresses</c>.
/// </summary>
/// <remarks>
/// The image is guest memory and treated as hostile: every count is capped, every read is bounds-checked and all
/// searches are bounded, so bad data gives <see langword="null"/> plus diagnostics, never an exception or a hang.
/// Tables of 2,048 symbols or fewer (fewer than 9 markers) are not recognised; real kernels have tens of
/// thousands (Debian 6.1: 94,266; Debian 6.12: 163,014).
/// </remarks>
public static class KallsymsDecoder
{
    /// <summary>Candidate token tables (digit-pattern hits) examined before giving up.</summary>
    private const int MaxAnchorHits = 4096;

    /// <summary>Candidates with a valid token table (and so worth the costlier markers/names search) examined
    /// before giving up. A real image has one.</summary>
    private const int MaxTokenTables = 8;

    /// <summary>Rejected candidates reported individually in the diagnostics.</summary>
    private const int MaxReportedRejections = 16;

    /// <summary>
    /// Decodes kallsyms from <paramref name="image"/>, whose byte 0 is at kernel virtual address
    /// <paramref name="imageVa"/> (normally the physical bytes from <c>_text</c> on, about 64 MiB).
    /// </summary>
    /// <returns>The symbols and table locations, or <see langword="null"/> when no valid table was found; then
    /// <paramref name="diagnostics"/> says why each candidate was rejected. Nothing is added on success.</returns>
    /// <exception cref="ArgumentNullException"><paramref name="limits"/> or <paramref name="diagnostics"/> is null.</exception>
    /// <exception cref="ArgumentOutOfRangeException">The image would extend past the top of the address space.</exception>
    /// <param name="pointerSize">sizeof(long) of the kernel: 8 on x86-64, 4 on i386.</param>
    public static KallsymsResult? Decode(ReadOnlySpan<byte> image, ulong imageVa, IntrospectionLimits limits,
        ICollection<string> diagnostics, int pointerSize = 8)
    {
        ArgumentNullException.ThrowIfNull(limits);
        ArgumentNullException.ThrowIfNull(diagnostics);
        if (image.Length > 0 && imageVa > ulong.MaxValue - (ulong)(image.Length - 1))
            throw new ArgumentOutOfRangeException(nameof(imageVa),
                $"An image of 0x{image.Length:x} bytes at 0x{imageVa:x} would wrap past the top of the address space.");

        ReadOnlySpan<byte> anchorPattern = KallsymsTokenTable.DigitsAnchor;
        var rejections = new List<string>();
        int hits = 0, tokenTables = 0, unreported = 0;
        int from = 0;
        while (from < image.Length)
        {
            int relative = image[from..].IndexOf(anchorPattern);
            if (relative < 0)
                break;
            int anchor = from + relative;
            // The search pattern leaves out the NUL after "9" (see DigitsAnchor): check it here.
            if (anchor + anchorPattern.Length >= image.Length || image[anchor + anchorPattern.Length] != 0)
            {
                from = anchor + 2;
                continue;
            }
            if (++hits > MaxAnchorHits)
            {
                rejections.Add($"kallsyms: stopped after {MaxAnchorHits} token-table candidates");
                hits--;
                break;
            }
            if (tokenTables == MaxTokenTables)
            {
                rejections.Add($"kallsyms: stopped after {MaxTokenTables} valid-looking token tables");
                hits--;
                break;
            }
            var result = TryCandidate(image, imageVa, anchor, limits, pointerSize, ref tokenTables, out string why);
            if (result is not null)
                return result;
            if (rejections.Count < MaxReportedRejections)
                rejections.Add($"kallsyms: candidate token table with '0' at image+0x{anchor:x} (0x{imageVa + (ulong)anchor:x}): {why}");
            else
                unreported++;
            from = anchor + 2;
        }

        if (hits == 0)
        {
            diagnostics.Add($"kallsyms: the token-table anchor (\"0\\0\" … \"9\\0\") does not occur in the 0x{image.Length:x} " +
                            $"bytes at 0x{imageVa:x}");
            return null;
        }
        foreach (string r in rejections)
            diagnostics.Add(r);
        if (unreported > 0)
            diagnostics.Add($"kallsyms: {unreported} more candidates rejected");
        diagnostics.Add($"kallsyms: none of the {hits} candidate token tables in the 0x{image.Length:x} bytes at 0x{imageVa:x} validated");
        return null;
    }

    private static KallsymsResult? TryCandidate(ReadOnlySpan<byte> image, ulong imageVa, int anchor,
        IntrospectionLimits limits, int pointerSize, ref int tokenTables, out string reason)
    {
        var tokens = KallsymsTokenTable.TryParse(image, anchor, out reason);
        if (tokens is null)
            return null;
        tokenTables++;

        var names = KallsymsNames.TryLocate(image, imageVa, tokens.TableOffset, limits, out reason);
        if (names is null)
            return null;

        var addresses = KallsymsAddresses.TryDecode(image, imageVa, names, tokens, out reason, pointerSize);
        if (addresses is null)
            return null;

        int n = names.Count;
        // seqs_of_names: between the markers and the token table (≤6.3), or after the address table (≥6.4).
        long seqsOffset;
        long seqsLimit;
        if (addresses.Order == KallsymsTableOrder.Pre64)
        {
            seqsOffset = ImageBytes.AlignUp(imageVa, names.MarkersOffset + 4L * names.MarkerCount, pointerSize);
            seqsLimit = tokens.TableOffset;
        }
        else
        {
            seqsOffset = ImageBytes.AlignUp(imageVa, addresses.TableEnd, addresses.Alignment);
            seqsLimit = image.Length;
        }
        int[]? byName = KallsymsAddresses.TryReadSeqsOfNames(image, seqsOffset, seqsLimit, n);
        bool hasSeqs = byName is not null;

        // The names stay compressed: each is expanded when asked for (lookups by name binary-search seqs_of_names).
        var nameIndex = KallsymsNames.TryIndex(image, names, tokens, limits, byName, out reason);
        if (nameIndex is null)
            return null;

        ulong Va(long offset) => imageVa + (ulong)offset;
        var location = new KallsymsLocation(
            TokenTableVa: Va(tokens.TableOffset),
            TokenIndexVa: Va(tokens.IndexOffset),
            MarkersVa: Va(names.MarkersOffset),
            NamesVa: Va(names.NamesOffset),
            NumSymsVa: Va(names.NumSymsOffset),
            OffsetsVa: Va(addresses.TableOffset),
            RelativeBaseVa: addresses.RelativeBaseOffset >= 0 ? Va(addresses.RelativeBaseOffset) : 0,
            RelativeBase: addresses.RelativeBase,
            SymbolCount: n,
            HasSeqsOfNames: hasSeqs,
            TableOrder: addresses.Order,
            AddressEncoding: addresses.Encoding,
            SeqsOfNamesVa: hasSeqs ? Va(seqsOffset) : 0);

        reason = "";
        return new KallsymsResult(new KernelSymbols(addresses.Addresses, nameIndex), location);
    }
}
