using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Text;
using Periscope.Memory;

namespace Periscope.Linux.Btf;

/// <summary>
/// A parsed BTF (BPF Type Format) blob, as found in guest memory between <c>__start_BTF</c> and <c>__stop_BTF</c>.
/// </summary>
/// <remarks>
/// <para>The input is hostile. <see cref="Parse(ReadOnlySpan{byte}, IntrospectionLimits)"/> walks every record once,
/// checks every length against the header, every name offset against the string section and every referenced type id
/// against the type count, and copies the two sections. Afterwards only cycles and over-long chains can still be found
/// wrong, and those are bounded by <see cref="IntrospectionLimits.MaxTypeChainDepth"/>. Bad data only ever raises
/// <see cref="BtfFormatException"/>; a caller's mistake (an id out of range, a malformed path) raises the usual
/// argument exceptions; a member that does not exist raises <see cref="KeyNotFoundException"/>.</para>
/// <para>Type records are reached through an <c>int[]</c> of offsets; names are decoded on demand. The struct-name index
/// and struct layouts are built lazily and are safe to use from several threads.</para>
/// <para>Split BTF (kernel modules, whose type ids and string offsets continue vmlinux's) is read with
/// <see cref="ParseSplit"/> on top of the parsed base.</para>
/// </remarks>
public sealed class BtfTypes
{
    /// <summary><c>BTF_MAGIC</c>.</summary>
    public const ushort Magic = 0xEB9F;

    /// <summary>Length of the original header (<c>hdr_len</c> of every vmlinux BTF to date).</summary>
    public const int MinHeaderLength = 24;

    /// <summary>Largest <c>hdr_len</c> that <see cref="LooksLikeHeader(ReadOnlySpan{byte})"/> accepts (newer kernels append fields).</summary>
    public const int MaxHeaderLength = 256;

    /// <summary>
    /// Longest name decoded, whatever <see cref="IntrospectionLimits.MaxStringLength"/> allows: the kernel's KSYM_NAME_LEN,
    /// which its own BTF verifier applies to identifiers. Keeps hostile names from multiplying decoding work.
    /// </summary>
    public const int MaxNameLength = 512;

    /// <summary>Pointer size of the guest (x86-64).</summary>
    public const int PointerSize = 8;

    private const int RecordLength = 12;
    private const int MaxKnownKind = (int)BtfKind.Enum64;

    private readonly byte[] _types;
    private readonly byte[] _strings;
    private readonly int[] _offsets; // _offsets[id] = offset of record `id` in _types; [0] unused
    private readonly int _count;
    private readonly long _typeBase; // offset of the type section in the blob, for messages
    private readonly long _stringBase;
    private readonly IntrospectionLimits _limits;
    private readonly ConcurrentDictionary<int, StructLayout> _layouts = new();
    private Dictionary<string, int>? _structIndex;

    private BtfTypes(byte[] types, byte[] strings, int[] offsets, int count, long typeBase, long stringBase, int length, IntrospectionLimits limits)
    {
        _types = types;
        _strings = strings;
        _offsets = offsets;
        _count = count;
        _typeBase = typeBase;
        _stringBase = stringBase;
        ByteLength = length;
        _limits = limits;
    }

    /// <summary>Number of types; valid ids are 1..Count (0 is void).</summary>
    public int Count => _count;

    /// <summary>Bytes of the blob that the header covers (header plus both sections).</summary>
    public int ByteLength { get; }

    /// <summary>Limits this instance was parsed with (and uses for chain and member walks).</summary>
    public IntrospectionLimits Limits => _limits;

    // ---------------------------------------------------------------- header and candidates

    /// <summary>Header checks with <see cref="IntrospectionLimits.Default"/>; see <see cref="LooksLikeHeader(ReadOnlySpan{byte}, IntrospectionLimits)"/>.</summary>
    public static bool LooksLikeHeader(ReadOnlySpan<byte> at) => LooksLikeHeader(at, IntrospectionLimits.Default);

    /// <summary>
    /// True when <paramref name="at"/> starts with a header in the vmlinux layout: magic 0xeB9F, version 1, flags 0,
    /// 24 ≤ hdr_len ≤ 256 and a multiple of 4, type_off 0, a non-empty type section whose length is a multiple of 4,
    /// str_off == type_len, a non-empty string section, and a total length within <see cref="IntrospectionLimits.MaxBtfBytes"/>.
    /// Only the header (24 bytes) is read.
    /// </summary>
    public static bool LooksLikeHeader(ReadOnlySpan<byte> at, IntrospectionLimits limits)
    {
        ArgumentNullException.ThrowIfNull(limits);
        if (at.Length < MinHeaderLength)
            return false;
        if (BtfRead.U16(at, 0, 0) != Magic || at[2] != 1 || at[3] != 0)
            return false;
        uint hdrLen = BtfRead.U32(at, 4, 0);
        uint typeOff = BtfRead.U32(at, 8, 0);
        uint typeLen = BtfRead.U32(at, 12, 0);
        uint strOff = BtfRead.U32(at, 16, 0);
        uint strLen = BtfRead.U32(at, 20, 0);
        if (hdrLen < MinHeaderLength || hdrLen > MaxHeaderLength || (hdrLen & 3) != 0)
            return false;
        if (typeOff != 0 || typeLen == 0 || (typeLen & 3) != 0 || strOff != typeLen || strLen == 0)
            return false;
        long total = (long)hdrLen + strOff + strLen;
        return total <= limits.MaxBtfBytes;
    }

