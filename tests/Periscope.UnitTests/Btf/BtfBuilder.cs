using System.Buffers.Binary;
using System.Text;
using Periscope.Linux.Btf;

namespace Periscope.UnitTests.Btf;

/// <summary>Emits synthetic BTF blobs (header + types + strings, vmlinux layout) for tests. Type ids are handed out in order from 1,
/// or, for split BTF (<see cref="Split"/>), from the base's count + 1 with string offsets after the base's string section.</summary>
internal sealed class BtfBuilder
{
    private readonly List<byte> _types = new();
    private readonly List<byte> _strings = new() { 0 };
    private readonly Dictionary<string, uint> _stringOffsets = new() { [""] = 0 };
    private int _count;
    private int _firstId = 1;
    private uint _stringBase;

    /// <summary>A builder for split BTF on top of <paramref name="baseBtf"/> (a module's .BTF): its first type is
    /// baseBtf.Count + 1 and its own string offsets start at the base's string section length.</summary>
    public static BtfBuilder Split(BtfTypes baseBtf) => new() { _firstId = baseBtf.Count + 1, _stringBase = (uint)baseBtf.StringSectionLength };

    /// <summary>Id the next added type will get (for forward and self references).</summary>
    public int NextId => _firstId + _count;

    public int Count => _count;

    /// <summary>Offset of the string in the string section (added if new).</summary>
    public uint Str(string s)
    {
        if (_stringOffsets.TryGetValue(s, out uint off))
            return off;
        off = _stringBase + (uint)_strings.Count;
        _strings.AddRange(Encoding.UTF8.GetBytes(s));
        _strings.Add(0);
        _stringOffsets[s] = off;
        return off;
    }

    public static uint Info(BtfKind kind, int vlen = 0, bool kindFlag = false) =>
        ((uint)kind << 24) | (uint)vlen | (kindFlag ? 0x8000_0000u : 0);

    /// <summary>Appends a raw record; <paramref name="tail"/> words follow the 12-byte common part.</summary>
    public int Raw(uint nameOff, uint info, uint sizeOrType, params uint[] tail)
    {
        U32(nameOff);
        U32(info);
        U32(sizeOrType);
        foreach (uint w in tail)
            U32(w);
        return _firstId - 1 + ++_count;
    }

    public int Int(string name, int size, int bits = -1, int bitOffset = 0, bool signed = false) =>
        Raw(Str(name), Info(BtfKind.Int), (uint)size,
            (uint)(signed ? 1 << 24 : 0) | ((uint)bitOffset << 16) | (uint)(bits < 0 ? size * 8 : bits));

    public int Ptr(int target) => Raw(0, Info(BtfKind.Ptr), (uint)target);
    public int Typedef(string name, int target) => Raw(Str(name), Info(BtfKind.Typedef), (uint)target);
    public int Const(int target) => Raw(0, Info(BtfKind.Const), (uint)target);
    public int Volatile(int target) => Raw(0, Info(BtfKind.Volatile), (uint)target);
    public int Restrict(int target) => Raw(0, Info(BtfKind.Restrict), (uint)target);
    public int TypeTag(string name, int target) => Raw(Str(name), Info(BtfKind.TypeTag), (uint)target);
    public int Fwd(string name, bool union = false) => Raw(Str(name), Info(BtfKind.Fwd, 0, union), 0);
    public int Float(string name, int size) => Raw(Str(name), Info(BtfKind.Float), (uint)size);
    public int Array(int element, int index, uint count) => Raw(0, Info(BtfKind.Array), 0, (uint)element, (uint)index, count);
    public int Func(string name, int proto, int linkage = 1) => Raw(Str(name), Info(BtfKind.Func, linkage), (uint)proto);
    public int Var(string name, int type, uint linkage = 1) => Raw(Str(name), Info(BtfKind.Var), (uint)type, linkage);
    public int DeclTag(string name, int target, int component = -1) => Raw(Str(name), Info(BtfKind.DeclTag), (uint)target, (uint)component);

