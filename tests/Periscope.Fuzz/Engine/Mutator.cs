using System.Buffers.Binary;
using CsCheck;

namespace Periscope.Fuzz.Engine;

/// <summary>
/// Structure-blind byte mutations in the style of AFL's havoc stage, drawn from CsCheck generators with CsCheck's PCG so
/// a (seed, iteration) pair always yields the same input: bit flips, interesting 1/2/4/8-byte values (boundaries, 2^31,
/// 2^63, -1, page and huge sizes, target-supplied addresses), small arithmetic, block copy, insert, delete and
/// truncation. Mutations prefer the target's focus regions.
/// </summary>
public sealed class Mutator
{
    private static readonly ulong[] Interesting8 =
    [
        0, 1, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff, 0x100000000,
        0x7fffffffffffffff, 0x8000000000000000, 0xffffffffffffffff, 0xfffffffffffff000, 0x1000, 0x200000, 0x40000000,
        0x7fffffc0, 0xffff888000000000, 0xffffffff81000000, 0xffffffffc0000000, 0xff11000000000000, 56, 64, 4096 - 8,
    ];

    private enum Kind { FlipBit, SetByte, Interesting, Arith, CopyBlock, InsertBlock, DeleteBlock, Truncate, Splat8 }

    private readonly record struct Mutation(Kind Kind, uint A, uint B, uint C, int Value, bool InFocus);

    private static readonly Gen<Kind> KindGen = Gen.Frequency(
        (6, Gen.Const(Kind.FlipBit)), (4, Gen.Const(Kind.SetByte)), (10, Gen.Const(Kind.Interesting)), (4, Gen.Const(Kind.Arith)),
        (2, Gen.Const(Kind.CopyBlock)), (1, Gen.Const(Kind.InsertBlock)), (1, Gen.Const(Kind.DeleteBlock)),
        (1, Gen.Const(Kind.Truncate)), (6, Gen.Const(Kind.Splat8)));

    private static readonly Gen<Mutation> MutationGen =
        Gen.Select(KindGen, Gen.UInt, Gen.UInt, Gen.UInt, Gen.Int[-35, 35], Gen.Int[0, 9],
            (k, a, b, c, v, focus) => new Mutation(k, a, b, c, v, focus < 8));

    private static readonly Gen<Mutation[]> StackGen = MutationGen.Array[1, 8];

    private readonly ulong[] _dictionary;

    public Mutator(IReadOnlyList<ulong> targetDictionary) => _dictionary = [.. Interesting8, .. targetDictionary];

    public byte[] Mutate(byte[] seed, IReadOnlyList<(int Offset, int Length)>? focus, PCG pcg)
    {
        var stack = StackGen.Generate(pcg, null, out _);
        byte[] buf = (byte[])seed.Clone();
        foreach (var m in stack) buf = Apply(buf, m, focus);
        return buf;
    }

    private byte[] Apply(byte[] b, Mutation m, IReadOnlyList<(int Offset, int Length)>? focus)
    {
        if (b.Length == 0) return m.Kind == Kind.InsertBlock ? new byte[1 + m.B % 64] : b;
        int pos = Position(b.Length, m.A, m.C, m.InFocus ? focus : null);
        switch (m.Kind)
        {
            case Kind.FlipBit:
                b[pos] ^= (byte)(1 << (int)(m.B & 7));
                return b;
            case Kind.SetByte:
                b[pos] = (byte)m.B;
                return b;
            case Kind.Interesting:
            {
                ulong v = _dictionary[m.B % (uint)_dictionary.Length];
                if ((m.C & 0x100) != 0 && _dictionary.Length > Interesting8.Length) v = _dictionary[Interesting8.Length + (int)(m.B % (uint)(_dictionary.Length - Interesting8.Length))];
                int width = 1 << (int)((m.B >> 8) & 3);
                Write(b, pos, v, width);
                return b;
            }
            case Kind.Arith:
            {
                int width = 1 << (int)((m.B >> 8) & 3);
                if (pos + width > b.Length) return b;
                ulong cur = Read(b, pos, width);
                Write(b, pos, cur + (ulong)(long)m.Value, width);
                return b;
            }
            case Kind.Splat8:
            {
                // The "8-byte write into an object" of the issue: aligned, one value from the dictionary.
                int aligned = pos & ~7;
                if (aligned + 8 > b.Length) return b;
                ulong v = _dictionary[m.B % (uint)_dictionary.Length];
                if ((m.C & 3) == 0) v = Read(b, aligned, 8) + (ulong)(long)(m.Value * 8);
                Write(b, aligned, v, 8);
                return b;
            }
            case Kind.CopyBlock:
            {
                int len = (int)Math.Min(1 + m.B % 256, (uint)b.Length);
                int from = (int)(m.C % (uint)(b.Length - len + 1));
                int to = Math.Min(pos, b.Length - len);
                Array.Copy(b, from, b, to, len);
                return b;
            }
            case Kind.InsertBlock:
            {
                if (b.Length > 8 << 20) return b;
                int len = 1 + (int)(m.B % 64);
                var nb = new byte[b.Length + len];
                Array.Copy(b, nb, pos);
                for (int i = 0; i < len; i++) nb[pos + i] = (m.C & 1) == 0 ? (byte)0 : b[(int)((m.C + (uint)i) % (uint)b.Length)];
                Array.Copy(b, pos, nb, pos + len, b.Length - pos);
                return nb;
            }
            case Kind.DeleteBlock:
            {
                int len = (int)Math.Min(1 + m.B % 64, (uint)(b.Length - pos));
                var nb = new byte[b.Length - len];
                Array.Copy(b, nb, pos);
                Array.Copy(b, pos + len, nb, pos, b.Length - pos - len);
                return nb;
            }
            case Kind.Truncate:
                return b[..pos];
        }
        return b;
    }

    private static int Position(int length, uint a, uint c, IReadOnlyList<(int Offset, int Length)>? focus)
    {
        if (focus is { Count: > 0 })
        {
            var (off, len) = focus[(int)(c % (uint)focus.Count)];
            if (off >= 0 && off < length && len > 0) return off + (int)(a % (uint)Math.Min(len, length - off));
        }
        return (int)(a % (uint)length);
    }

    private static ulong Read(byte[] b, int pos, int width) => width switch
    {
        1 => b[pos],
        2 => BinaryPrimitives.ReadUInt16LittleEndian(b.AsSpan(pos)),
        4 => BinaryPrimitives.ReadUInt32LittleEndian(b.AsSpan(pos)),
        _ => BinaryPrimitives.ReadUInt64LittleEndian(b.AsSpan(pos)),
    };

    private static void Write(byte[] b, int pos, ulong v, int width)
    {
        if (pos + width > b.Length) return;
        switch (width)
        {
            case 1: b[pos] = (byte)v; break;
            case 2: BinaryPrimitives.WriteUInt16LittleEndian(b.AsSpan(pos), (ushort)v); break;
            case 4: BinaryPrimitives.WriteUInt32LittleEndian(b.AsSpan(pos), (uint)v); break;
            default: BinaryPrimitives.WriteUInt64LittleEndian(b.AsSpan(pos), v); break;
        }
    }
}