    /// <summary>
    /// Bytes the header at <paramref name="header"/> covers: hdr_len + the end of the later section
    /// (hdr_len + str_off + str_len in the vmlinux layout).
    /// </summary>
    /// <exception cref="BtfFormatException">Fewer than 24 bytes, a wrong magic, or a length beyond 2 GiB.</exception>
    public static int TotalLength(ReadOnlySpan<byte> header)
    {
        if (header.Length < MinHeaderLength)
            BtfThrow.Format(0, $"expected a {MinHeaderLength}-byte BTF header, found {header.Length} bytes");
        ushort magic = BtfRead.U16(header, 0, 0);
        if (magic != Magic)
            BtfThrow.Format(0, $"expected BTF magic 0x{Magic:x4}, found 0x{magic:x4}");
        long hdrLen = BtfRead.U32(header, 4, 0);
        long typeEnd = (long)BtfRead.U32(header, 8, 0) + BtfRead.U32(header, 12, 0);
        long strEnd = (long)BtfRead.U32(header, 16, 0) + BtfRead.U32(header, 20, 0);
        long total = hdrLen + Math.Max(typeEnd, strEnd);
        if (total > int.MaxValue)
            BtfThrow.Format(4, $"expected a total length below 2 GiB, found 0x{total:x} bytes");
        return (int)total;
    }

    /// <summary>Candidate offsets with <see cref="IntrospectionLimits.Default"/>; see <see cref="FindCandidates(ReadOnlySpan{byte}, IntrospectionLimits)"/>.</summary>
    public static IReadOnlyList<int> FindCandidates(ReadOnlySpan<byte> region) => FindCandidates(region, IntrospectionLimits.Default);

    /// <summary>
    /// Offsets in <paramref name="region"/> where a BTF blob plausibly starts: a vectorised search for the magic,
    /// version and flags (<c>9f eb 01 00</c>), then <see cref="LooksLikeHeader(ReadOnlySpan{byte}, IntrospectionLimits)"/>,
    /// the whole blob inside the region, and a string section that starts and ends with NUL.
    /// A candidate can still fail <see cref="Parse(ReadOnlySpan{byte}, IntrospectionLimits)"/> (stale, corrupt copies exist
    /// in real guests), so parse each one and prefer the one inside the kernel image.
    /// </summary>
    public static IReadOnlyList<int> FindCandidates(ReadOnlySpan<byte> region, IntrospectionLimits limits)
    {
        ArgumentNullException.ThrowIfNull(limits);
        ReadOnlySpan<byte> needle = [0x9f, 0xeb, 0x01, 0x00];
        var hits = new List<int>();
        int pos = 0;
        while (pos <= region.Length - MinHeaderLength)
        {
            int i = region.Slice(pos).IndexOf(needle);
            if (i < 0)
                break;
            int at = pos + i;
            ReadOnlySpan<byte> h = region.Slice(at);
            if (LooksLikeHeader(h, limits))
            {
                // LooksLikeHeader bounds every field, so these sums stay well inside int.
                int hdrLen = (int)BtfRead.U32(h, 4, 0);
                int typeLen = (int)BtfRead.U32(h, 12, 0);
                int strLen = (int)BtfRead.U32(h, 20, 0);
                long total = (long)hdrLen + typeLen + strLen;
                if (total <= h.Length && h[hdrLen + typeLen] == 0 && h[hdrLen + typeLen + strLen - 1] == 0)
                    hits.Add(at);
            }
            pos = at + 1;
        }
        return hits;
    }

    // ---------------------------------------------------------------- parse

    /// <summary>Parses with <see cref="IntrospectionLimits.Default"/>.</summary>
    public static BtfTypes Parse(ReadOnlySpan<byte> blob) => Parse(blob, IntrospectionLimits.Default);

    /// <summary>
    /// Parses a BTF blob. The blob may be followed by unrelated bytes: only the lengths in the header count.
    /// The type and string sections are copied, so <paramref name="blob"/> may be reused afterwards.
    /// </summary>
    /// <exception cref="BtfFormatException">The blob is malformed or exceeds <paramref name="limits"/>.</exception>
    public static BtfTypes Parse(ReadOnlySpan<byte> blob, IntrospectionLimits limits)
    {
        ArgumentNullException.ThrowIfNull(limits);
        var sections = ParseHeader(blob, limits, split: false);
        byte[] types = blob.Slice((int)sections.TypeStart, (int)sections.TypeLength).ToArray();
        byte[] strings = blob.Slice((int)sections.StringStart, (int)sections.StringLength).ToArray();
        int maxTypes = Math.Max(0, limits.MaxBtfTypes);
        int[] offsets = new int[Math.Min(maxTypes, types.Length / RecordLength) + 1];
        int count = WalkTypes(types, sections.TypeStart, sections.StringLength, offsets, maxTypes, limits.MaxBtfMembers, firstId: 1);
        return new BtfTypes(types, strings, offsets, count, sections.TypeStart, sections.StringStart, (int)sections.Total, limits);
    }

