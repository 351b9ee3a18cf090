using Periscope.Linux.Btf;
using Periscope.Linux.Kallsyms;
using Periscope.Linux.Model;
using Periscope.Memory;

namespace Periscope.Linux.Objects;

/// <summary>
/// Typed access to any kernel object by its BTF type, the way drgn's <c>Object</c> works:
/// <c>objects.Object("task_struct", address)["comm"].ReadString()</c>, <c>task["mm"]["pgd"]</c> (a member of a pointer
/// to a struct goes through the pointer, like C's <c>-&gt;</c>), <c>task["tasks"].ListEntries("task_struct", "tasks")</c>.
/// </summary>
/// <remarks>
/// Read-only by construction: there is no write path. Every read goes through the kernel's <see cref="GuestReader"/>, so
/// it is charged to the command's <see cref="WorkBudget"/>; every pointer followed is counted against
/// <see cref="IntrospectionLimits.MaxObjectDerefs"/>, so that a cycle of pointers costs a bounded amount of work. An
/// unreadable address raises <see cref="ObjectFaultException"/> (bad guest data); asking for a member a type does not
/// have, or dereferencing a non-pointer, raises <see cref="ObjectTypeException"/> (a caller's mistake).
/// Not thread-safe, like <see cref="LinuxKernel"/>.
/// </remarks>
public sealed class KernelObjects
{
    private readonly Dictionary<int, ObjectType> _types = [];
    private readonly Dictionary<string, int> _typeIdsByName = new(StringComparer.Ordinal);
    private long _derefs;

    public KernelObjects(BtfTypes btf, GuestReader reader, KernelSymbols? symbols = null)
    {
        ArgumentNullException.ThrowIfNull(btf);
        ArgumentNullException.ThrowIfNull(reader);
        Btf = btf;
        Reader = reader;
        Symbols = symbols;
    }

    public BtfTypes Btf { get; }
    public GuestReader Reader { get; }
    /// <summary>Used to name function pointers and to find variables; null when not known.</summary>
    public KernelSymbols? Symbols { get; }
    public IntrospectionLimits Limits => Reader.Limits;

    /// <summary>Pointers followed so far (against <see cref="IntrospectionLimits.MaxObjectDerefs"/>).</summary>
    public long Derefs => _derefs;

    /// <summary>
    /// The object of type <paramref name="typeName"/> at <paramref name="address"/>. The name may be a struct or union
    /// tag with or without its keyword (<c>task_struct</c>, <c>struct task_struct</c>, <c>union thread_union</c>), a
    /// typedef (<c>pid_t</c>), an enum (<c>enum pid_type</c>) or a base type (<c>unsigned long</c>). Nothing is read yet.
    /// </summary>
    /// <exception cref="ObjectTypeException">BTF has no such type.</exception>
    public KernelObject Object(string typeName, ulong address) => new(this, TypeId(typeName), address, 0, 0);

    /// <summary>The object of type <paramref name="typeId"/> at <paramref name="address"/>.</summary>
    public KernelObject Object(int typeId, ulong address)
    {
        if (typeId < 0 || typeId > Btf.Count) throw new ObjectTypeException($"type id {typeId} is outside 0..{Btf.Count}");
        return new KernelObject(this, typeId, address, 0, 0);
    }

    /// <summary>A kernel variable: the object of <paramref name="typeName"/> at the kallsyms address of <paramref name="symbol"/>.</summary>
    /// <exception cref="ObjectTypeException">No such type, or no such symbol.</exception>
    public KernelObject Variable(string symbol, string typeName)
    {
        if (Symbols is null || !Symbols.TryGetAddress(symbol, out ulong address))
            throw new ObjectTypeException($"kallsyms has no symbol '{symbol}'");
        return Object(typeName, address);
    }

    /// <summary>The type <paramref name="typeName"/> names (see <see cref="Object(string, ulong)"/>).</summary>
    public ObjectType Type(string typeName) => Type(TypeId(typeName));

    public ObjectType Type(int typeId)
    {
        if (!_types.TryGetValue(typeId, out var type))
        {
            try { type = new ObjectType(Btf, typeId); }
            catch (ArgumentException e) { throw new ObjectTypeException($"type id {typeId}: {e.Message}"); }
            _types[typeId] = type;
        }
        return type;
    }

    /// <summary>Resolves a type name to its BTF id (cached).</summary>
    public int TypeId(string typeName)
    {
        ArgumentNullException.ThrowIfNull(typeName);
        string name = typeName.Trim();
        if (_typeIdsByName.TryGetValue(name, out int cached)) return cached;
        int? id = null;
        if (name == "void") id = 0;
        else if (name.StartsWith("struct ", StringComparison.Ordinal)) id = Composite(name[7..].Trim(), BtfKind.Struct);
        else if (name.StartsWith("union ", StringComparison.Ordinal)) id = Composite(name[6..].Trim(), BtfKind.Union);
        else if (name.StartsWith("enum ", StringComparison.Ordinal))
            id = Btf.FindTypeId(name[5..].Trim(), BtfKind.Enum) ?? Btf.FindTypeId(name[5..].Trim(), BtfKind.Enum64);
        else
            id = Btf.FindStruct(name)?.TypeId ?? Btf.FindTypeId(name, BtfKind.Typedef) ?? Btf.FindTypeId(name, BtfKind.Int)
                 ?? Btf.FindTypeId(name, BtfKind.Union) ?? Btf.FindTypeId(name, BtfKind.Enum) ?? Btf.FindTypeId(name, BtfKind.Enum64)
                 ?? Btf.FindTypeId(name, BtfKind.Float);
        if (id is not { } found) throw new ObjectTypeException($"BTF has no type named '{name}'");
        _typeIdsByName[name] = found;
        return found;
    }

    private int? Composite(string tag, BtfKind kind)
    {
        var layout = Btf.FindStruct(tag);
        if (layout is not null && layout.IsUnion == (kind == BtfKind.Union)) return layout.TypeId;
        return Btf.FindTypeId(tag, kind);
    }

    /// <summary>Counts one pointer followed; throws once <see cref="IntrospectionLimits.MaxObjectDerefs"/> are spent.</summary>
    internal void ChargeDeref(ulong from)
    {
        if (++_derefs > Limits.MaxObjectDerefs)
            throw new ObjectFaultException(
                $"pointer at 0x{from:x} not followed: MaxObjectDerefs = {Limits.MaxObjectDerefs} pointers were followed already (a cycle?)", from);
    }
}

/// <summary>Guest memory that an object needs cannot be read (unmapped, out of the work budget), or a pointer is null.</summary>
public sealed class ObjectFaultException(string message, ulong address) : KernelModelException(message)
{
    public ulong Address { get; } = address;
}

/// <summary>A type that does not exist, a member the type does not have, an operation the type does not allow.</summary>
public sealed class ObjectTypeException(string message) : KernelModelException(message);
