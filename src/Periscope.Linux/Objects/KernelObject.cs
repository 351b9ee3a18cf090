using System.Buffers.Binary;
using System.Text;
using Periscope.Linux.Btf;

namespace Periscope.Linux.Objects;

/// <summary>
/// One typed object in guest kernel memory: a type and an address (and, for a bitfield, a bit position). Creating one
/// reads nothing; members and elements are computed from BTF; values are read when asked for.
/// </summary>
public sealed class KernelObject
{
    internal KernelObject(KernelObjects space, int typeId, ulong address, int bitOffset, int bitSize)
    {
        Space = space;
        Type = space.Type(typeId);
        Address = address;
        BitOffset = bitOffset;
        BitSize = bitSize;
    }

    public KernelObjects Space { get; }
    public ObjectType Type { get; }
    public ObjectKind Kind => Type.Kind;

    /// <summary>Kernel virtual address of the first byte (for a bitfield: of the byte holding its first bit).</summary>
    public ulong Address { get; }

    /// <summary>For a bitfield: the bit within the byte at <see cref="Address"/> where it starts (0..7).</summary>
    public int BitOffset { get; }

    /// <summary>For a bitfield: its width in bits; 0 for everything else.</summary>
    public int BitSize { get; }

    public bool IsBitfield => BitSize != 0;

    public override string ToString() => $"({Type.Name}) at 0x{Address:x}";

    // ---------------------------------------------------------------- navigation

    /// <summary>The member at <paramref name="path"/> (dotted names with array indices, e.g. <c>"mm_mt.ma_root"</c>,
    /// <c>"pid_links[0]"</c>); on a pointer to a struct, the member of the pointed-to struct.</summary>
    public KernelObject this[string path] => Member(path);

    /// <summary>Element <paramref name="index"/> of an array, or of the array a pointer points into (C's <c>p[i]</c>).</summary>
    public KernelObject this[long index] => Element(index);

    public KernelObject Member(string path)
    {
        ArgumentNullException.ThrowIfNull(path);
        if (Kind == ObjectKind.Pointer) return Deref().Member(path);
        var layout = Type.Layout ?? throw new ObjectTypeException($"{Type.Name} has no members (asked for '{path}')");
        BtfMember m;
        try { m = layout.GetMember(path); }
        catch (KeyNotFoundException e) { throw new ObjectTypeException(e.Message); }
        catch (ArgumentException e) { throw new ObjectTypeException(e.Message); }
        long bits = m.BitOffset;
        if (bits < 0) throw new ObjectTypeException($"{Type.Name}: member '{path}' lies at bit {bits}, before the struct");
        ulong address = Address + (ulong)(bits / 8);
        return m.IsBitfield
            ? new KernelObject(Space, m.TypeId, address, (int)(bits % 8), m.BitfieldSize)
            : new KernelObject(Space, m.TypeId, address, 0, 0);
    }

    /// <summary>Non-throwing <see cref="Member"/> for a member that exists only in some kernel versions.</summary>
    public bool TryMember(string path, out KernelObject member)
    {
        var layout = Kind == ObjectKind.Pointer ? Space.Type(Type.TargetId).Layout : Type.Layout;
        if (layout is null || !layout.TryGetMemberPath(path, out _))
        {
            member = null!;
            return false;
        }
        member = Member(path);
        return true;
    }

    /// <summary>Whether the type (or the struct a pointer points to) has <paramref name="path"/>.</summary>
    public bool HasMember(string path)
    {
        var layout = Kind == ObjectKind.Pointer ? Space.Type(Type.TargetId).Layout : Type.Layout;
        return layout is not null && layout.TryGetMemberPath(path, out _);
    }