    /// <summary>
    /// Parses split BTF (a kernel module's .BTF) on top of <paramref name="baseBtf"/> (vmlinux's): its type ids continue
    /// after the base's (the first record is id baseBtf.Count + 1) and its string offsets continue after the base's
    /// string section (an offset below the base's length names a base string). Every id and name offset is checked
    /// against the base and the split part together. The result holds both (the base's sections are copied in front),
    /// so every query, layout and KernelObjects view works on it as on a standalone blob: ids below the split's first
    /// id are the base's own.
    /// </summary>
    /// <exception cref="BtfFormatException">The blob is malformed, refers beyond both parts, or exceeds <paramref name="limits"/>.</exception>
    public static BtfTypes ParseSplit(ReadOnlySpan<byte> blob, BtfTypes baseBtf, IntrospectionLimits limits)
    {
        ArgumentNullException.ThrowIfNull(baseBtf);
        ArgumentNullException.ThrowIfNull(limits);
        var sections = ParseHeader(blob, limits, split: true);
        int maxTypes = Math.Max(0, limits.MaxBtfTypes);
        int typeLen = (int)sections.TypeLength;
        if ((long)baseBtf._types.Length + typeLen > int.MaxValue || (long)baseBtf._strings.Length + sections.StringLength > int.MaxValue)
            BtfThrow.Format(12, "expected the base and split BTF together below 2 GiB");
        ReadOnlySpan<byte> ownTypes = blob.Slice((int)sections.TypeStart, typeLen);
        int[] ownOffsets = new int[Math.Min(maxTypes, typeLen / RecordLength) + 1];
        uint strLen = (uint)baseBtf._strings.Length + sections.StringLength;
        int count = WalkTypes(ownTypes, sections.TypeStart, strLen, ownOffsets, maxTypes, limits.MaxBtfMembers, firstId: baseBtf._count + 1);

        byte[] types = new byte[baseBtf._types.Length + typeLen];
        baseBtf._types.CopyTo(types, 0);
        ownTypes.CopyTo(types.AsSpan(baseBtf._types.Length));
        byte[] strings = new byte[strLen];
        baseBtf._strings.CopyTo(strings, 0);
        blob.Slice((int)sections.StringStart, (int)sections.StringLength).CopyTo(strings.AsSpan(baseBtf._strings.Length));
        int[] offsets = new int[baseBtf._count + count + 1];
        Array.Copy(baseBtf._offsets, offsets, baseBtf._count + 1);
        for (int i = 1; i <= count; i++)
            offsets[baseBtf._count + i] = ownOffsets[i] + baseBtf._types.Length;
        // Blob offsets in later messages are the split blob's: its type section starts where the base's ends.
        return new BtfTypes(types, strings, offsets, baseBtf._count + count, sections.TypeStart - baseBtf._types.Length,
            sections.StringStart - baseBtf._strings.Length, (int)sections.Total, limits)
        { FirstOwnId = baseBtf._count + 1 };
    }

    /// <summary>The first type id this blob defines itself: 1, or for split BTF the base's count + 1.</summary>
    public int FirstOwnId { get; private init; } = 1;

    /// <summary>Bytes of the string section (for split BTF: the base's and its own together), where a split blob's
    /// string offsets continue.</summary>
    public int StringSectionLength => _strings.Length;

    /// <summary>Like <see cref="ParseSplit"/>, with bad data reported through <paramref name="error"/>.</summary>
    public static bool TryParseSplit(ReadOnlySpan<byte> blob, BtfTypes baseBtf, IntrospectionLimits limits, out BtfTypes? types, out BtfFormatException? error) =>
        TryParse(blob, b => ParseSplit(b, baseBtf, limits), out types, out error);

    private delegate BtfTypes BlobParser(ReadOnlySpan<byte> blob);

    /// <summary><paramref name="parse"/>'s result, or its <see cref="BtfFormatException"/> through <paramref name="error"/>.</summary>
    private static bool TryParse(ReadOnlySpan<byte> blob, BlobParser parse, out BtfTypes? types, out BtfFormatException? error)
    {
        try
        {
            types = parse(blob);
            error = null;
            return true;
        }
        catch (BtfFormatException e)
        {
            types = null;
            error = e;
            return false;
        }
    }

    private readonly record struct Sections(long TypeStart, uint TypeLength, long StringStart, uint StringLength, long Total);

