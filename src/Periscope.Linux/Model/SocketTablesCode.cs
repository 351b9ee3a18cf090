using System.Buffers.Binary;
using System.Numerics;
using Iced.Intel;
using Periscope.Linux.Kallsyms;

namespace Periscope.Linux.Model;

/// <summary>
/// The socket tables' data objects on kernels whose kallsyms has no data symbols (CONFIG_KALLSYMS_ALL=n, Debian's i386
/// kernels), read from the code of small functions that use them, decoded with Iced:
/// <c>udp_rcv</c> is <c>__udp4_lib_rcv(skb, &amp;udp_table, IPPROTO_UDP)</c> (its one data address);
/// <c>tcp_twsk_purge</c> passes <c>&amp;tcp_hashinfo</c> to <c>inet_twsk_purge</c>, and <c>tcp_sk_init</c> loads it too;
/// <c>tcp_sk_init</c> compares the namespace with <c>&amp;init_net</c> (tcp_set_hashinfo's net_eq);
/// <c>netlink_has_listeners</c> loads the pointer <c>nl_table</c> (its one data address).
/// Every address taken is a kernel pointer past _etext, and tcp_hashinfo and udp_table must have their table's shape
/// (a nulls-marked ehash; a slot array with mask and log); a function that yields no such address yields nothing.
/// </summary>
public static class SocketTablesCode
{
    /// <summary>Bytes of a function decoded (the ones used are short, or use the address early).</summary>
    public const int MaxCodeBytes = 1024;
    private const int MaxInstructions = 320;
    /// <summary>Buckets of a candidate ehash checked for their nulls markers.</summary>
    private const int ShapeBuckets = 16;

    /// <summary>The object's address, or null (with the reason) when no function yields it.</summary>
    public static ulong? Find(GuestReader reader, KernelSymbols symbols, string name, out string how)
    {
        var symbol = KernelCodeBytes.Symbols(symbols);
        ulong textEnd = symbol("_etext") ?? 0;
        bool IsData(ulong a) => a > textEnd && reader.IsKernelPointer(a);
        return Find(name, symbol, KernelCodeBytes.Reader(reader, MaxCodeBytes), reader.PointerSize, a => IsData(a) && name switch
        {
            "tcp_hashinfo" => IsHashinfo(reader, a),
            "udp_table" => IsUdpTable(reader, a),
            "nl_table" => IsNetlinkTablePointer(reader, a),
            _ => true,
        }, out how);
    }

    /// <param name="symbol">A text symbol's address, or null.</param>
    /// <param name="read">The first bytes of the function at an address, or null.</param>
    /// <param name="word">The guest's pointer size: 8 (x86-64) or 4 (i386).</param>
    /// <param name="accept">Whether an address found in the code is the object (its shape).</param>
    public static ulong? Find(string name, Func<string, ulong?> symbol, Func<ulong, byte[]?> read, int word, Func<ulong, bool> accept, out string how)
    {
        (string Function, Func<Instruction, bool> Use)[] sources = name switch
        {
            "udp_table" => [("udp_rcv", _ => true)],
            "tcp_hashinfo" => [("tcp_twsk_purge", _ => true), ("tcp_sk_init", i => i.Mnemonic != Mnemonic.Cmp)],
            "init_net" => [("tcp_sk_init", i => i.Mnemonic == Mnemonic.Cmp)],
            "nl_table" => [("netlink_has_listeners", _ => true)],
            _ => [],
        };
        foreach (var (function, use) in sources)
        {
            if (symbol(function) is not { } at || read(at) is not { Length: > 0 } code) continue;
            var found = Addresses(code.Length > MaxCodeBytes ? code[..MaxCodeBytes] : code, at, word, use).Where(accept).Distinct().ToList();
            if (found.Count == 1)
            {
                how = $"{function} at 0x{at:x} uses it";
                return found[0];
            }
        }
        how = $"no function of {string.Join(", ", sources.Select(s => s.Function))} yields one {name}";
        return null;
    }

