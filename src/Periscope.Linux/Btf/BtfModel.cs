namespace Periscope.Linux.Btf;

/// <summary>BTF type kinds (bits 24–28 of <c>btf_type.info</c>), numbered as in the kernel's <c>BTF_KIND_*</c>.</summary>
public enum BtfKind
{
    /// <summary>Type id 0: <c>void</c>. Never valid as the kind of a type record.</summary>
    Void = 0,
    Int = 1,
    Ptr = 2,
    Array = 3,
    Struct = 4,
    Union = 5,
    Enum = 6,
    /// <summary>Forward declaration; kind_flag set means a union.</summary>
    Fwd = 7,
    Typedef = 8,
    Volatile = 9,
    Const = 10,
    Restrict = 11,
    Func = 12,
    FuncProto = 13,
    Var = 14,
    DataSec = 15,
    Float = 16,
    DeclTag = 17,
    TypeTag = 18,
    Enum64 = 19,
}

/// <summary>The common part of one type record.</summary>
/// <param name="Id">Type id (1..Count; 0 is void).</param>
/// <param name="Kind">Kind of the record.</param>
/// <param name="Name">Decoded name; empty for anonymous types.</param>
/// <param name="SizeOrType">The <c>size</c> (INT, STRUCT, UNION, ENUM, ENUM64, FLOAT, DATASEC) or <c>type</c> (everything else) field.</param>
/// <param name="Vlen">Number of trailing entries (members, enumerators, parameters, variables); linkage for FUNC.</param>
/// <param name="KindFlag">Bit 31 of info (bitfield encoding for structs, union for FWD, signedness for enums).</param>
public readonly record struct BtfType(int Id, BtfKind Kind, string Name, uint SizeOrType, int Vlen, bool KindFlag)
{
    /// <summary>The type this record refers to (PTR, TYPEDEF, modifiers, FUNC, VAR, DECL_TAG, FUNC_PROTO return). Validated to be 0..Count at parse.</summary>
    public int ReferencedType => (int)SizeOrType;

    /// <summary>The byte size field for sized kinds.</summary>
    public uint Size => SizeOrType;
}

/// <summary>One struct/union member.</summary>
/// <param name="Name">Member name; empty for anonymous struct/union members and unnamed bitfield padding.</param>
/// <param name="TypeId">Type of the member (unresolved: may be a typedef or modifier).</param>
/// <param name="BitOffset">Offset in bits from the start of the struct (accumulated from the outermost struct for members found through anonymous members or paths).</param>
/// <param name="BitfieldSize">Width in bits for a bitfield, else 0.</param>
public readonly record struct BtfMember(string Name, int TypeId, long BitOffset, int BitfieldSize)
{
    /// <summary>Byte holding the first bit of the member.</summary>
    public long ByteOffset => BitOffset / 8;

    public bool IsBitfield => BitfieldSize != 0;
}

/// <summary>The tail of an ARRAY record.</summary>
public readonly record struct BtfArray(int ElementType, int IndexType, uint Count);

/// <summary>One enumerator. ENUM values are sign- or zero-extended per the kind_flag; ENUM64 values are the raw 64 bits.</summary>
public readonly record struct BtfEnumValue(string Name, long Value);