    /// <summary>
    /// Checks the header and the section bounds. Split BTF may have an empty type or string section and its strings
    /// need not start with NUL (offset 0 is the base's empty name), as the kernel's btf_parse_str_sec accepts.
    /// </summary>
    private static Sections ParseHeader(ReadOnlySpan<byte> blob, IntrospectionLimits limits, bool split)
    {
        if (blob.Length < MinHeaderLength)
            BtfThrow.Format(0, $"expected a {MinHeaderLength}-byte BTF header, found {blob.Length} bytes");
        ushort magic = BtfRead.U16(blob, 0, 0);
        if (magic != Magic)
            BtfThrow.Format(0, $"expected BTF magic 0x{Magic:x4}, found 0x{magic:x4}");
        if (blob[2] != 1)
            BtfThrow.Format(2, $"expected BTF version 1, found {blob[2]}");
        if (blob[3] != 0)
            BtfThrow.Format(3, $"expected BTF flags 0, found 0x{blob[3]:x2}");

        uint hdrLen = BtfRead.U32(blob, 4, 0);
        uint typeOff = BtfRead.U32(blob, 8, 0);
        uint typeLen = BtfRead.U32(blob, 12, 0);
        uint strOff = BtfRead.U32(blob, 16, 0);
        uint strLen = BtfRead.U32(blob, 20, 0);

        if (hdrLen < MinHeaderLength || hdrLen > blob.Length)
            BtfThrow.Format(4, $"expected a header length from {MinHeaderLength} to the blob length {blob.Length}, found {hdrLen}");
        long typeStart = (long)hdrLen + typeOff;
        long typeEnd = typeStart + typeLen;
        long strStart = (long)hdrLen + strOff;
        long strEnd = strStart + strLen;
        long total = Math.Max(typeEnd, strEnd);
        if (total > limits.MaxBtfBytes)
            BtfThrow.Format(4, $"expected at most MaxBtfBytes = {limits.MaxBtfBytes} bytes, the header claims {total}");
        if (typeEnd > blob.Length)
            BtfThrow.Format(8, $"expected the type section (0x{typeStart:x}..0x{typeEnd:x}) within the 0x{blob.Length:x}-byte blob");
        if (strEnd > blob.Length)
            BtfThrow.Format(16, $"expected the string section (0x{strStart:x}..0x{strEnd:x}) within the 0x{blob.Length:x}-byte blob");
        if (strLen == 0 && !split)
            BtfThrow.Format(20, "expected a non-empty string section, found str_len 0");
        if (typeLen != 0 && strLen != 0 && typeStart < strEnd && strStart < typeEnd)
            BtfThrow.Format(8, $"expected the type section (0x{typeStart:x}..0x{typeEnd:x}) and the string section (0x{strStart:x}..0x{strEnd:x}) not to overlap");
        if (!split && blob[(int)strStart] != 0)
            BtfThrow.Format(strStart, $"expected the string section to start with NUL (the empty name), found 0x{blob[(int)strStart]:x2}");
        if (strLen != 0 && blob[(int)strEnd - 1] != 0)
            BtfThrow.Format(strEnd - 1, $"expected the string section to end with NUL, found 0x{blob[(int)strEnd - 1]:x2}");
        return new Sections(typeStart, typeLen, strStart, strLen, total);
    }

    /// <summary>
    /// Parses like <see cref="Parse(ReadOnlySpan{byte}, IntrospectionLimits)"/> but reports bad data through
    /// <paramref name="error"/> instead of throwing (convenient when trying several candidates).
    /// </summary>
    public static bool TryParse(ReadOnlySpan<byte> blob, IntrospectionLimits limits, out BtfTypes? types, out BtfFormatException? error) =>
        TryParse(blob, b => Parse(b, limits), out types, out error);

