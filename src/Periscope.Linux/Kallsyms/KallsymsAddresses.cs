namespace Periscope.Linux.Kallsyms;

/// <summary>The decoded addresses and the layout they came from (image offsets; -1 when absent). <paramref name="TableEnd"/>
/// is where the address table (with its relative base) ends; <paramref name="Alignment"/> is the <c>.balign</c> of the
/// labels (8 before Linux 7.0, 4 since).</summary>
internal sealed record KallsymsAddressTable(
    ulong[] Addresses,
    int TableOffset,
    int RelativeBaseOffset,
    ulong RelativeBase,
    KallsymsTableOrder Order,
    KallsymsAddressEncoding Encoding,
    long TableEnd,
    int Alignment);

/// <summary>
/// Step 6 of linux-discovery.md §4.3: finds <c>kallsyms_offsets</c> + <c>kallsyms_relative_base</c> in the ≤6.3
/// or the ≥6.4 position, decodes them with or without ABSOLUTE_PERCPU; then the Linux 7.0 place-relative offsets
/// (no relative base, labels <c>.balign 4</c>); and falls back to u64 <c>kallsyms_addresses</c>. A layout is accepted
/// only if the decoded addresses are (almost) in order.
/// </summary>
internal static class KallsymsAddresses
{
    private const ulong KernelHalfStart = KernelSymbols.KernelHalfStart;

    /// <summary>Lowest kernel address of an i386 kernel: PAGE_OFFSET of VMSPLIT_1G, the lowest split Linux offers.</summary>
    private const ulong KernelStart32 = 0x40000000;

    /// <summary>Where kernel addresses start for a kernel with <paramref name="pointerSize"/>-byte longs.</summary>
    private static ulong KernelFloor(int pointerSize) => pointerSize == 4 ? KernelStart32 : KernelHalfStart;

    /// <param name="pointerSize">sizeof(long) of the kernel: 8, or 4 for an i386 kernel, whose kallsyms_relative_base
    /// is a 4-byte long and whose labels are <c>.balign 4</c> (scripts/kallsyms.c's PTR and ALGN).</param>
    public static KallsymsAddressTable? TryDecode(ReadOnlySpan<byte> image, ulong imageVa, KallsymsNameTable names,
        KallsymsTokenTable tokens, out string reason, int pointerSize = 8)
    {
        int n = names.Count;
        var reasons = new List<string>(6);
        long ptr = pointerSize;

        // ≤ 6.3: offsets | relative_base | num_syms. relative_base is pointer-aligned, so offsets start alignP(4N) before it.
        long preBase = names.NumSymsOffset - ptr;
        long preOffsets = preBase - ((4L * n + ptr - 1) & ~(ptr - 1));
        var found = TryRelative(image, preOffsets, preBase, n, KallsymsTableOrder.Pre64, reasons, pointerSize);
        if (found is not null)
        {
            reason = "";
            return found;
        }

        // ≥ 6.4: token_index | offsets | relative_base | seqs_of_names.
        long postOffsets = ImageBytes.AlignUp(imageVa, tokens.IndexOffset + 512L, pointerSize);
        long postBase = ImageBytes.AlignUp(imageVa, postOffsets + 4L * n, pointerSize);
        found = TryRelative(image, postOffsets, postBase, n, KallsymsTableOrder.Post64, reasons, pointerSize);
        if (found is not null)
        {
            reason = "";
            return found;
        }

        // ≥ 7.0: token_index | offsets | seqs_of_names, 4-aligned, each offset relative to its own entry.
        found = TryPlaceRelative(image, imageVa, ImageBytes.AlignUp(imageVa, tokens.IndexOffset + 512L, 4), n, reasons, KernelFloor(pointerSize));
        if (found is not null)
        {
            reason = "";
            return found;
        }

        // Without KALLSYMS_BASE_RELATIVE: u64 kallsyms_addresses right before num_syms, or after token_index.
        found = TryAbsolute(image, names.NumSymsOffset - ptr * n, n, KallsymsTableOrder.Pre64, reasons, pointerSize)
                ?? TryAbsolute(image, postOffsets, n, KallsymsTableOrder.Post64, reasons, pointerSize);
        if (found is not null)
        {
            reason = "";
            return found;
        }

        reason = "no address table fits: " + string.Join("; ", reasons);
        return null;
    }

