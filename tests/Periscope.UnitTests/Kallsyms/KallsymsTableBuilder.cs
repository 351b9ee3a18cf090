using System.Buffers.Binary;
using System.Text;
using Periscope.Linux.Kallsyms;

namespace Periscope.UnitTests.Kallsyms;

public enum KallsymsAddressMode { AbsolutePercpu, Relative, Absolute, PlaceRelative }

/// <summary>
/// Builds a kernel image holding kallsyms tables laid out the way the kernel's scripts/kallsyms.c emits them
/// (independent implementation): pair-merging token compression into the unused byte codes, length bytes with
/// 2-byte ULEB128 for big symbols, markers every 256 names, <c>.balign 8</c> before every table (<c>.balign 4</c> with
/// the Linux 7.0 place-relative offsets), in the ≤6.3 or ≥6.4 order, with optional <c>seqs_of_names</c>. The tables sit
/// inside random bytes with decoy digit patterns.
/// </summary>
internal sealed class KallsymsTableBuilder
{
    public KallsymsTableOrder Order { get; init; } = KallsymsTableOrder.Pre64;
    public bool SeqsOfNames { get; init; } = true;
    public KallsymsAddressMode AddressMode { get; init; } = KallsymsAddressMode.AbsolutePercpu;
    public ulong ImageVa { get; init; } = 0xffffffff8dc00000;

    /// <summary>Total image size; the tables start at <see cref="TableOffset"/> and must fit.</summary>
    public int ImageSize { get; init; } = 4 << 20;
    public int TableOffset { get; init; } = 0x120000;
    public int Seed { get; init; } = 1;
    public bool Decoys { get; init; } = true;

    /// <summary>Symbols below this address are per-CPU symbols encoded as absolute values (ABSOLUTE_PERCPU).</summary>
    public ulong PercpuLimit { get; init; } = 0x1_0000_0000;

    public KallsymsImage Build(IReadOnlyList<KernelSymbol> symbols)
    {
        int n = symbols.Count;
        if (n == 0)
            throw new ArgumentException("At least one symbol is needed.", nameof(symbols));
        var random = new Random(Seed);

        var (tokens, compressed) = Compress(symbols);

        bool placeRelative = AddressMode == KallsymsAddressMode.PlaceRelative;
        if (placeRelative && Order != KallsymsTableOrder.Post64)
            throw new ArgumentException("Place-relative offsets (Linux 7.0+) only exist in the 6.4+ order.");
        var blob = new Blob(ImageVa + (ulong)TableOffset, placeRelative ? 4 : 8);
        var at = new KallsymsImage { ImageVa = ImageVa, Tokens = tokens, Count = n };

        // Address table contents.
        ulong relativeBase = 0;
        byte[] addressTable;
        if (AddressMode == KallsymsAddressMode.Absolute)
        {
            addressTable = new byte[8 * n];
            for (int i = 0; i < n; i++)
                BinaryPrimitives.WriteUInt64LittleEndian(addressTable.AsSpan(8 * i), symbols[i].Address);
        }
        else if (placeRelative)
        {
            addressTable = new byte[4 * n]; // filled in once the table's own address is known
        }
        else
        {
            bool percpu = AddressMode == KallsymsAddressMode.AbsolutePercpu;
            relativeBase = symbols.Where(s => !percpu || s.Address >= PercpuLimit).Min(s => s.Address);
            addressTable = new byte[4 * n];
            for (int i = 0; i < n; i++)
            {
                ulong a = symbols[i].Address;
                long offset;
                if (!percpu)
                {
                    if (a < relativeBase || a - relativeBase > uint.MaxValue)
                        throw new ArgumentException($"Symbol {symbols[i]} does not fit a relative offset.");
                    offset = (long)(uint)(a - relativeBase);
                }
                else if (a < PercpuLimit)
                {
                    if (a > int.MaxValue)
                        throw new ArgumentException($"Per-CPU symbol {symbols[i]} does not fit an absolute offset.");
                    offset = (long)a;
                }
                else
                {
                    long distance = (long)(a - relativeBase);
                    offset = -1 - distance;
                    if (offset < int.MinValue)
                        throw new ArgumentException($"Symbol {symbols[i]} is too far from the relative base.");
                }
                BinaryPrimitives.WriteInt32LittleEndian(addressTable.AsSpan(4 * i), (int)offset);
            }
        }
        at.RelativeBase = relativeBase;

        // kallsyms_names and the markers.
        var names = new List<byte>();
        var markers = new uint[(n + 255) / 256];
        for (int i = 0; i < n; i++)
        {
            if ((i & 0xff) == 0)
                markers[i >> 8] = (uint)names.Count;
            byte[] c = compressed[i];
            if (c.Length > 0x3fff)
                throw new ArgumentException($"Symbol {symbols[i].Name} is too long.");
            if (c.Length <= 0x7f)
            {
                names.Add((byte)c.Length);
            }
            else
            {
                names.Add((byte)(0x80 | (c.Length & 0x7f)));
                names.Add((byte)(c.Length >> 7));
                at.BigSymbolCount++;
            }
            names.AddRange(c);
        }
        at.MarkerCount = markers.Length;

        // seqs_of_names: symbol indexes in name order, 3 bytes big-endian each.
        var byName = Enumerable.Range(0, n)
            .OrderBy(i => symbols[i].Name, StringComparer.Ordinal)
            .ThenBy(i => symbols[i].Address)
            .ThenBy(i => i)
            .ToArray();
        var seqs = new byte[3 * n];
        for (int i = 0; i < n; i++)
        {
            seqs[3 * i] = (byte)(byName[i] >> 16);
            seqs[3 * i + 1] = (byte)(byName[i] >> 8);
            seqs[3 * i + 2] = (byte)byName[i];
        }

        var tokenTable = new List<byte>();
        var tokenIndex = new byte[512];
        for (int t = 0; t < 256; t++)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(tokenIndex.AsSpan(2 * t), checked((ushort)tokenTable.Count));
            tokenTable.AddRange(tokens[t]);
            tokenTable.Add(0);
        }

