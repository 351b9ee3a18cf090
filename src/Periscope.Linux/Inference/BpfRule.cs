using System.Buffers.Binary;
using System.Globalization;

namespace Periscope.Linux.Inference;

/// <summary>
/// The data facts behind the `bpf` offsets without BTF, as pure checks over bytes (unit-tested on synthetic memory).
/// Kernel facts used: an object name is char[BPF_OBJ_NAME_LEN = 16], NUL-terminated, of letters, digits, '_' and '.'
/// (bpf_obj_name_cpy); a JIT-ed program's kallsyms entry, aux->ksym.name, is "bpf_prog_" + the 8-byte tag in hex + "_" +
/// its name (bpf_get_prog_name, when it has no BTF function info); the translated instructions (struct bpf_insn, 8 bytes:
/// opcode, dst_reg:4 | src_reg:4, off, imm) use registers r0..r10, and the verifier lets a program end only in an
/// exit or a jump (check_cfg: "last insn is not an exit or jmp").
/// </summary>
public static class BpfRule
{
    /// <summary>BPF_OBJ_NAME_LEN (include/uapi/linux/bpf.h).</summary>
    public const int ObjectNameLength = 16;
    /// <summary>"bpf_prog_" and 16 hex digits of the tag (BPF_TAG_SIZE 8).</summary>
    public const string KsymPrefix = "bpf_prog_";
    public const int TagSize = 8;
    /// <summary>MAX_BPF_REG: r0..r10.</summary>
    private const int MaxRegister = 10;
    /// <summary>BPF_JMP | BPF_EXIT, BPF_JMP | BPF_JA, BPF_JMP32 | BPF_JA (gotol), BPF_LD | BPF_IMM | BPF_DW (its second half has opcode 0).</summary>
    private const byte OpExit = 0x95, OpJa = 0x05, OpJa32 = 0x06, OpLdImm64 = 0x18;

    /// <summary>A bpf object name: NUL-terminated within 16 bytes, of the characters bpf_obj_name_cpy accepts, zero after
    /// the NUL (the kernel copies into a zeroed field). Empty names pass (a loader may give none).</summary>
    public static bool IsObjectName(ReadOnlySpan<byte> field)
    {
        if (field.Length < ObjectNameLength) return false;
        field = field[..ObjectNameLength];
        int n = field.IndexOf((byte)0);
        if (n < 0) return false;
        foreach (byte c in field[..n]) if (!(char.IsAsciiLetterOrDigit((char)c) || c is (byte)'_' or (byte)'.')) return false;
        return !field[n..].ContainsAnyExcept((byte)0);
    }

    /// <summary>The NUL-terminated name in a 16-byte field (empty when none).</summary>
    public static string ObjectName(ReadOnlySpan<byte> field)
    {
        field = field[..Math.Min(field.Length, ObjectNameLength)];
        int n = field.IndexOf((byte)0);
        return System.Text.Encoding.ASCII.GetString(n < 0 ? field : field[..n]);
    }

    /// <summary>The tag and name a kallsyms entry "bpf_prog_TAG_NAME" (or "bpf_prog_TAG") starting at <paramref name="at"/>
    /// holds, or null when the bytes there are not one.</summary>
    public static (byte[] Tag, string Name)? ParseKsymName(ReadOnlySpan<byte> bytes)
    {
        int prefix = KsymPrefix.Length, hex = 2 * TagSize;
        if (bytes.Length < prefix + hex + 1 || !bytes[..prefix].SequenceEqual("bpf_prog_"u8)) return null;
        var tag = new byte[TagSize];
        for (int i = 0; i < TagSize; i++)
        {
            string pair = System.Text.Encoding.ASCII.GetString(bytes.Slice(prefix + 2 * i, 2));
            if (!byte.TryParse(pair, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out tag[i]) || pair != pair.ToLowerInvariant()) return null;
        }
        var rest = bytes[(prefix + hex)..];
        if (rest[0] == 0) return (tag, "");
        if (rest[0] != (byte)'_') return null;
        int end = rest.IndexOf((byte)0);
        if (end < 0) return null;
        return (tag, System.Text.Encoding.ASCII.GetString(rest[1..end]));
    }