    private static KallsymsAddressTable? TryRelative(ReadOnlySpan<byte> image, long offsetsOffset, long baseOffset,
        int n, KallsymsTableOrder order, List<string> reasons, int pointerSize)
    {
        string layout = order.Describe();
        ulong relativeBase;
        bool baseRead;
        if (pointerSize == 4)
        {
            baseRead = ImageBytes.TryU32(image, baseOffset, out uint base32);
            relativeBase = base32;
        }
        else baseRead = ImageBytes.TryU64(image, baseOffset, out relativeBase);
        if (!ImageBytes.Fits(image, offsetsOffset, 4L * n) || !baseRead)
        {
            reasons.Add($"{layout} kallsyms_offsets/relative_base (image+0x{offsetsOffset:x}) lie outside the image");
            return null;
        }
        if (relativeBase < KernelFloor(pointerSize))
        {
            reasons.Add($"{layout} kallsyms_relative_base 0x{relativeBase:x} is not a kernel address");
            return null;
        }

        var raw = new int[n];
        bool anyNegative = false;
        for (int i = 0; i < n; i++)
        {
            int o = (int)ImageBytes.U32(image, offsetsOffset + 4L * i);
            raw[i] = o;
            anyNegative |= o < 0;
        }

        var addresses = new ulong[n];
        string? why;
        // With ABSOLUTE_PERCPU every non-per-CPU symbol has a negative offset; with no negative offset that reading
        // would turn all addresses into small absolutes, so it is tried only when negatives exist.
        if (anyNegative)
        {
            for (int i = 0; i < n; i++)
            {
                int o = raw[i];
                addresses[i] = o >= 0 ? (ulong)o : unchecked(relativeBase - 1 - (ulong)(long)o);
            }
            if (Plausible(addresses, out why))
                return new KallsymsAddressTable(addresses, (int)offsetsOffset, (int)baseOffset, relativeBase, order,
                    KallsymsAddressEncoding.RelativeAbsolutePercpu, baseOffset + pointerSize, pointerSize);
            reasons.Add($"{layout} offsets read as ABSOLUTE_PERCPU: {why}");
        }

        for (int i = 0; i < n; i++)
            addresses[i] = pointerSize == 4 ? (uint)(relativeBase + (uint)raw[i]) : unchecked(relativeBase + (uint)raw[i]);
        if (Plausible(addresses, out why))
            return new KallsymsAddressTable(addresses, (int)offsetsOffset, (int)baseOffset, relativeBase, order,
                KallsymsAddressEncoding.Relative, baseOffset + pointerSize, pointerSize);
        reasons.Add($"{layout} offsets read as relative: {why}");
        return null;
    }

    /// <summary>Linux 7.0+: <c>kallsyms_offsets[i]</c> is emitted as <c>.long _text - . + off</c>, so the address is the
    /// entry's own virtual address plus the signed value. The table holds no base to check, so the decoded addresses
    /// must also be kernel addresses (they all lie within ±2 GiB of the table, inside the kernel image's half).</summary>
    private static KallsymsAddressTable? TryPlaceRelative(ReadOnlySpan<byte> image, ulong imageVa, long offsetsOffset,
        int n, List<string> reasons, ulong kernelFloor)
    {
        if (!ImageBytes.Fits(image, offsetsOffset, 4L * n))
        {
            reasons.Add($"7.0+ place-relative kallsyms_offsets (image+0x{offsetsOffset:x}) lie outside the image");
            return null;
        }
        ulong tableVa = imageVa + (ulong)offsetsOffset;
        var addresses = new ulong[n];
        for (int i = 0; i < n; i++)
        {
            int o = (int)ImageBytes.U32(image, offsetsOffset + 4L * i);
            ulong a = unchecked(tableVa + 4UL * (ulong)i + (ulong)(long)o);
            if (a < kernelFloor)
            {
                reasons.Add($"7.0+ place-relative kallsyms_offsets[{i}] gives 0x{a:x}, not a kernel address");
                return null;
            }
            addresses[i] = a;
        }
        if (!Plausible(addresses, out string why))
        {
            reasons.Add($"7.0+ place-relative kallsyms_offsets: {why}");
            return null;
        }
        return new KallsymsAddressTable(addresses, (int)offsetsOffset, -1, 0, KallsymsTableOrder.Post64,
            KallsymsAddressEncoding.PlaceRelative, offsetsOffset + 4L * n, 4);
    }

