using Periscope.Memory;

namespace Periscope.Linux.Kallsyms;

/// <summary>Where <c>kallsyms_num_syms</c>, <c>kallsyms_names</c> and <c>kallsyms_markers</c> are (image offsets).</summary>
internal sealed record KallsymsNameTable(int NumSymsOffset, int NamesOffset, int Count, int MarkersOffset, uint[] Markers)
{
    /// <summary>Markers every 256 names, so ⌈N/256⌉ of them.</summary>
    public int MarkerCount => (Count + 255) >> 8;
}

/// <summary>
/// Finds <c>kallsyms_markers</c>, <c>kallsyms_names</c> and <c>kallsyms_num_syms</c> from the token table
/// (linux-discovery.md §4.3 steps 4–5) and decodes the names (step 7). The markers and names precede the token
/// table in both table orders, and <c>num_syms</c> always sits right before the names.
/// </summary>
internal static class KallsymsNames
{
    /// <summary>A markers candidate needs at least this many increasing steps after its leading 0.</summary>
    private const int MinMarkerSteps = 8;

    /// <summary>The longest name entry: 2 length bytes and up to KSYM_NAME_LEN (512) token bytes.</summary>
    private const int MaxEntryBytes = 2 + 512;

    /// <summary>Steps between markers: 256 entries of at least 1 byte (permissive) up to 256 maximal entries.</summary>
    private const uint MinMarkerStep = 256;
    private const uint MaxMarkerStep = 256 * MaxEntryBytes;

    /// <summary>Backward scan window for the markers: 1 MiB plus room for <c>seqs_of_names</c> (3–4 bytes per symbol).</summary>
    private const long MarkerScanBase = 1 << 20;

    /// <summary>Markers candidates validated per token table before giving up.</summary>
    private const int MaxMarkerCandidates = 32;

    /// <summary>Names starts with a fitting <c>num_syms</c> in front that are walked per markers candidate. Each walk
    /// costs at most 1,024 entry steps; real images need one. Together with the caps above and in the decoder this
    /// bounds the work hostile data can cause.</summary>
    private const int MaxNamesCandidates = 256;

    public static KallsymsNameTable? TryLocate(ReadOnlySpan<byte> image, ulong imageVa, int tokenTableOffset,
        IntrospectionLimits limits, out string reason)
    {
        long window = MarkerScanBase + 4L * Math.Max(0, limits.MaxKallsymsSymbols);
        long lowest = Math.Max(0, tokenTableOffset - window);
        long p = ImageBytes.AlignDown(imageVa, tokenTableOffset - 4L, 4);
        int candidates = 0;
        string? firstReason = null;

        for (; p >= lowest; p -= 4)
        {
            // Step 4: u32 0 followed by at least 8 values increasing by plausible block sizes.
            if (p + 8 > tokenTableOffset || ImageBytes.U32(image, p) != 0)
                continue;
            uint first = ImageBytes.U32(image, p + 4);
            if (first < MinMarkerStep || first > MaxMarkerStep)
                continue;
            int run = CountMarkerRun(image, p, tokenTableOffset);
            if (run - 1 < MinMarkerSteps)
                continue;

            if (++candidates > MaxMarkerCandidates)
            {
                firstReason = $"gave up after {MaxMarkerCandidates} kallsyms_markers candidates; the first: {firstReason}";
                break;
            }
            var markers = new uint[run];
            for (int j = 0; j < run; j++)
                markers[j] = ImageBytes.U32(image, p + 4L * j);

            // The word after the last marker can extend the run by chance (seqs or token bytes): try one fewer.
            for (int k = run; k >= run - 1; k--)
            {
                var found = TryNamesForMarkers(image, imageVa, (int)p, markers, k, limits, out bool final, out string why);
                if (found is not null)
                {
                    reason = "";
                    return found;
                }
                if (final)
                {
                    reason = $"kallsyms_markers at image+0x{p:x}: {why}";
                    return null;
                }
                firstReason ??= $"kallsyms_markers candidate at image+0x{p:x} ({run} markers): {why}";
            }
        }

        reason = firstReason ??
                 $"no kallsyms_markers (a 0 followed by {MinMarkerSteps}+ increasing u32) within 0x{window:x} bytes before the token table";
        return null;
    }

    private static int CountMarkerRun(ReadOnlySpan<byte> image, long p, int limit)
    {
        int run = 1;
        uint previous = 0;
        while (p + 4L * (run + 1) <= limit)
        {
            uint value = ImageBytes.U32(image, p + 4L * run);
            uint step = value - previous;
            if (value <= previous || step < MinMarkerStep || step > MaxMarkerStep)
                break;
            previous = value;
            run++;
        }
        return run;
    }