    public KernelObject Element(long index)
    {
        if (Kind == ObjectKind.Array)
        {
            var element = Space.Type(Type.TargetId);
            if (index < 0 || (Type.Length != 0 && index >= Type.Length))
                throw new ObjectTypeException($"index {index} is outside {Type.Name}");
            return new KernelObject(Space, Type.TargetId, checked(Address + (ulong)index * (ulong)element.Size), 0, 0);
        }
        if (Kind == ObjectKind.Pointer)
        {
            var target = Space.Type(Type.TargetId);
            ulong pointer = ReadPointer();
            Space.ChargeDeref(Address);
            return new KernelObject(Space, Type.TargetId, unchecked(pointer + (ulong)(index * target.Size)), 0, 0);
        }
        throw new ObjectTypeException($"{Type.Name} is neither an array nor a pointer (asked for element {index})");
    }

    /// <summary>The object a pointer points to (C's <c>*p</c>). Counts against MaxObjectDerefs.</summary>
    /// <exception cref="ObjectFaultException">The pointer is NULL or cannot be read.</exception>
    public KernelObject Deref()
    {
        if (Kind != ObjectKind.Pointer) throw new ObjectTypeException($"{Type.Name} is not a pointer");
        ulong pointer = ReadPointer();
        if (pointer == 0) throw new ObjectFaultException($"NULL pointer ({Type.Name} at 0x{Address:x})", Address);
        Space.ChargeDeref(Address);
        return new KernelObject(Space, Type.TargetId, pointer, 0, 0);
    }

    /// <summary>Non-throwing <see cref="Deref"/>: false for NULL or an unreadable pointer.</summary>
    public bool TryDeref(out KernelObject target)
    {
        target = null!;
        if (Kind != ObjectKind.Pointer) throw new ObjectTypeException($"{Type.Name} is not a pointer");
        if (!TryReadRaw(out ulong pointer) || pointer == 0) return false;
        Space.ChargeDeref(Address);
        target = new KernelObject(Space, Type.TargetId, pointer, 0, 0);
        return true;
    }

    /// <summary>The same address seen as <paramref name="typeName"/> (C's <c>*(T *)&amp;x</c>).</summary>
    public KernelObject Cast(string typeName) => Space.Object(typeName, Address);

    /// <summary>The <paramref name="typeName"/> this object is the member <paramref name="memberPath"/> of (the kernel's
    /// <c>container_of</c>). For a pointer, the pointed-to address is used (as <c>container_of(ptr, ...)</c>).</summary>
    public KernelObject ContainerOf(string typeName, string memberPath)
    {
        var outer = Space.Type(typeName);
        var layout = outer.Layout ?? throw new ObjectTypeException($"{outer.Name} is not a struct or union");
        long offset;
        try { offset = layout.Offset(memberPath); }
        catch (KeyNotFoundException e) { throw new ObjectTypeException(e.Message); }
        ulong at = Kind == ObjectKind.Pointer ? ReadPointer() : Address;
        return new KernelObject(Space, outer.Id, unchecked(at - (ulong)offset), 0, 0);
    }

    /// <summary>
    /// The entries of the list this <c>struct list_head</c> heads: each <c>next</c> until the head comes back, seen as
    /// the <paramref name="typeName"/> whose <paramref name="memberPath"/> is the node. Bounded by MaxObjectDerefs; a
    /// node that cannot be read ends the walk with <see cref="ObjectFaultException"/>.
    /// </summary>
    public IEnumerable<KernelObject> ListEntries(string typeName, string memberPath)
    {
        var outer = Space.Type(typeName);
        var layout = outer.Layout ?? throw new ObjectTypeException($"{outer.Name} is not a struct or union");
        long offset;
        try { offset = layout.Offset(memberPath); }
        catch (KeyNotFoundException e) { throw new ObjectTypeException(e.Message); }
        return Walk(outer.Id, (ulong)offset);
    }

    private IEnumerable<KernelObject> Walk(int outerId, ulong offset)
    {
        ulong head = Address;
        ulong node = this["next"].ReadPointer();
        var seen = new HashSet<ulong>();
        while (node != head)
        {
            if (node == 0) throw new ObjectFaultException($"list at 0x{head:x}: NULL next pointer", head);
            if (!seen.Add(node)) throw new ObjectFaultException($"list at 0x{head:x}: node 0x{node:x} comes round again without reaching the head (a cycle)", node);
            Space.ChargeDeref(node);
            yield return new KernelObject(Space, outerId, unchecked(node - offset), 0, 0);
            if (!Space.Reader.TryPointer(node, out ulong next))
                throw new ObjectFaultException($"list at 0x{head:x}: node 0x{node:x} cannot be read", node);
            node = next;
        }
    }

