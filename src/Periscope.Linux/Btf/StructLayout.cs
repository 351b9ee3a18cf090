namespace Periscope.Linux.Btf;

/// <summary>
/// Layout of one BTF struct or union: its direct members, and lookups that see through anonymous struct/union members
/// (in Linux 6.1 every field of <c>mm_struct</c> sits inside an anonymous struct).
/// </summary>
/// <remarks>
/// Paths are dotted member names, each optionally followed by array indices: <c>"signal"</c>, <c>"mm_mt.ma_root"</c>,
/// <c>"pivot[3]"</c>, <c>"slot[2].x"</c>. A path cannot go through a pointer (that needs guest memory).
/// Offsets are from the start of this struct. A missing member raises <see cref="KeyNotFoundException"/> naming the
/// struct and the path; a malformed path raises <see cref="ArgumentException"/>; corrupt type data raises
/// <see cref="BtfFormatException"/>.
/// </remarks>
public sealed class StructLayout
{
    private readonly BtfTypes _btf;
    private readonly BtfMember[] _members;
    private Dictionary<string, BtfMember>? _flat;

    internal StructLayout(BtfTypes btf, int typeId, string name, int size, bool isUnion, BtfMember[] members)
    {
        _btf = btf;
        TypeId = typeId;
        Name = name;
        Size = size;
        IsUnion = isUnion;
        _members = members;
    }

    /// <summary>Struct tag; empty for an anonymous struct or union.</summary>
    public string Name { get; }

    /// <summary>Size in bytes.</summary>
    public int Size { get; }

    public bool IsUnion { get; }

    /// <summary>BTF type id of this STRUCT or UNION record.</summary>
    public int TypeId { get; }

    /// <summary>Direct members in declaration order (anonymous members appear with an empty name).</summary>
    public IReadOnlyList<BtfMember> Members => _members;

    /// <summary>"struct task_struct", "union foo", or "anonymous struct (type id 42)".</summary>
    public override string ToString()
    {
        string kind = IsUnion ? "union" : "struct";
        return Name.Length != 0 ? $"{kind} {Name}" : $"anonymous {kind} (type id {TypeId})";
    }

    /// <summary>
    /// Finds a member by name among the direct members and, recursively, inside anonymous struct/union members.
    /// The returned offset is accumulated from the start of this struct.
    /// </summary>
    public bool TryGetMember(string name, out BtfMember member)
    {
        ArgumentNullException.ThrowIfNull(name);
        return Flat.TryGetValue(name, out member);
    }

    /// <summary>Byte offset of <paramref name="path"/> (for a bitfield: the byte holding its first bit).</summary>
    /// <exception cref="KeyNotFoundException">No such member (the message names the struct and the path).</exception>
    public long Offset(string path) => GetMember(path).ByteOffset;

    /// <summary>Byte offset of <paramref name="path"/> when the struct has it and it starts inside the struct — at its very
    /// end only for a member with no bytes of its own (a flexible array, as unix_address.name[]); null otherwise, also
    /// for a corrupt offset.</summary>
    public int? OffsetInside(string path)
    {
        if (!HasMember(path)) return null;
        BtfMember m = GetMember(path);
        long v = m.ByteOffset;
        if (v < 0 || v > Size) return null;
        return v < Size || _btf.Size(m.TypeId) == 0 ? (int)v : null;
    }

    /// <summary>True when <paramref name="path"/> resolves.</summary>
    /// <exception cref="ArgumentException">The path is malformed.</exception>
    public bool HasMember(string path) => TryResolve(path, out _, out _);

    /// <summary>Byte size of the member's resolved type (for an array, element size × count; for a bitfield, its underlying type).</summary>
    /// <exception cref="KeyNotFoundException">No such member.</exception>
    /// <exception cref="BtfFormatException">The size exceeds <see cref="int.MaxValue"/> or the type chain is corrupt.</exception>
    public int MemberSize(string path)
    {
        BtfMember m = GetMember(path);
        long size = _btf.Size(m.TypeId);
        if (size > int.MaxValue)
            BtfThrow.Format(_btf.RecordBlobOffset(m.TypeId), $"{this}: member '{path}' (type id {m.TypeId}): expected a size below 2 GiB, found 0x{size:x}");
        return (int)size;
    }

    /// <summary>
    /// The member at <paramref name="path"/> with its bit offset accumulated from this struct. After an array index,
    /// <see cref="BtfMember.TypeId"/> is the element type.
    /// </summary>
    /// <exception cref="KeyNotFoundException">No such member.</exception>
    public BtfMember GetMember(string path)
    {
        if (!TryResolve(path, out BtfMember m, out string? why))
            throw new KeyNotFoundException($"{this}: path '{path}': {why}");
        return m;
    }

    /// <summary>Non-throwing <see cref="GetMember"/> (still throws <see cref="ArgumentException"/> for a malformed path).</summary>
    public bool TryGetMemberPath(string path, out BtfMember member) => TryResolve(path, out member, out _);

