namespace Periscope.Linux.Kallsyms;

/// <summary>
/// <c>kallsyms_token_table</c> (256 NUL-terminated strings) and <c>kallsyms_token_index</c> (256 × u16 offsets),
/// found from the digit tokens and validated by the exact index equation (linux-discovery.md §4.3 steps 1–3).
/// The expansions are copied into one flat array so name decoding never goes back to guest bytes.
/// </summary>
internal sealed class KallsymsTokenTable
{
    public const int TokenCount = 256;

    /// <summary>Upper bound on one token's length. Real tokens are 1–63 bytes; this bound only keeps walks short.</summary>
    public const int MaxTokenLength = 255;

    private const int FirstDigitToken = '0';

    /// <summary>How far past the NUL of token 255 <c>kallsyms_token_index</c> may start (alignment padding).</summary>
    private const int IndexSearchSlack = 40;

    private const int IndexBytes = TokenCount * 2;

    private KallsymsTokenTable(int tableOffset, int indexOffset, byte[] bytes, int[] starts)
    {
        TableOffset = tableOffset;
        IndexOffset = indexOffset;
        Bytes = bytes;
        Starts = starts;
    }

    /// <summary>Image offset of <c>kallsyms_token_table</c>.</summary>
    public int TableOffset { get; }

    /// <summary>Image offset of <c>kallsyms_token_index</c>.</summary>
    public int IndexOffset { get; }

    /// <summary>The 256 expansions, concatenated without terminators.</summary>
    public byte[] Bytes { get; }

    /// <summary>Token <c>t</c> is <c>Bytes[Starts[t]..Starts[t + 1]]</c>; 257 entries.</summary>
    public int[] Starts { get; }

    /// <summary>The anchor: tokens 0x30–0x39 are always the digits themselves ("0\0" … "9\0"). The final NUL is
    /// left out on purpose and checked by the caller: a vectorised search keys on the pattern's first and last bytes,
    /// and "0" … NUL at distance 19 is common in a kernel image, "0" … "9" at distance 18 is not (15 ms → 2 ms over
    /// Debian 6.1's 20 MB before the table).</summary>
    public static ReadOnlySpan<byte> DigitsAnchor =>
        [(byte)'0', 0, (byte)'1', 0, (byte)'2', 0, (byte)'3', 0, (byte)'4', 0,
         (byte)'5', 0, (byte)'6', 0, (byte)'7', 0, (byte)'8', 0, (byte)'9'];

    /// <summary>Token bytes come from symbol names: printable ASCII without space.</summary>
    private static bool IsTokenByte(byte b) => b is > 0x20 and < 0x7f;

    /// <summary>Validates the token table whose token 0x30 ("0") starts at <paramref name="anchor"/>.</summary>
    public static KallsymsTokenTable? TryParse(ReadOnlySpan<byte> image, int anchor, out string reason)
    {
        // Step 2: back up over tokens 0x2f … 1. Each ends in NUL; token 0 cannot be delimited backwards.
        int nul = anchor - 1;
        if (nul < 0 || image[nul] != 0)
        {
            reason = "the byte before token '0' is not the NUL that ends token 0x2f";
            return null;
        }
        for (int t = FirstDigitToken - 1; t >= 1; t--)
        {
            int q = nul - 1, length = 0;
            while (true)
            {
                if (q < 0)
                {
                    reason = $"token 0x{t:x2} runs off the start of the image";
                    return null;
                }
                byte b = image[q];
                if (b == 0)
                    break;
                if (!IsTokenByte(b) || ++length > MaxTokenLength)
                {
                    reason = $"token 0x{t:x2} is not a short printable string (byte 0x{b:x2} at image+0x{q:x})";
                    return null;
                }
                q--;
            }
            nul = q;
        }
        int firstTokenStart = nul + 1;

        // Step 3: parse tokens 1…255 forward.
        Span<int> starts = stackalloc int[TokenCount + 1];
        Span<int> lengths = stackalloc int[TokenCount];
        int p = firstTokenStart;
        for (int t = 1; t < TokenCount; t++)
        {
            int start = p;
            while (true)
            {
                if (p >= image.Length)
                {
                    reason = $"token 0x{t:x2} runs off the end of the image";
                    return null;
                }
                byte b = image[p];
                if (b == 0)
                    break;
                if (!IsTokenByte(b) || p - start >= MaxTokenLength)
                {
                    reason = $"token 0x{t:x2} is not a short printable string (byte 0x{b:x2} at image+0x{p:x})";
                    return null;
                }
                p++;
            }
            starts[t] = start;
            lengths[t] = p - start;
            p++; // past the NUL
        }
        int tableEnd = p;

        // Then token_index: idx[0] = 0 and idx[k+1] - idx[k] = len(tok[k]) + 1 for k = 1…254.
        for (int d = 0; d <= IndexSearchSlack; d++)
        {
            long indexOffset = (long)tableEnd + d;
            if (!ImageBytes.Fits(image, indexOffset, IndexBytes))
                break;
            if (ImageBytes.U16(image, indexOffset) != 0)
                continue;
            bool ok = true;
            for (int k = 1; k < TokenCount - 1 && ok; k++)
            {
                int step = ImageBytes.U16(image, indexOffset + 2 * (k + 1)) - ImageBytes.U16(image, indexOffset + 2 * k);
                ok = step == lengths[k] + 1;
            }
            if (!ok)
                continue;

            // token_table = start(tok1) - idx[1]; token 0 is what lies between.
            int idx1 = ImageBytes.U16(image, indexOffset + 2);
            int tableOffset = firstTokenStart - idx1;
            if (idx1 < 1 || tableOffset < 0 || idx1 - 1 > MaxTokenLength)
                continue;
            ReadOnlySpan<byte> token0 = image.Slice(tableOffset, idx1 - 1);
            if (token0.ContainsAnyExceptInRange((byte)0x21, (byte)0x7e))
                continue;

            starts[0] = tableOffset;
            lengths[0] = token0.Length;
            var flatStarts = new int[TokenCount + 1];
            int total = 0;
            for (int t = 0; t < TokenCount; t++)
            {
                flatStarts[t] = total;
                total += lengths[t];
            }
            flatStarts[TokenCount] = total;
            var bytes = new byte[total];
            for (int t = 0; t < TokenCount; t++)
                image.Slice(starts[t], lengths[t]).CopyTo(bytes.AsSpan(flatStarts[t]));

            reason = "";
            return new KallsymsTokenTable(tableOffset, (int)indexOffset, bytes, flatStarts);
        }

        reason = $"tokens 1-255 parse (image+0x{firstTokenStart:x}..0x{tableEnd:x}) but no kallsyms_token_index " +
                 $"matching their lengths starts within {IndexSearchSlack} bytes after them";
        return null;
    }
}