    /// <summary>Direct members of a struct or union, in declaration order (anonymous members with an empty name).</summary>
    public IEnumerable<(string Name, KernelObject Value)> Members()
    {
        var layout = Type.Layout ?? throw new ObjectTypeException($"{Type.Name} has no members");
        foreach (var m in layout.Members)
        {
            ulong address = Address + (ulong)(m.BitOffset / 8);
            yield return (m.Name, m.IsBitfield
                ? new KernelObject(Space, m.TypeId, address, (int)(m.BitOffset % 8), m.BitfieldSize)
                : new KernelObject(Space, m.TypeId, address, 0, 0));
        }
    }

    // ---------------------------------------------------------------- values

    /// <summary>The value as unsigned 64 bits (integers, chars, bools, enums, pointers; bitfields extracted).</summary>
    /// <exception cref="ObjectFaultException">The memory cannot be read.</exception>
    public ulong ReadUInt64() =>
        TryReadRaw(out ulong value) ? value : throw new ObjectFaultException($"cannot read {Type.Name} at 0x{Address:x}", Address);

    /// <summary>The value, sign-extended when the type is signed.</summary>
    public long ReadInt64()
    {
        ulong raw = ReadUInt64();
        int bits = IsBitfield ? BitSize : (int)Math.Min(Type.Size * 8, 64);
        if (!Type.IsSigned || bits is 0 or >= 64) return (long)raw;
        int shift = 64 - bits;
        return (long)(raw << shift) >> shift;
    }

    /// <summary>A pointer's value (no dereference).</summary>
    public ulong ReadPointer()
    {
        if (Kind != ObjectKind.Pointer) throw new ObjectTypeException($"{Type.Name} is not a pointer");
        return ReadUInt64();
    }

    public bool ReadBool() => ReadUInt64() != 0;

    /// <summary>The enumerator naming the value, or null when none does.</summary>
    public string? ReadEnumName()
    {
        if (Kind != ObjectKind.Enum) throw new ObjectTypeException($"{Type.Name} is not an enum");
        long value = ReadInt64();
        ulong unsignedValue = ReadUInt64();
        foreach (var e in Type.Btf.GetEnumValues(Type.ResolvedId))
            if (e.Value == value || (ulong)e.Value == unsignedValue) return e.Name;
        return null;
    }

    /// <summary>
    /// The NUL-terminated text of a char array (at most its length) or of what a char pointer points to (at most
    /// <paramref name="maxLength"/> bytes, itself capped by MaxStringLength). Invalid UTF-8 becomes U+FFFD.
    /// </summary>
    public string ReadString(int maxLength = 4096)
    {
        int limit = Math.Min(maxLength, Space.Limits.MaxStringLength);
        ulong at;
        if (Kind == ObjectKind.Array && Space.Type(Type.TargetId).Kind is ObjectKind.Char or ObjectKind.Integer && Space.Type(Type.TargetId).Size == 1)
        {
            at = Address;
            if (Type.Length != 0) limit = (int)Math.Min(limit, Type.Length);
        }
        else if (Kind == ObjectKind.Pointer)
        {
            at = ReadPointer();
            if (at == 0) throw new ObjectFaultException($"NULL string pointer ({Type.Name} at 0x{Address:x})", Address);
            Space.ChargeDeref(Address);
        }
        else throw new ObjectTypeException($"{Type.Name} is not a char array or pointer");
        return Space.Reader.ReadCString(at, limit) ?? throw new ObjectFaultException($"cannot read the string at 0x{at:x}", at);
    }