    private bool TryResolve(string path, out BtfMember result, out string? why)
    {
        ArgumentNullException.ThrowIfNull(path);
        result = default;
        ReadOnlySpan<char> rest = path;
        ValidatePath(path);

        StructLayout layout = this;
        long bits = 0;
        int typeId = 0;
        int bitfield = 0;
        string lastName = string.Empty;
        int consumed = 0;

        while (true)
        {
            int dot = rest.IndexOf('.');
            ReadOnlySpan<char> component = dot < 0 ? rest : rest.Slice(0, dot);
            int bracket = component.IndexOf('[');
            ReadOnlySpan<char> name = bracket < 0 ? component : component.Slice(0, bracket);
            if (name.IsEmpty || name.IndexOfAny('[', ']') >= 0)
                throw new ArgumentException($"malformed member path '{path}' at character {consumed}", nameof(path));

            if (!layout.Flat.GetAlternateLookup<ReadOnlySpan<char>>().TryGetValue(name, out BtfMember m))
            {
                why = $"{layout} has no member '{name}'";
                return false;
            }
            lastName = m.Name;
            bits += m.BitOffset;
            typeId = m.TypeId;
            bitfield = m.BitfieldSize;

            // Array indices: [n][m]...
            ReadOnlySpan<char> indices = bracket < 0 ? default : component.Slice(bracket);
            while (!indices.IsEmpty)
            {
                int close = indices.IndexOf(']');
                if (indices[0] != '[' || close < 2 ||
                    !uint.TryParse(indices.Slice(1, close - 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out uint index))
                    throw new ArgumentException($"malformed array index in member path '{path}' at character {consumed}", nameof(path));
                indices = indices.Slice(close + 1);

                int resolved = _btf.Resolve(typeId);
                if (_btf.KindOf(resolved) != BtfKind.Array)
                {
                    why = $"'{name}' is a {_btf.KindOf(resolved)} (type id {typeId}), not an array";
                    return false;
                }
                uint count = _btf.Tail(resolved, 8);
                if (count != 0 && index >= count)
                {
                    why = $"index {index} is outside '{name}' (an array of {count})";
                    return false;
                }
                int element = (int)_btf.Tail(resolved, 0);
                long elementSize = _btf.Size(element);
                long elementBits = elementSize <= long.MaxValue / 8 ? elementSize * 8 : -1;
                if (elementBits < 0 || (index != 0 && elementBits > (long.MaxValue - bits) / index))
                    BtfThrow.Format(_btf.RecordBlobOffset(resolved), $"{layout}: '{name}[{index}]': expected an offset that fits in 64 bits");
                bits += index * elementBits;
                typeId = element;
                bitfield = 0;
            }

            if (dot < 0)
                break;

            consumed += dot + 1;
            rest = rest.Slice(dot + 1);
            int inner = _btf.Resolve(typeId);
            BtfKind kind = _btf.KindOf(inner);
            if (!BtfTypes.IsComposite(kind))
            {
                why = $"'{path.Substring(0, consumed - 1)}' is a {kind} (type id {typeId}), not a struct or union";
                return false;
            }
            layout = _btf.Layout(inner);
        }

        result = new BtfMember(lastName, typeId, bits, bitfield);
        why = null;
        return true;
    }

    /// <summary>Grammar: <c>name ('[' digits ']')* ('.' name ('[' digits ']')*)*</c>, names free of '.', '[' and ']'.</summary>
    private static void ValidatePath(string path)
    {
        if (path.Length == 0)
            throw new ArgumentException("a member path must not be empty", nameof(path));
        int i = 0;
        while (true)
        {
            int start = i;
            while (i < path.Length && path[i] is not ('.' or '[' or ']'))
                i++;
            if (i == start)
                Malformed(path, i);
            while (i < path.Length && path[i] == '[')
            {
                int digits = ++i;
                while (i < path.Length && char.IsAsciiDigit(path[i]))
                    i++;
                if (i == digits || i >= path.Length || path[i] != ']')
                    Malformed(path, i);
                i++;
            }
            if (i == path.Length)
                return;
            if (path[i] != '.')
                Malformed(path, i);
            i++;
        }

        static void Malformed(string path, int at) =>
            throw new ArgumentException($"malformed member path '{path}' at character {at}", nameof(path));
    }

    /// <summary>All names reachable directly or through anonymous members, with offsets from this struct. Built once.</summary>
    private Dictionary<string, BtfMember> Flat
    {
        get
        {
            Dictionary<string, BtfMember>? flat = Volatile.Read(ref _flat);
            if (flat is null)
            {
                flat = new Dictionary<string, BtfMember>(_members.Length, StringComparer.Ordinal);
                int budget = _btf.Limits.MaxBtfMembers;
                AddMembers(flat, this, 0, 0, ref budget);
                flat = Interlocked.CompareExchange(ref _flat, flat, null) ?? flat;
            }
            return flat;
        }
    }

    /// <summary>
    /// Adds <paramref name="layout"/>'s members at <paramref name="baseBits"/>. Depth is bounded by MaxTypeChainDepth
    /// (an anonymous member containing itself is a cycle) and the total number of members visited by MaxBtfMembers
    /// (shared anonymous types could otherwise multiply exponentially).
    /// </summary>
    private void AddMembers(Dictionary<string, BtfMember> flat, StructLayout layout, long baseBits, int depth, ref int budget)
    {
        foreach (BtfMember m in layout._members)
        {
            if (--budget < 0)
                BtfThrow.Format(_btf.RecordBlobOffset(TypeId),
                    $"{this}: expected at most MaxBtfMembers = {_btf.Limits.MaxBtfMembers} members including those of anonymous members, found more");
            if (m.Name.Length != 0)
            {
                flat.TryAdd(m.Name, m with { BitOffset = baseBits + m.BitOffset });
                continue;
            }
            int inner = _btf.Resolve(m.TypeId);
            if (!BtfTypes.IsComposite(_btf.KindOf(inner)))
                continue; // unnamed bitfield padding
            if (depth + 1 > _btf.Limits.MaxTypeChainDepth)
                BtfThrow.Format(_btf.RecordBlobOffset(inner),
                    $"{this}: expected anonymous members nested at most MaxTypeChainDepth = {_btf.Limits.MaxTypeChainDepth} deep (a cycle?)");
            AddMembers(flat, _btf.Layout(inner), baseBits + m.BitOffset, depth + 1, ref budget);
        }
    }
}