    /// <summary>One pass over the type section: record offsets, tail lengths, name offsets and referenced ids.</summary>
    /// <remarks>Runs once per process on a large input: compiled optimised at once rather than through tier 0.</remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static int WalkTypes(ReadOnlySpan<byte> ts, long tb, uint strLen, int[] offsets, int maxTypes, int maxMembers, int firstId)
    {
        int end = ts.Length;
        int pos = 0;
        int count = 0;
        uint maxRef = 0;
        long maxRefAt = 0;

        while (pos < end)
        {
            int id = firstId + count; // the record's type id, for messages (split BTF continues after its base)
            if (end - pos < RecordLength)
                BtfThrow.Format(tb + pos, $"expected a {RecordLength}-byte record for type id {id}, found {end - pos} bytes before the end of the type section");
            if (count >= maxTypes)
                BtfThrow.Format(tb + pos, $"expected at most MaxBtfTypes = {maxTypes} types, found more (type id {id})");

            uint nameOff = BtfRead.U32(ts, pos, tb);
            uint info = BtfRead.U32(ts, pos + 4, tb);
            uint sizeOrType = BtfRead.U32(ts, pos + 8, tb);
            int kind = (int)(info >> 24) & 0x1f;
            int vlen = (int)(info & 0xffff);
            if (nameOff >= strLen)
                BtfThrow.Format(tb + pos, $"type id {id}: expected a name offset below the string section length 0x{strLen:x}, found 0x{nameOff:x}");

            int tail;
            int stride = 0; // bytes per vlen entry
            switch ((BtfKind)kind)
            {
                case BtfKind.Int:
                case BtfKind.DeclTag:
                case BtfKind.Var:
                    tail = 4;
                    break;
                case BtfKind.Array:
                    tail = 12;
                    break;
                case BtfKind.Struct:
                case BtfKind.Union:
                    if (vlen > maxMembers)
                        BtfThrow.Format(tb + pos + 4, $"type id {id}: expected at most MaxBtfMembers = {maxMembers} members, found {vlen}");
                    stride = 12;
                    tail = 12 * vlen;
                    break;
                case BtfKind.Enum:
                case BtfKind.FuncProto:
                    stride = 8;
                    tail = 8 * vlen;
                    break;
                case BtfKind.DataSec:
                case BtfKind.Enum64:
                    stride = 12;
                    tail = 12 * vlen;
                    break;
                case BtfKind.Ptr:
                case BtfKind.Fwd:
                case BtfKind.Typedef:
                case BtfKind.Volatile:
                case BtfKind.Const:
                case BtfKind.Restrict:
                case BtfKind.Func:
                case BtfKind.Float:
                case BtfKind.TypeTag:
                    tail = 0;
                    break;
                default:
                    BtfThrow.Format(tb + pos + 4, $"type id {id}: expected a known BTF kind (1..{MaxKnownKind}), found kind {kind} (info 0x{info:x8}); cannot skip it safely");
                    return 0;
            }

            int data = pos + RecordLength;
            if (tail > end - data)
                BtfThrow.Format(tb + data, $"type id {id}: expected {tail} bytes of {(BtfKind)kind} data ({vlen} entries), found {end - data} before the end of the type section");

            switch ((BtfKind)kind)
            {
                case BtfKind.Ptr:
                case BtfKind.Typedef:
                case BtfKind.Volatile:
                case BtfKind.Const:
                case BtfKind.Restrict:
                case BtfKind.Func:
                case BtfKind.TypeTag:
                case BtfKind.Var:
                case BtfKind.DeclTag:
                    Ref(sizeOrType, tb + pos + 8, ref maxRef, ref maxRefAt);
                    break;
                case BtfKind.Array:
                    Ref(BtfRead.U32(ts, data, tb), tb + data, ref maxRef, ref maxRefAt);
                    Ref(BtfRead.U32(ts, data + 4, tb), tb + data + 4, ref maxRef, ref maxRefAt);
                    break;
                case BtfKind.Struct:
                case BtfKind.Union:
                case BtfKind.FuncProto:
                    if (kind == (int)BtfKind.FuncProto)
                        Ref(sizeOrType, tb + pos + 8, ref maxRef, ref maxRefAt);
                    for (int e = data, stop = data + tail; e < stop; e += stride)
                    {
                        Name(BtfRead.U32(ts, e, tb), strLen, tb + e, id);
                        Ref(BtfRead.U32(ts, e + 4, tb), tb + e + 4, ref maxRef, ref maxRefAt);
                    }
                    break;
                case BtfKind.Enum:
                case BtfKind.Enum64:
                    for (int e = data, stop = data + tail; e < stop; e += stride)
                        Name(BtfRead.U32(ts, e, tb), strLen, tb + e, id);
                    break;
                case BtfKind.DataSec:
                    for (int e = data, stop = data + tail; e < stop; e += stride)
                        Ref(BtfRead.U32(ts, e, tb), tb + e, ref maxRef, ref maxRefAt);
                    break;
            }

            offsets[++count] = pos;
            pos = data + tail;
        }

        long lastId = (long)firstId - 1 + count;
        if (maxRef > lastId)
            BtfThrow.Format(maxRefAt, $"expected a type id at most {lastId} (the number of types{(firstId > 1 ? ", base and split" : "")}), found {maxRef}");
        return count;
    }

    private static void Ref(uint typeId, long at, ref uint maxRef, ref long maxRefAt)
    {
        if (typeId > maxRef)
        {
            maxRef = typeId;
            maxRefAt = at;
        }
    }

    private static void Name(uint nameOff, uint strLen, long at, int id)
    {
        if (nameOff >= strLen)
            BtfThrow.Format(at, $"type id {id}: expected an entry name offset below the string section length 0x{strLen:x}, found 0x{nameOff:x}");
    }

    // ---------------------------------------------------------------- raw record access (ids validated by callers)

    private int Rec(int id) => _offsets[id];

    internal long RecordBlobOffset(int id) => _typeBase + (id is > 0 && id <= _count ? _offsets[id] : 0);

    internal uint NameOff(int id) => BtfRead.U32(_types, Rec(id), _typeBase);

    internal uint Info(int id) => BtfRead.U32(_types, Rec(id) + 4, _typeBase);

    internal uint SizeOrType(int id) => BtfRead.U32(_types, Rec(id) + 8, _typeBase);