    /// <summary>The object's bytes (its type's size, capped by MaxGuestAllocation).</summary>
    public byte[] ReadBytes()
    {
        if (Type.Size <= 0) return [];
        if (Type.Size > Space.Limits.MaxGuestAllocation)
            throw new ObjectTypeException($"{Type.Name} is {Type.Size} bytes, more than MaxGuestAllocation = {Space.Limits.MaxGuestAllocation}");
        var bytes = new byte[Type.Size];
        if (Space.Reader.Read(Address, bytes) != bytes.Length) throw new ObjectFaultException($"cannot read {Type.Name} at 0x{Address:x}", Address);
        return bytes;
    }

    /// <summary>Non-throwing read of a scalar value (see <see cref="ReadUInt64"/>).</summary>
    public bool TryReadRaw(out ulong value)
    {
        value = 0;
        if (!Type.IsScalar) throw new ObjectTypeException($"{Type.Name} is not a scalar (integer, char, bool, enum or pointer)");
        if (IsBitfield)
        {
            int bytes = (BitOffset + BitSize + 7) / 8;
            Span<byte> buf = stackalloc byte[16];
            if (bytes > 16 || Space.Reader.Read(Address, buf[..bytes]) != bytes) return false;
            UInt128 all = BinaryPrimitives.ReadUInt128LittleEndian(buf);
            ulong mask = BitSize >= 64 ? ulong.MaxValue : (1UL << BitSize) - 1;
            value = (ulong)(all >> BitOffset) & mask;
            return true;
        }
        long size = Type.Size;
        if (size is <= 0 or > 8) throw new ObjectTypeException($"{Type.Name} is {size} bytes: not read as one number");
        Span<byte> b = stackalloc byte[8];
        b.Clear();
        if (Space.Reader.Read(Address, b[..(int)size]) != size) return false;
        value = BinaryPrimitives.ReadUInt64LittleEndian(b);
        return true;
    }

    /// <summary>A short text of the value (for printing): numbers in decimal, pointers in hex (functions named),
    /// enums by name, bools, char arrays as quoted strings. Null for structs, unions and other arrays.</summary>
    public string? FormatValue()
    {
        switch (Kind)
        {
            case ObjectKind.Pointer:
            {
                ulong p = ReadPointer();
                var target = Space.Type(Type.TargetId);
                if (p != 0 && target.Kind == ObjectKind.Function && Space.Symbols is { } symbols && symbols.TryFindContaining(p, out _, out _))
                    return $"0x{p:x} <{symbols.Describe(p)}>";
                return $"0x{p:x}";
            }
            case ObjectKind.Bool: return ReadBool() ? "true" : "false";
            case ObjectKind.Enum:
                return ReadEnumName() ?? ReadInt64().ToString(System.Globalization.CultureInfo.InvariantCulture);
            case ObjectKind.Integer or ObjectKind.Char:
                return Type.IsSigned ? ReadInt64().ToString(System.Globalization.CultureInfo.InvariantCulture)
                    : ReadUInt64().ToString(System.Globalization.CultureInfo.InvariantCulture);
            case ObjectKind.Float:
            {
                var bytes = ReadBytes();
                return bytes.Length switch
                {
                    4 => BitConverter.ToSingle(bytes).ToString(System.Globalization.CultureInfo.InvariantCulture),
                    8 => BitConverter.ToDouble(bytes).ToString(System.Globalization.CultureInfo.InvariantCulture),
                    _ => "0x" + Convert.ToHexStringLower(bytes),
                };
            }
            case ObjectKind.Array when IsCharArray:
                return Quote(ReadString(int.MaxValue));
            default:
                return null;
        }
    }

    /// <summary>An array of one-byte chars (read as a string).</summary>
    public bool IsCharArray => Kind == ObjectKind.Array && Space.Type(Type.TargetId) is { Kind: ObjectKind.Char, Size: 1 };

    /// <summary>C-style quoting: quotes and backslashes escaped; control characters are escaped later by the terminal writer.</summary>
    internal static string Quote(string s)
    {
        var sb = new StringBuilder(s.Length + 2).Append('"');
        foreach (char c in s) sb.Append(c is '"' or '\\' ? "\\" + c : c.ToString());
        return sb.Append('"').ToString();
    }
}