    /// <summary>Step 5: the names start S with N in front of it, such that marker walks land exactly.</summary>
    private static KallsymsNameTable? TryNamesForMarkers(ReadOnlySpan<byte> image, ulong imageVa, int markersOffset,
        uint[] allMarkers, int k, IntrospectionLimits limits, out bool final, out string reason)
    {
        final = false;
        long lastMarker = allMarkers[k - 1];
        long nLow = (long)(k - 1) * 256 + 1, nHigh = (long)k * 256;
        long high = ImageBytes.AlignDown(imageVa, markersOffset - lastMarker - 2, 4);
        long low = Math.Max(4, markersOffset - lastMarker - 256L * MaxEntryBytes - 8);
        reason = $"no kallsyms_num_syms in ({nLow - 1}, {nHigh}] right before a names start that fits {k} markers";
        int walked = 0;

        for (long s = high; s >= low; s -= 4)
        {
            uint atMinus4 = ImageBytes.U32(image, s - 4);
            long numSymsOffset;
            long n;
            if (s >= 8 && atMinus4 == 0 && ImageBytes.U32(image, s - 8) is var at8 && at8 >= nLow && at8 <= nHigh)
            {
                numSymsOffset = s - 8;
                n = at8;
            }
            else if (atMinus4 >= nLow && atMinus4 <= nHigh)
            {
                numSymsOffset = s - 4;
                n = atMinus4;
            }
            else
            {
                continue;
            }

            if (++walked > MaxNamesCandidates)
            {
                reason = $"gave up after {MaxNamesCandidates} names starts with a plausible kallsyms_num_syms";
                return null;
            }
            bool ok = true;
            for (int j = 1; j <= Math.Min(3, k - 1) && ok; j++)
                ok = Walk(image, s + allMarkers[j - 1], 256, markersOffset) == s + allMarkers[j];
            if (!ok)
                continue;
            long end = Walk(image, s + lastMarker, (int)(n - (long)(k - 1) * 256), markersOffset);
            if (end < 0 || markersOffset - end > 7 || !ImageBytes.AllZero(image, end, markersOffset - end))
                continue;

            if (n > limits.MaxKallsymsSymbols)
            {
                // The structure is right; only the limit stops us, so looking further is pointless.
                final = true;
                reason = $"kallsyms_num_syms = {n} exceeds {nameof(IntrospectionLimits.MaxKallsymsSymbols)} = {limits.MaxKallsymsSymbols}";
                return null;
            }
            var markers = k == allMarkers.Length ? allMarkers : allMarkers[..k];
            return new KallsymsNameTable((int)numSymsOffset, (int)s, (int)n, markersOffset, markers);
        }
        return null;
    }

    /// <summary>Skips <paramref name="count"/> name entries; -1 if one is malformed or crosses <paramref name="limit"/>.</summary>
    private static long Walk(ReadOnlySpan<byte> image, long offset, int count, long limit)
    {
        if (offset < 0)
            return -1;
        for (int i = 0; i < count; i++)
        {
            if (!TryEntryLength(image, offset, limit, out int headerBytes, out int length))
                return -1;
            offset += headerBytes + length;
        }
        return offset;
    }

    /// <summary>One entry header: a length byte, or with bit 7 set a 2-byte ULEB128 length ("big symbols").</summary>
    private static bool TryEntryLength(ReadOnlySpan<byte> image, long offset, long limit, out int headerBytes, out int length)
    {
        headerBytes = 1;
        length = 0;
        if (offset >= limit)
            return false;
        int b0 = image[(int)offset];
        if ((b0 & 0x80) != 0)
        {
            if (offset + 1 >= limit)
                return false;
            int b1 = image[(int)offset + 1];
            if ((b1 & 0x80) != 0)
                return false;
            headerBytes = 2;
            length = (b0 & 0x7f) | (b1 << 7);
        }
        else
        {
            length = b0;
        }
        return length != 0 && offset + headerBytes + length <= limit;
    }

    /// <summary>
    /// Indexes all names without expanding them, checking every marker on the way and that each name expands to
    /// between 1 (its type letter) and <see cref="IntrospectionLimits.MaxStringLength"/> bytes. The entries are copied
    /// out of the image so the index outlives the memory mapping.
    /// </summary>
    public static KallsymsNameIndex? TryIndex(ReadOnlySpan<byte> image, KallsymsNameTable table, KallsymsTokenTable tokens,
        IntrospectionLimits limits, int[]? byName, out string reason)
    {
        int n = table.Count;
        var entryStart = new int[n];
        var entryLength = new ushort[n];
        int maxLength = Math.Max(2, limits.MaxStringLength);
        int[] starts = tokens.Starts;
        int shortestToken = int.MaxValue, longestToken = 0;
        for (int t = 0; t < KallsymsTokenTable.TokenCount; t++)
        {
            int length = starts[t + 1] - starts[t];
            shortestToken = Math.Min(shortestToken, length);
            longestToken = Math.Max(longestToken, length);
        }
        uint[] markers = table.Markers;
        long names0 = table.NamesOffset;
        long offset = names0;
        long limit = table.MarkersOffset;

        for (int i = 0; i < n; i++)
        {
            if ((i & 0xff) == 0 && offset - names0 != markers[i >> 8])
            {
                reason = $"kallsyms_markers[{i >> 8}] = 0x{markers[i >> 8]:x}, but name {i} starts at names+0x{offset - names0:x}";
                return null;
            }
            if (!TryEntryLength(image, offset, limit, out int headerBytes, out int length))
            {
                reason = $"name {i} at image+0x{offset:x} has a bad length or runs past kallsyms_markers";
                return null;
            }
            entryStart[i] = (int)(offset + headerBytes - names0);
            entryLength[i] = (ushort)length; // a 2-byte ULEB128 length is below 2^14
            // Real token tables have no empty token and short tokens, so the bounds settle it without expanding.
            if (shortestToken == 0 || (long)length * longestToken > maxLength)
            {
                long size = 0;
                foreach (byte token in image.Slice((int)offset + headerBytes, length))
                    size += starts[token + 1] - starts[token];
                if (size > maxLength)
                {
                    reason = $"name {i} expands to more than {nameof(IntrospectionLimits.MaxStringLength)} = {maxLength} bytes";
                    return null;
                }
                if (size == 0)
                {
                    reason = $"name {i} expands to nothing (not even a type letter)";
                    return null;
                }
            }
            offset += headerBytes + length;
        }

        if (offset > limit || limit - offset > 7)
        {
            reason = $"the {n} names end at image+0x{offset:x}, not within 7 bytes of kallsyms_markers";
            return null;
        }
        reason = "";
        var copy = image.Slice((int)names0, (int)(offset - names0)).ToArray();
        return new KallsymsNameIndex(copy, entryStart, entryLength, tokens, byName);
    }
}