    /// <summary>Absolute addresses an instruction stream holds: immediates, absolute displacements, RIP-relative targets.</summary>
    private static IEnumerable<ulong> Addresses(byte[] code, ulong at, int word, Func<Instruction, bool> use)
    {
        var decoder = Decoder.Create(word * 8, new ByteArrayCodeReader(code), at);
        for (int n = 0; n < MaxInstructions && decoder.IP < at + (ulong)code.Length; n++)
        {
            decoder.Decode(out var ins);
            if (ins.IsInvalid) yield break;
            if (!use(ins)) continue;
            for (int op = 0; op < ins.OpCount; op++)
            {
                var kind = ins.GetOpKind(op);
                if (kind is OpKind.Immediate32 or OpKind.Immediate32to64 or OpKind.Immediate64)
                    yield return word == 4 ? ins.GetImmediate(op) & 0xffff_ffff : ins.GetImmediate(op);
                else if (kind == OpKind.Memory && ins.IsIPRelativeMemoryOperand) yield return ins.IPRelativeMemoryAddress;
                else if (kind == OpKind.Memory && ins.MemoryBase == Register.None && ins.MemoryIndex == Register.None && ins.SegmentPrefix == Register.None)
                    yield return word == 4 ? ins.MemoryDisplacement32 : ins.MemoryDisplacement64;
            }
            if (ins.FlowControl == FlowControl.Return) yield break;
        }
    }

    /// <summary>inet_hashinfo starts with ehash (nulls-marked buckets: an empty bucket i holds i &lt;&lt; 1 | 1), and its
    /// ehash_mask (count - 1) sits two words further.</summary>
    internal static bool IsHashinfo(GuestReader r, ulong at)
    {
        if (!r.TryPointer(at, out ulong ehash) || !r.IsKernelPointer(ehash) || !r.TryU32(at + 2 * (ulong)r.PointerSize, out uint mask)
            || mask == 0 || !BitOperations.IsPow2((ulong)mask + 1)) return false;
        int markers = 0;
        for (ulong i = 0; i < Math.Min(mask + 1UL, ShapeBuckets); i++)
        {
            if (!r.TryPointer(ehash + i * (ulong)r.PointerSize, out ulong v)) return false;
            if (v == ((i << 1) | 1)) markers++;
            else if ((v & 1) != 0 || !r.IsKernelPointer(v)) return false;
        }
        return markers > 0;
    }

    /// <summary>nl_table points to the kcalloc'ed netlink_table array, whose first member (hash.tbl) is a bucket table
    /// { u32 size (a power of two), u32 nest, ... }.</summary>
    internal static bool IsNetlinkTablePointer(GuestReader r, ulong at) =>
        r.TryPointer(at, out ulong array) && r.IsKernelPointer(array) && r.TryPointer(array, out ulong tbl) && r.IsKernelPointer(tbl)
        && r.TryU32(tbl, out uint size) && size != 0 && BitOperations.IsPow2(size);

    /// <summary>udp_table { hash, hash2, [hash4,] u32 mask, u32 log }: a mask whose log follows it, with hash2 right after
    /// hash's mask + 1 slots.</summary>
    internal static bool IsUdpTable(GuestReader r, ulong at)
    {
        int p = r.PointerSize;
        var w = new byte[6 * p];
        if (r.Read(at, w) != w.Length) return false;
        ulong Word(int o) => p == 8 ? BinaryPrimitives.ReadUInt64LittleEndian(w.AsSpan(o)) : BinaryPrimitives.ReadUInt32LittleEndian(w.AsSpan(o));
        ulong hash = Word(0), hash2 = Word(p);
        for (int m = 2 * p; m + 8 <= w.Length; m += 4)
        {
            uint mask = BinaryPrimitives.ReadUInt32LittleEndian(w.AsSpan(m)), log = BinaryPrimitives.ReadUInt32LittleEndian(w.AsSpan(m + 4));
            if (mask == 0 || !BitOperations.IsPow2((ulong)mask + 1) || log != (uint)BitOperations.Log2((ulong)mask + 1)) continue;
            return r.IsKernelPointer(hash) && hash2 > hash && (hash2 - hash) % (mask + 1UL) == 0 && (hash2 - hash) / (mask + 1UL) is >= 8 and <= 64;
        }
        return false;
    }
}