        var numSyms = new byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(numSyms, (uint)n);
        var markerBytes = new byte[4 * markers.Length];
        for (int i = 0; i < markers.Length; i++)
            BinaryPrimitives.WriteUInt32LittleEndian(markerBytes.AsSpan(4 * i), markers[i]);
        var relativeBaseBytes = new byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(relativeBaseBytes, relativeBase);
        bool relative = AddressMode is KallsymsAddressMode.AbsolutePercpu or KallsymsAddressMode.Relative;

        if (Order == KallsymsTableOrder.Pre64)
        {
            at.Offsets = blob.Label(addressTable);
            if (relative)
                at.RelativeBaseOffset = blob.Label(relativeBaseBytes);
            at.NumSyms = blob.Label(numSyms);
            at.Names = blob.Label(names.ToArray());
            at.Markers = blob.Label(markerBytes);
            if (SeqsOfNames)
                at.SeqsOfNames = blob.Label(seqs);
            at.TokenTable = blob.Label(tokenTable.ToArray());
            at.TokenIndex = blob.Label(tokenIndex);
        }
        else
        {
            at.NumSyms = blob.Label(numSyms);
            at.Names = blob.Label(names.ToArray());
            at.Markers = blob.Label(markerBytes);
            at.TokenTable = blob.Label(tokenTable.ToArray());
            at.TokenIndex = blob.Label(tokenIndex);
            at.Offsets = blob.Label(addressTable);
            if (placeRelative)
                blob.Patch(at.Offsets, PlaceRelativeOffsets(symbols, ImageVa + (ulong)(TableOffset + at.Offsets)));
            if (relative)
                at.RelativeBaseOffset = blob.Label(relativeBaseBytes);
            if (SeqsOfNames)
                at.SeqsOfNames = blob.Label(seqs);
        }
        blob.Label([]); // trailing alignment padding, as the next section would have