    internal BtfKind KindOf(int id) => id == 0 ? BtfKind.Void : (BtfKind)((Info(id) >> 24) & 0x1f);

    internal int VlenOf(int id) => (int)(Info(id) & 0xffff);

    internal bool KindFlagOf(int id) => (Info(id) & 0x8000_0000) != 0;

    /// <summary>u32 at <paramref name="offset"/> into the data after the 12-byte record of <paramref name="id"/>.</summary>
    internal uint Tail(int id, int offset) => BtfRead.U32(_types, Rec(id) + RecordLength + offset, _typeBase);

    private static bool IsModifier(BtfKind k) =>
        k is BtfKind.Typedef or BtfKind.Const or BtfKind.Volatile or BtfKind.Restrict or BtfKind.TypeTag;

    internal static bool IsComposite(BtfKind k) => k is BtfKind.Struct or BtfKind.Union;

    /// <summary>A caller's id (not data): 0 (void) .. Count, else <see cref="ArgumentOutOfRangeException"/>.</summary>
    private void CheckId(int typeId)
    {
        if ((uint)typeId > (uint)_count)
            throw new ArgumentOutOfRangeException(nameof(typeId), typeId, $"type ids are 0..{_count}");
    }

    /// <summary>Decodes the NUL-terminated string at <paramref name="off"/> (validated at parse to lie in the section, which ends with NUL).</summary>
    internal string DecodeString(uint off)
    {
        string? s = TryDecodeString(off);
        if (s is null)
            BtfThrow.Format(_stringBase + off, $"expected a name of at most {NameLimit} bytes (MaxStringLength = {_limits.MaxStringLength}, KSYM_NAME_LEN = {MaxNameLength}), found a longer one");
        return s;
    }

    private int NameLimit => Math.Min(_limits.MaxStringLength, MaxNameLength);

    /// <summary>Null when the name is longer than <see cref="NameLimit"/>.</summary>
    private string? TryDecodeString(uint off)
    {
        if (off == 0)
            return string.Empty;
        if (off >= (uint)_strings.Length)
            BtfThrow.Format(_stringBase + off, $"expected a string offset below 0x{_strings.Length:x}, found 0x{off:x}");
        int limit = NameLimit;
        ReadOnlySpan<byte> s = _strings.AsSpan((int)off);
        // Look for the NUL only as far as the limit allows, so a huge unterminated run costs no more than a short one.
        int n = s.Slice(0, Math.Min(s.Length, Math.Max(0, limit) + 1)).IndexOf((byte)0);
        if (n < 0)
            return null;
        return Encoding.UTF8.GetString(s.Slice(0, n));
    }

    /// <summary>True when the string at <paramref name="off"/> equals <paramref name="utf8"/> exactly (no allocation).</summary>
    private bool NameEquals(uint off, ReadOnlySpan<byte> utf8)
    {
        ReadOnlySpan<byte> s = _strings.AsSpan((int)off);
        return s.Length > utf8.Length && s[utf8.Length] == 0 && s.StartsWith(utf8);
    }

    // ---------------------------------------------------------------- public queries

    /// <summary>The common fields of type <paramref name="id"/>; id 0 gives a <see cref="BtfKind.Void"/> entry named "void".</summary>
    /// <exception cref="ArgumentOutOfRangeException"><paramref name="id"/> is not 0..Count.</exception>
    public BtfType GetType(int id)
    {
        CheckId(id);
        if (id == 0)
            return new BtfType(0, BtfKind.Void, "void", 0, 0, false);
        uint info = Info(id);
        return new BtfType(id, (BtfKind)((info >> 24) & 0x1f), DecodeString(NameOff(id)), SizeOrType(id), (int)(info & 0xffff), (info & 0x8000_0000) != 0);
    }

    /// <summary>Kind of type <paramref name="typeId"/> without decoding its name.</summary>
    public BtfKind GetKind(int typeId)
    {
        CheckId(typeId);
        return KindOf(typeId);
    }

    /// <summary>Name of type <paramref name="typeId"/>; empty for anonymous types, "void" for 0.</summary>
    public string GetName(int typeId)
    {
        CheckId(typeId);
        return typeId == 0 ? "void" : DecodeString(NameOff(typeId));
    }

    /// <summary>
    /// The first type of <paramref name="kind"/> named <paramref name="name"/>. For STRUCT and UNION a definition
    /// with non-zero size is preferred over an empty one. Linear in the number of types; cache the result.
    /// </summary>
    public int? FindTypeId(string name, BtfKind kind)
    {
        ArgumentNullException.ThrowIfNull(name);
        if (name.Length == 0 || kind == BtfKind.Void)
            return null;
        byte[] utf8 = Encoding.UTF8.GetBytes(name);
        bool preferSized = IsComposite(kind);
        int? first = null;
        for (int id = 1; id <= _count; id++)
        {
            uint info = Info(id);
            if ((BtfKind)((info >> 24) & 0x1f) != kind || !NameEquals(NameOff(id), utf8))
                continue;
            if (!preferSized || SizeOrType(id) != 0)
                return id;
            first ??= id;
        }
        return first;
    }