    /// <summary>True when <paramref name="insns"/> (len instructions) reads as a verified program: every register r0..r10,
    /// a zero opcode only as the second half of a 64-bit immediate load, and an exit or a jump last.</summary>
    public static bool IsProgram(ReadOnlySpan<byte> insns)
    {
        if (insns.Length < 8 || insns.Length % 8 != 0) return false;
        bool secondHalf = false;
        for (int i = 0; i < insns.Length; i += 8)
        {
            byte op = insns[i], regs = insns[i + 1];
            if ((regs & 0xf) > MaxRegister || (regs >> 4) > MaxRegister) return false;
            if (secondHalf)
            {
                if (op != 0 || regs != 0 || BinaryPrimitives.ReadInt16LittleEndian(insns.Slice(i + 2, 2)) != 0) return false;
                secondHalf = false;
                continue;
            }
            if (op == 0) return false;
            secondHalf = op == OpLdImm64;
        }
        byte last = insns[^8];
        return !secondHalf && last is OpExit or OpJa or OpJa32;
    }

    /// <summary>enum bpf_map_type values whose keys are a u32 index (array, prog_array, perf_event_array, percpu_array,
    /// cgroup_array, array_of_maps: array_map_alloc_check and fd_array_map_alloc_check insist on key_size 4).</summary>
    private static readonly HashSet<uint> IndexKeyedMaps = [2, 3, 4, 6, 8, 12];
    /// <summary>The map types that take no key (queue, stack, ringbuf, bloom_filter, user_ringbuf, arena: their alloc checks
    /// insist on key_size 0); every other type up to BPF_MAP_TYPE_ARENA (33, the last one this list was checked against)
    /// refuses a zero key_size (htab_map_alloc_check, array_map_alloc_check, trie_alloc, ...).</summary>
    private static readonly HashSet<uint> KeylessMaps = [22, 23, 27, 30, 31, 33];
    /// <summary>The map types that hold no values (ringbuf, user_ringbuf, arena: value_size 0 or -EINVAL); every other
    /// type up to 33 refuses a zero value_size.</summary>
    private static readonly HashSet<uint> ValuelessMaps = [27, 31, 33];
    /// <summary>BPF_MAP_TYPE_ARENA: the keyless and valueless lists above are complete up to here; a newer type's rules
    /// are not known, so only the generic bounds apply to it.</summary>
    private const uint LastCheckedMapType = 33;
    /// <summary>A map type's number is small (33 in 6.1; the enum only grows): a larger u32 is not a map type.</summary>
    public const uint MaxMapType = 64;
    /// <summary>KMALLOC_MAX_SIZE-bound value sizes: a larger value_size is not one.</summary>
    private const uint MaxValueSize = 1u << 30;
    /// <summary>MAX_BPF_STACK: no key may be larger than the program stack a lookup builds it on.</summary>
    private const uint MaxKeySize = 512;

    /// <summary>{ map_type, key_size, value_size, max_entries } (declared together, in this order, since 3.18) as a map's
    /// attributes allow: a known type, a key that fits the stack (a u32 for index-keyed maps), at least one entry, and a
    /// zero key or value size only for the types that take none. (A small map id followed by zeros, e.g. id 1 then a NULL
    /// pointer, reads as a hash map of zero-sized keys otherwise: 6.12's bpf_map has its id before the NULL record.)</summary>
    public static bool IsMapAttributes(uint type, uint keySize, uint valueSize, uint maxEntries) =>
        type is >= 1 and < MaxMapType && keySize <= MaxKeySize && valueSize <= MaxValueSize && maxEntries >= 1
        && (!IndexKeyedMaps.Contains(type) || keySize == 4)
        && (type > LastCheckedMapType || ((keySize == 0) == KeylessMaps.Contains(type) && (valueSize == 0) == ValuelessMaps.Contains(type)));
}
