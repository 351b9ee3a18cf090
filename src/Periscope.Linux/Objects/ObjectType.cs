using Periscope.Linux.Btf;

namespace Periscope.Linux.Objects;

/// <summary>What a kernel object is, after typedefs and qualifiers are seen through.</summary>
public enum ObjectKind
{
    Void,
    Integer,
    Bool,
    /// <summary>A one-byte integer BTF marks as a character (<c>char</c>); arrays of it read as strings.</summary>
    Char,
    Float,
    Pointer,
    Array,
    Struct,
    Union,
    Enum,
    /// <summary>A function prototype (only reachable through a function pointer).</summary>
    Function,
    /// <summary>A forward declaration BTF never defines: its size and members are unknown.</summary>
    Opaque,
}

/// <summary>
/// A BTF type as the object API sees it: the declared id (kept for its name, e.g. <c>pid_t</c>), the resolved kind,
/// size and signedness, and for pointers and arrays what they hold. Built once per id by <see cref="KernelObjects"/>.
/// </summary>
public sealed class ObjectType
{
    // BTF_INT_ENCODING bits (include/uapi/linux/btf.h).
    private const uint IntSigned = 1, IntChar = 2, IntBool = 4;

    internal ObjectType(BtfTypes btf, int id)
    {
        Btf = btf;
        Id = id;
        ResolvedId = btf.ResolveTypedefs(id);
        var kind = btf.GetKind(ResolvedId);
        long size = kind is BtfKind.Fwd or BtfKind.FuncProto ? 0 : btf.SizeOf(ResolvedId);
        Size = size;
        switch (kind)
        {
            case BtfKind.Void: Kind = ObjectKind.Void; break;
            case BtfKind.Int:
                uint encoding = (btf.Tail(ResolvedId, 0) >> 24) & 0xf;
                IsSigned = (encoding & IntSigned) != 0;
                Kind = (encoding & IntBool) != 0 ? ObjectKind.Bool
                    : (encoding & IntChar) != 0 || (size == 1 && btf.GetName(ResolvedId) is "char" or "signed char" or "unsigned char") ? ObjectKind.Char
                    : ObjectKind.Integer;
                break;
            case BtfKind.Float: Kind = ObjectKind.Float; break;
            case BtfKind.Ptr:
                Kind = ObjectKind.Pointer;
                TargetId = btf.GetType(ResolvedId).ReferencedType;
                break;
            case BtfKind.Array:
                Kind = ObjectKind.Array;
                btf.TryGetArray(ResolvedId, out var array);
                TargetId = array.ElementType;
                Length = array.Count;
                break;
            case BtfKind.Struct: Kind = ObjectKind.Struct; break;
            case BtfKind.Union: Kind = ObjectKind.Union; break;
            case BtfKind.Enum or BtfKind.Enum64:
                Kind = ObjectKind.Enum;
                IsSigned = btf.GetType(ResolvedId).KindFlag;
                break;
            case BtfKind.FuncProto: Kind = ObjectKind.Function; break;
            default: Kind = ObjectKind.Opaque; break;
        }
        Name = TypeNames.Describe(btf, id);
    }

    internal BtfTypes Btf { get; }

    /// <summary>The type id as declared (a typedef keeps its own name).</summary>
    public int Id { get; }

    /// <summary>The id after typedefs, const, volatile, restrict and type tags.</summary>
    public int ResolvedId { get; }

    public ObjectKind Kind { get; }

    /// <summary>Size in bytes (element size × count for arrays; 0 for void, functions and opaque types).</summary>
    public long Size { get; }

    /// <summary>For integers, chars and enums: whether the value is signed.</summary>
    public bool IsSigned { get; }

    /// <summary>For pointers: the pointed-to type; for arrays: the element type. 0 (void) otherwise.</summary>
    public int TargetId { get; }

    /// <summary>For arrays: the element count (0 for a flexible array member).</summary>
    public uint Length { get; }

    /// <summary>The C spelling: <c>struct task_struct</c>, <c>pid_t</c>, <c>char[16]</c>, <c>struct mm_struct *</c>.</summary>
    public string Name { get; }

    public bool IsComposite => Kind is ObjectKind.Struct or ObjectKind.Union;

    /// <summary>Whether values of this kind are read as one number (integers, chars, bools, enums, pointers).</summary>
    public bool IsScalar => Kind is ObjectKind.Integer or ObjectKind.Char or ObjectKind.Bool or ObjectKind.Enum or ObjectKind.Pointer;

    /// <summary>The struct or union layout; null for other kinds.</summary>
    public StructLayout? Layout => IsComposite ? Btf.GetStruct(ResolvedId) : null;

    public override string ToString() => Name;
}

/// <summary>C spellings of BTF types, bounded by the type-chain limit (a hostile cycle ends in "…").</summary>
internal static class TypeNames
{
    public static string Describe(BtfTypes btf, int id) => Describe(btf, id, 0);

    private static string Describe(BtfTypes btf, int id, int depth)
    {
        if (depth > btf.Limits.MaxTypeChainDepth) return "…";
        if (id == 0) return "void";
        var t = btf.GetType(id);
        string Tagged(string tag) => t.Name.Length != 0 ? $"{tag} {t.Name}" : $"{tag} <anonymous>";
        return t.Kind switch
        {
            BtfKind.Int or BtfKind.Float or BtfKind.Typedef => t.Name,
            BtfKind.Struct => Tagged("struct"),
            BtfKind.Union => Tagged("union"),
            BtfKind.Enum or BtfKind.Enum64 => Tagged("enum"),
            BtfKind.Fwd => Tagged(t.KindFlag ? "union" : "struct"),
            BtfKind.Ptr => Pointer(btf, t.ReferencedType, depth),
            BtfKind.Array => Array(btf, id, depth),
            BtfKind.Const => "const " + Describe(btf, t.ReferencedType, depth + 1),
            BtfKind.Volatile => "volatile " + Describe(btf, t.ReferencedType, depth + 1),
            BtfKind.Restrict or BtfKind.TypeTag => Describe(btf, t.ReferencedType, depth + 1),
            BtfKind.FuncProto => "function",
            _ => t.Kind.ToString().ToLowerInvariant(),
        };
    }

    private static string Pointer(BtfTypes btf, int target, int depth)
    {
        if (target != 0 && btf.GetKind(btf.ResolveTypedefs(target)) == BtfKind.FuncProto) return "function *";
        string inner = Describe(btf, target, depth + 1);
        return inner.EndsWith('*') ? inner + "*" : inner + " *";
    }

    private static string Array(BtfTypes btf, int id, int depth)
    {
        btf.TryGetArray(id, out var a);
        return $"{Describe(btf, a.ElementType, depth + 1)}[{a.Count}]";
    }
}