    /// <summary>Skips typedef, const, volatile, restrict and type_tag; returns the first other type (0 for void).</summary>
    /// <exception cref="BtfFormatException">The chain is longer than <see cref="IntrospectionLimits.MaxTypeChainDepth"/> (for example a cycle).</exception>
    public int ResolveTypedefs(int typeId)
    {
        CheckId(typeId);
        return Resolve(typeId);
    }

    internal int Resolve(int typeId)
    {
        int id = typeId;
        for (int steps = 0; ; steps++)
        {
            if (id == 0)
                return 0;
            if (!IsModifier(KindOf(id)))
                return id;
            if (steps >= _limits.MaxTypeChainDepth)
                ThrowChain(typeId);
            id = (int)SizeOrType(id);
        }
    }

    private void ThrowChain(int typeId) =>
        BtfThrow.Format(RecordBlobOffset(typeId),
            $"type id {typeId}: expected its typedef/modifier/array chain to end within MaxTypeChainDepth = {_limits.MaxTypeChainDepth} steps (a cycle?)");

    /// <summary>
    /// Byte size of a type: the size field of INT, STRUCT, UNION, ENUM, ENUM64, FLOAT and DATASEC; <see cref="PointerSize"/>
    /// for PTR; element size × count for ARRAY; the target's size through typedefs, modifiers and VAR; 0 for void, FWD,
    /// FUNC, FUNC_PROTO and DECL_TAG.
    /// </summary>
    /// <exception cref="BtfFormatException">A chain longer than the limit, or a size that overflows 64 bits.</exception>
    public long SizeOf(int typeId)
    {
        CheckId(typeId);
        return Size(typeId);
    }

    internal long Size(int typeId)
    {
        long factor = 1;
        int id = typeId;
        for (int steps = 0; ; steps++)
        {
            if (steps > _limits.MaxTypeChainDepth)
                ThrowChain(typeId);
            long unit;
            switch (KindOf(id))
            {
                case BtfKind.Int:
                case BtfKind.Struct:
                case BtfKind.Union:
                case BtfKind.Enum:
                case BtfKind.Enum64:
                case BtfKind.Float:
                case BtfKind.DataSec:
                    unit = SizeOrType(id);
                    break;
                case BtfKind.Ptr:
                    unit = PointerSize;
                    break;
                case BtfKind.Typedef:
                case BtfKind.Const:
                case BtfKind.Volatile:
                case BtfKind.Restrict:
                case BtfKind.TypeTag:
                case BtfKind.Var:
                    id = (int)SizeOrType(id);
                    continue;
                case BtfKind.Array:
                    uint n = Tail(id, 8);
                    if (n != 0 && factor > long.MaxValue / n)
                        ThrowOverflow(typeId);
                    factor *= n;
                    id = (int)Tail(id, 0);
                    continue;
                default: // void, FWD, FUNC, FUNC_PROTO, DECL_TAG
                    return 0;
            }
            if (unit != 0 && factor > long.MaxValue / unit)
                ThrowOverflow(typeId);
            return factor * unit;
        }
    }

    private void ThrowOverflow(int typeId) =>
        BtfThrow.Format(RecordBlobOffset(typeId), $"type id {typeId}: expected a size that fits in 64 bits");

    /// <summary>The ARRAY behind <paramref name="typeId"/> (after typedefs and modifiers), if it is one.</summary>
    public bool TryGetArray(int typeId, out BtfArray array)
    {
        CheckId(typeId);
        int id = Resolve(typeId);
        if (KindOf(id) != BtfKind.Array)
        {
            array = default;
            return false;
        }
        array = new BtfArray((int)Tail(id, 0), (int)Tail(id, 4), Tail(id, 8));
        return true;
    }

    /// <summary>Enumerators of the ENUM or ENUM64 behind <paramref name="typeId"/>.</summary>
    /// <exception cref="ArgumentException">The type is not an enum.</exception>
    public IReadOnlyList<BtfEnumValue> GetEnumValues(int typeId)
    {
        CheckId(typeId);
        int id = Resolve(typeId);
        BtfKind kind = KindOf(id);
        if (kind is not (BtfKind.Enum or BtfKind.Enum64))
            throw new ArgumentException($"type id {typeId} is a {kind}, not an enum", nameof(typeId));
        int n = VlenOf(id);
        bool signed = KindFlagOf(id);
        var values = new BtfEnumValue[n];
        for (int i = 0; i < n; i++)
        {
            long value;
            if (kind == BtfKind.Enum)
            {
                uint raw = Tail(id, 8 * i + 4);
                value = signed ? (int)raw : raw;
            }
            else
            {
                value = (long)(((ulong)Tail(id, 12 * i + 8) << 32) | Tail(id, 12 * i + 4));
            }
            values[i] = new BtfEnumValue(DecodeString(Tail(id, (kind == BtfKind.Enum ? 8 : 12) * i)), value);
        }
        return values;
    }