        byte[] tables = blob.ToArray();
        if (TableOffset % 8 != 0 || (ImageVa & 7) != 0 || TableOffset + tables.Length > ImageSize)
            throw new ArgumentException($"Tables of 0x{tables.Length:x} bytes do not fit at 0x{TableOffset:x} in 0x{ImageSize:x}.");

        var image = new byte[ImageSize];
        random.NextBytes(image);
        if (Decoys)
            PlantDecoys(image, random);
        tables.CopyTo(image, TableOffset);
        // The offsets above are blob-relative: make them image-relative.
        at.Shift(TableOffset);
        at.Image = image;
        return at;
    }

    /// <summary><c>.long _text - . + off</c> for each symbol: the address minus the entry's own address.</summary>
    private static byte[] PlaceRelativeOffsets(IReadOnlyList<KernelSymbol> symbols, ulong tableVa)
    {
        var table = new byte[4 * symbols.Count];
        for (int i = 0; i < symbols.Count; i++)
        {
            long offset = (long)(symbols[i].Address - (tableVa + 4UL * (ulong)i));
            if (offset is < int.MinValue or > int.MaxValue)
                throw new ArgumentException($"Symbol {symbols[i]} is more than 2 GiB from its table entry.");
            BinaryPrimitives.WriteInt32LittleEndian(table.AsSpan(4 * i), (int)offset);
        }
        return table;
    }

    /// <summary>Digit patterns that must be rejected: bare ones, one at offset 0, one with plausible tokens before it
    /// but no token_index, one cut off by the end of the image; and a zero-filled hole.</summary>
    private void PlantDecoys(byte[] image, Random random)
    {
        byte[] digits = "0\u00001\u00002\u00003\u00004\u00005\u00006\u00007\u00008\u00009\u0000"u8.ToArray();
        digits.CopyTo(image, 0);
        for (int i = 0; i < 5; i++)
            digits.CopyTo(image, random.Next(64, TableOffset - 0x20000));

        // 47 short tokens, the digits, more short tokens, then garbage where token_index should be.
        int p = TableOffset - 0x10000;
        for (int t = 1; t < 0x30; t++)
        {
            image[p++] = (byte)('a' + t % 26);
            image[p++] = (byte)('b' + t % 20);
            image[p++] = 0;
        }
        digits.CopyTo(image, p);
        p += digits.Length;
        for (int t = 0x3a; t < 256; t++)
        {
            image[p++] = (byte)('c' + t % 20);
            image[p++] = 0;
        }

        Array.Clear(image, TableOffset - 0x8000, 0x4000);
        digits.AsSpan(0, 15).CopyTo(image.AsSpan(ImageSize - 15));
        digits.CopyTo(image, ImageSize - 0x1000);
    }

    /// <summary>
    /// Token compression: every byte value used in the names (and the ten digits, always) stands for itself; each
    /// unused code, from 255 down, becomes the currently most frequent adjacent pair, which is then replaced in
    /// every symbol. Codes left when no pair repeats stay empty tokens.
    /// </summary>
    private static (byte[][] Tokens, byte[][] Compressed) Compress(IReadOnlyList<KernelSymbol> symbols)
    {
        int n = symbols.Count;
        var work = new byte[n][];
        var lengths = new int[n];
        var used = new bool[256];
        for (int i = 0; i < n; i++)
        {
            string text = symbols[i].Type + symbols[i].Name;
            work[i] = Encoding.Latin1.GetBytes(text);
            lengths[i] = work[i].Length;
            foreach (byte b in work[i])
                used[b] = true;
        }
        for (int d = '0'; d <= '9'; d++)
            used[d] = true;

        var tokens = new byte[256][];
        for (int c = 0; c < 256; c++)
            tokens[c] = used[c] ? [(byte)c] : [];

        var pairs = new int[65536];
        for (int i = 0; i < n; i++)
            Count(work[i], lengths[i], pairs, +1);

        for (int code = 255; code >= 0; code--)
        {
            if (used[code])
                continue;
            int best = 0;
            for (int k = 1; k < pairs.Length; k++)
            {
                if (pairs[k] > pairs[best])
                    best = k;
            }
            if (pairs[best] < 2)
                break;
            byte a = (byte)(best >> 8), b = (byte)best;
            tokens[code] = [.. tokens[a], .. tokens[b]];
            if (tokens[code].Length > 200)
                throw new InvalidOperationException("Token grew implausibly long; use less repetitive names.");

            for (int i = 0; i < n; i++)
            {
                byte[] s = work[i];
                int len = lengths[i];
                if (s.AsSpan(0, len).IndexOf([a, b]) < 0)
                    continue;
                Count(s, len, pairs, -1);
                int w = 0;
                for (int r = 0; r < len; r++)
                {
                    if (r + 1 < len && s[r] == a && s[r + 1] == b)
                    {
                        s[w++] = (byte)code;
                        r++;
                    }
                    else
                    {
                        s[w++] = s[r];
                    }
                }
                lengths[i] = w;
                Count(s, w, pairs, +1);
            }
        }

        var compressed = new byte[n][];
        for (int i = 0; i < n; i++)
            compressed[i] = work[i].AsSpan(0, lengths[i]).ToArray();
        return (tokens, compressed);
    }

    private static void Count(byte[] s, int length, int[] pairs, int delta)
    {
        for (int i = 0; i + 1 < length; i++)
            pairs[(s[i] << 8) | s[i + 1]] += delta;
    }

    /// <summary>Table bytes with <c>.balign</c> (zero fill, by virtual address) before each label.</summary>
    private sealed class Blob(ulong va, int alignment)
    {
        private readonly List<byte> _bytes = [];

        public int Label(byte[] content)
        {
            while (((va + (ulong)_bytes.Count) & (ulong)(alignment - 1)) != 0)
                _bytes.Add(0);
            int at = _bytes.Count;
            _bytes.AddRange(content);
            return at;
        }

        public void Patch(int at, byte[] content)
        {
            for (int i = 0; i < content.Length; i++)
                _bytes[at + i] = content[i];
        }

        public byte[] ToArray() => _bytes.ToArray();
    }
}