    private static KallsymsAddressTable? TryAbsolute(ReadOnlySpan<byte> image, long offset, int n,
        KallsymsTableOrder order, List<string> reasons, int pointerSize)
    {
        string layout = order.Describe();
        if (!ImageBytes.Fits(image, offset, (long)pointerSize * n))
        {
            reasons.Add($"{layout} kallsyms_addresses (image+0x{offset:x}) lie outside the image");
            return null;
        }
        var addresses = new ulong[n];
        int kernel = 0;
        for (int i = 0; i < n; i++)
        {
            ulong a = pointerSize == 4 ? ImageBytes.U32(image, offset + 4L * i) : ImageBytes.U64(image, offset + 8L * i);
            addresses[i] = a;
            if (a >= KernelFloor(pointerSize))
                kernel++;
        }
        if (2L * kernel < n)
        {
            reasons.Add($"{layout} kallsyms_addresses: only {kernel} of {n} are kernel addresses");
            return null;
        }
        if (!Plausible(addresses, out string why))
        {
            reasons.Add($"{layout} kallsyms_addresses: {why}");
            return null;
        }
        return new KallsymsAddressTable(addresses, (int)offset, -1, 0, order, KallsymsAddressEncoding.Absolute,
            offset + (long)pointerSize * n, pointerSize);
    }

    /// <summary>
    /// kallsyms is sorted by address: fewer than 0.1 % of the steps may go backwards, and at least a quarter must
    /// go strictly forward (so a zero-filled hole, which is "sorted", is not taken for a table).
    /// </summary>
    private static bool Plausible(ulong[] addresses, out string why)
    {
        int n = addresses.Length;
        long backwards = 0, forwards = 0;
        for (int i = 1; i < n; i++)
        {
            if (addresses[i] < addresses[i - 1]) backwards++;
            else if (addresses[i] > addresses[i - 1]) forwards++;
        }
        if (backwards * 1000 >= n)
        {
            why = $"{backwards} of {n} addresses are out of order";
            return false;
        }
        if (n > 1 && forwards * 4 < n - 1)
        {
            why = $"only {forwards} of {n - 1} steps increase the address";
            return false;
        }
        why = "";
        return true;
    }

    /// <summary>Whether <c>kallsyms_seqs_of_names</c> (a permutation of 0…N-1, 3-byte big-endian entries, or u32 in
    /// the first 6.2 development version) starts at <paramref name="offset"/>, ending by <paramref name="limit"/>.</summary>
    /// <summary>kallsyms_seqs_of_names at <paramref name="offset"/> as symbol indexes: n entries of 3 bytes (big-endian,
    /// as scripts/kallsyms.c writes them) or 4, accepted only when they form a permutation of 0..n-1.</summary>
    public static int[]? TryReadSeqsOfNames(ReadOnlySpan<byte> image, long offset, long limit, int n)
    {
        if (n <= 0 || offset < 0)
            return null;
        limit = Math.Min(limit, image.Length);
        if (offset + 3L * n <= limit && ReadPermutation(image, offset, n, 3) is { } three)
            return three;
        return offset + 4L * n <= limit ? ReadPermutation(image, offset, n, 4) : null;
    }

    private static int[]? ReadPermutation(ReadOnlySpan<byte> image, long offset, int n, int width)
    {
        var seen = new ulong[(n + 63) >> 6];
        var order = new int[n];
        for (int i = 0; i < n; i++)
        {
            int at = (int)(offset + (long)width * i);
            uint v = width == 3
                ? (uint)(image[at] << 16 | image[at + 1] << 8 | image[at + 2])
                : ImageBytes.U32(image, at);
            if (v >= (uint)n)
                return null;
            ref ulong word = ref seen[v >> 6];
            ulong bit = 1UL << (int)(v & 63);
            if ((word & bit) != 0)
                return null;
            word |= bit;
            order[i] = (int)v;
        }
        return order;
    }
}