    /// <summary>Value of the enumerator <paramref name="name"/> in any ENUM or ENUM64 (first found). Linear; cache the result.</summary>
    public bool TryFindEnumerator(string name, out long value)
    {
        ArgumentNullException.ThrowIfNull(name);
        byte[] utf8 = Encoding.UTF8.GetBytes(name);
        for (int id = 1; id <= _count; id++)
        {
            BtfKind kind = KindOf(id);
            if (kind is not (BtfKind.Enum or BtfKind.Enum64))
                continue;
            int stride = kind == BtfKind.Enum ? 8 : 12;
            for (int i = 0, n = VlenOf(id); i < n; i++)
            {
                if (!NameEquals(Tail(id, stride * i), utf8))
                    continue;
                if (kind == BtfKind.Enum)
                {
                    uint raw = Tail(id, 8 * i + 4);
                    value = KindFlagOf(id) ? (int)raw : raw;
                }
                else
                {
                    value = (long)(((ulong)Tail(id, 12 * i + 8) << 32) | Tail(id, 12 * i + 4));
                }
                return true;
            }
        }
        value = 0;
        return false;
    }

    // ---------------------------------------------------------------- structs

    /// <summary>
    /// The struct or union named <paramref name="name"/> with non-zero size (forward declarations and empty
    /// declarations are skipped; the first definition wins). Null when there is none.
    /// </summary>
    public StructLayout? FindStruct(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return StructIndex.TryGetValue(name, out int id) ? GetStruct(id) : null;
    }

    /// <summary>Size of the struct or union <paramref name="name"/> (as <see cref="FindStruct"/> finds it), or null.</summary>
    public int? StructSizeOrNull(string name)
    {
        ArgumentNullException.ThrowIfNull(name);
        return StructIndex.TryGetValue(name, out int id) ? (int)Math.Min(SizeOrType(id), int.MaxValue) : null;
    }

    /// <summary>Layout of the struct or union behind <paramref name="typeId"/> (after typedefs and modifiers). Cached.</summary>
    /// <exception cref="ArgumentException">The type is not a struct or union.</exception>
    public StructLayout GetStruct(int typeId)
    {
        CheckId(typeId);
        int id = Resolve(typeId);
        BtfKind kind = KindOf(id);
        if (!IsComposite(kind))
            throw new ArgumentException($"type id {typeId} is a {kind}, not a struct or union", nameof(typeId));
        return Layout(id);
    }

    /// <summary>Layout of a STRUCT/UNION id that the caller has already checked.</summary>
    internal StructLayout Layout(int id) =>
        _layouts.TryGetValue(id, out StructLayout? cached) ? cached : _layouts.GetOrAdd(id, CreateLayout(id));

    private StructLayout CreateLayout(int id)
    {
        uint info = Info(id);
        bool kindFlag = (info & 0x8000_0000) != 0;
        int vlen = (int)(info & 0xffff);
        var members = new BtfMember[vlen];
        for (int i = 0; i < vlen; i++)
        {
            uint nameOff = Tail(id, 12 * i);
            int type = (int)Tail(id, 12 * i + 4);
            uint raw = Tail(id, 12 * i + 8);
            long bitOffset;
            int bitfield;
            if (kindFlag)
            {
                bitOffset = raw & 0x00ff_ffff;
                bitfield = (int)(raw >> 24);
            }
            else
            {
                bitOffset = raw;
                bitfield = 0;
                // Without kind_flag a bitfield is an INT whose bit count or bit offset differs from its size.
                if (KindOf(type) == BtfKind.Int)
                {
                    uint enc = Tail(type, 0);
                    int bits = (int)(enc & 0xff);
                    int intOffset = (int)((enc >> 16) & 0xff);
                    if (intOffset != 0 || bits != (long)SizeOrType(type) * 8)
                    {
                        bitOffset += intOffset;
                        bitfield = bits;
                    }
                }
            }
            members[i] = new BtfMember(DecodeString(nameOff), type, bitOffset, bitfield);
        }
        return new StructLayout(this, id, DecodeString(NameOff(id)), (int)Math.Min(SizeOrType(id), int.MaxValue),
            KindOf(id) == BtfKind.Union, members);
    }

    private Dictionary<string, int> StructIndex
    {
        get
        {
            Dictionary<string, int>? index = Volatile.Read(ref _structIndex);
            if (index is null)
            {
                index = BuildStructIndex();
                index = Interlocked.CompareExchange(ref _structIndex, index, null) ?? index;
            }
            return index;
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private Dictionary<string, int> BuildStructIndex()
    {
        var index = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int id = 1; id <= _count; id++)
        {
            uint info = Info(id);
            var kind = (BtfKind)((info >> 24) & 0x1f);
            if (!IsComposite(kind) || SizeOrType(id) == 0)
                continue;
            uint nameOff = NameOff(id);
            // A name beyond MaxStringLength cannot be asked for; leave it out rather than fail every lookup.
            if (nameOff != 0 && TryDecodeString(nameOff) is { } name)
                index.TryAdd(name, id);
        }
        return index;
    }
}