/// <summary>A built image and where each table went (image offsets, -1 when absent).</summary>
internal sealed class KallsymsImage
{
    public byte[] Image { get; set; } = [];
    public ulong ImageVa { get; init; }
    public int Count { get; init; }
    public byte[][] Tokens { get; init; } = [];
    public ulong RelativeBase { get; set; }
    public int BigSymbolCount { get; set; }
    public int MarkerCount { get; set; }
    public int Offsets { get; set; } = -1;
    public int RelativeBaseOffset { get; set; } = -1;
    public int NumSyms { get; set; } = -1;
    public int Names { get; set; } = -1;
    public int Markers { get; set; } = -1;
    public int SeqsOfNames { get; set; } = -1;
    public int TokenTable { get; set; } = -1;
    public int TokenIndex { get; set; } = -1;

    public ulong Va(int offset) => offset < 0 ? 0 : ImageVa + (ulong)offset;

    public void Shift(int by)
    {
        static int S(int v, int by) => v < 0 ? v : v + by;
        Offsets = S(Offsets, by);
        RelativeBaseOffset = S(RelativeBaseOffset, by);
        NumSyms = S(NumSyms, by);
        Names = S(Names, by);
        Markers = S(Markers, by);
        SeqsOfNames = S(SeqsOfNames, by);
        TokenTable = S(TokenTable, by);
        TokenIndex = S(TokenIndex, by);
    }

    public void WriteU32(int offset, uint value) => BinaryPrimitives.WriteUInt32LittleEndian(Image.AsSpan(offset), value);
    public uint ReadU32(int offset) => BinaryPrimitives.ReadUInt32LittleEndian(Image.AsSpan(offset));
    public void WriteU16(int offset, ushort value) => BinaryPrimitives.WriteUInt16LittleEndian(Image.AsSpan(offset), value);
    public ushort ReadU16(int offset) => BinaryPrimitives.ReadUInt16LittleEndian(Image.AsSpan(offset));
}