    public int FuncProto(int returnType, params (string Name, int Type)[] parameters) =>
        Raw(0, Info(BtfKind.FuncProto, parameters.Length), (uint)returnType,
            parameters.SelectMany(p => new[] { Str(p.Name), (uint)p.Type }).ToArray());

    public int DataSec(string name, uint size, params (int Var, uint Offset, uint Size)[] vars) =>
        Raw(Str(name), Info(BtfKind.DataSec, vars.Length), size,
            vars.SelectMany(v => new[] { (uint)v.Var, v.Offset, v.Size }).ToArray());

    public int Enum(string name, int size, bool signed, params (string Name, int Value)[] values) =>
        Raw(Str(name), Info(BtfKind.Enum, values.Length, signed), (uint)size,
            values.SelectMany(v => new[] { Str(v.Name), (uint)v.Value }).ToArray());

    public int Enum64(string name, params (string Name, ulong Value)[] values) =>
        Raw(Str(name), Info(BtfKind.Enum64, values.Length), 8,
            values.SelectMany(v => new[] { Str(v.Name), (uint)v.Value, (uint)(v.Value >> 32) }).ToArray());

    /// <summary>A member: bit offset, and a bitfield width (0 for none).</summary>
    public static (string Name, int Type, long BitOffset, int Bits) M(string name, int type, long byteOffset) => (name, type, byteOffset * 8, 0);
    public static (string Name, int Type, long BitOffset, int Bits) Bf(string name, int type, long bitOffset, int bits) => (name, type, bitOffset, bits);

    public int Struct(string name, int size, params (string Name, int Type, long BitOffset, int Bits)[] members) =>
        Composite(BtfKind.Struct, name, size, members);

    public int Union(string name, int size, params (string Name, int Type, long BitOffset, int Bits)[] members) =>
        Composite(BtfKind.Union, name, size, members);

    /// <summary>kind_flag is set when any member is a bitfield, as pahole does.</summary>
    private int Composite(BtfKind kind, string name, int size, (string Name, int Type, long BitOffset, int Bits)[] members)
    {
        bool kindFlag = members.Any(m => m.Bits != 0);
        return Raw(Str(name), Info(kind, members.Length, kindFlag), (uint)size,
            members.SelectMany(m => new[]
            {
                Str(m.Name), (uint)m.Type,
                kindFlag ? ((uint)m.Bits << 24) | (uint)m.BitOffset : (uint)m.BitOffset,
            }).ToArray());
    }

    public byte[] Build() => Build(out _);

    /// <summary>Header (24 bytes), type section, string section; <paramref name="stringsAt"/> is the string section's blob offset.</summary>
    public byte[] Build(out int stringsAt)
    {
        var blob = new byte[24 + _types.Count + _strings.Count];
        BinaryPrimitives.WriteUInt16LittleEndian(blob, BtfTypes.Magic);
        blob[2] = 1;
        blob[3] = 0;
        BinaryPrimitives.WriteUInt32LittleEndian(blob.AsSpan(4), 24);
        BinaryPrimitives.WriteUInt32LittleEndian(blob.AsSpan(8), 0);
        BinaryPrimitives.WriteUInt32LittleEndian(blob.AsSpan(12), (uint)_types.Count);
        BinaryPrimitives.WriteUInt32LittleEndian(blob.AsSpan(16), (uint)_types.Count);
        BinaryPrimitives.WriteUInt32LittleEndian(blob.AsSpan(20), (uint)_strings.Count);
        _types.CopyTo(blob, 24);
        _strings.CopyTo(blob, 24 + _types.Count);
        stringsAt = 24 + _types.Count;
        return blob;
    }

    public static void Patch32(byte[] blob, int offset, uint value) =>
        BinaryPrimitives.WriteUInt32LittleEndian(blob.AsSpan(offset), value);

    public static uint Read32(byte[] blob, int offset) => BinaryPrimitives.ReadUInt32LittleEndian(blob.AsSpan(offset));

    private void U32(uint v)
    {
        Span<byte> b = stackalloc byte[4];
        BinaryPrimitives.WriteUInt32LittleEndian(b, v);
        foreach (byte x in b)
            _types.Add(x);
    }
}
